"""The channels of the product, listed once: `ChannelsSettings`, one line per channel, in the
order previews show them. Everything else is derived from it: each channel's `ChannelSpec` (its
package's `SPEC`), `CHANNEL_NAMES`, `CAPABILITIES`. Adding a channel is one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from channels.base import Capabilities
from channels.blog.settings import BlogSettings
from channels.email.settings import EmailSettings
from channels.facebook.settings import FacebookSettings
from channels.push.settings import PushSettings
from channels.settings import ChannelSection, Section
from channels.spec import ChannelSpec
from channels.telegram.settings import TelegramSettings
from channels.twitter.settings import TwitterSettings

__all__ = ["CAPABILITIES", "CHANNEL_NAMES", "SPECS", "ChannelsSettings"]


class ChannelsSettings(Section):
    """The `[channels.<name>]` tables of the config file."""

    twitter: TwitterSettings = Field(default_factory=TwitterSettings)
    facebook: FacebookSettings = Field(default_factory=FacebookSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    push: PushSettings = Field(default_factory=PushSettings)
    blog: BlogSettings = Field(default_factory=BlogSettings)

    def section(self, name: str) -> ChannelSection:
        """The table of channel `name` (KeyError for a name that is no channel)."""
        if name not in type(self).model_fields:
            raise KeyError(name)
        section: ChannelSection = getattr(self, name)
        return section


def _spec_of(name: str, settings: Any) -> ChannelSpec[Any]:
    """The `SPEC` of the package that defines `settings` (`channels.email.settings` → `channels.email`)."""
    package = importlib.import_module(settings.__module__.rpartition(".")[0])
    found: ChannelSpec[Any] = package.SPEC
    if found.name != name or found.settings is not settings:
        raise TypeError(
            f"channels.{name}: its package's SPEC is {found.name!r} for {found.settings.__name__}"
        )
    return found


#: Every channel's spec, by name, in preview order.
SPECS: Mapping[str, ChannelSpec[Any]] = {
    name: _spec_of(name, f.annotation) for name, f in ChannelsSettings.model_fields.items()
}
#: Every channel of the product, in the order previews show them.
CHANNEL_NAMES: tuple[str, ...] = tuple(SPECS)
CAPABILITIES: Mapping[str, Capabilities] = {name: s.capabilities for name, s in SPECS.items()}
