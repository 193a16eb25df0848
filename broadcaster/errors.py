"""The product's errors: one root, `BroadcasterError`, whose message is one line for a person
(it names the config key, the CSV line, the option or the object), and three kinds under it.

The CLI turns any `BroadcasterError` into one red line and exit code 2; anything else (a
`KeyError` from a bug) is a programming error and keeps its traceback. `InvalidInput` is also a
`ValueError` and `NotFound` a `LookupError`, so code that catches those keeps working.
"""

from __future__ import annotations

__all__ = ["BroadcasterError", "ConfigurationError", "InvalidInput", "NotFound"]


class BroadcasterError(Exception):
    """Something a person can fix; its message says what and where."""


class ConfigurationError(BroadcasterError):
    """The configuration (file, templates, environment, database schema) is not usable."""


class InvalidInput(BroadcasterError, ValueError):
    """What someone typed or sent cannot be used as it is (an option, a CSV line, a body)."""


class NotFound(BroadcasterError, LookupError):
    """The incident, update, conversation or link named does not exist."""
