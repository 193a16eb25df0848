"""Customers writing back: messages made storable and stored once, filed into conversations,
read for their intent, answered by the status bot or an agent, and told how it ends."""
