"""crisis-broadcaster: one crisis update, adapted to every channel, delivered reliably."""

from broadcaster.compose.lint import Draft, Finding, has_errors, lint
from broadcaster.compose.render import Composer, TemplateError
from broadcaster.config import ConfigError, Settings, load_settings
from broadcaster.message import Brand, MessageContext, RenderedMessage

__all__ = [
    "Brand",
    "Composer",
    "ConfigError",
    "Draft",
    "Finding",
    "MessageContext",
    "RenderedMessage",
    "Settings",
    "TemplateError",
    "has_errors",
    "lint",
    "load_settings",
]
__version__ = "0.1.0"
