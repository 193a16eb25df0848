"""The HTTP service: health, public JSON status, unsubscribe, and the dispatch workers."""

from broadcaster.web.app import create_app

__all__ = ["create_app"]
