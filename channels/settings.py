"""What every channel's settings share: a `[channels.<name>]` table of the config file, with
`enabled` and `capture`, and secrets that may not be empty.

A channel is live when its credentials are present, and in capture mode otherwise.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr

__all__ = ["ChannelSection", "Secret", "Section"]


def _not_blank(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().strip():
        raise ValueError("empty secret: set a real value or remove the key")
    return value


#: Every secret key: an empty or blank value would make a check that compares with it pass.
Secret = Annotated[SecretStr, AfterValidator(_not_blank)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelSection(Section):
    """A channel's table: on by default, in capture mode when asked or without credentials."""

    enabled: bool = True
    capture: bool = False

    @property
    def live(self) -> bool:
        """Whether it sends for real: enabled, not in capture mode, with its credentials."""
        return False
