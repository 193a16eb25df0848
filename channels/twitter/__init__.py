"""The twitter channel."""
