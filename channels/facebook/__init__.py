"""The facebook channel."""
