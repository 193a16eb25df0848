"""The push channel."""
