"""`broadcaster drill`: a TEST message on every live channel to our own test audience, and the
round trips checked."""
