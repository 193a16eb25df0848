"""The blog channel."""
