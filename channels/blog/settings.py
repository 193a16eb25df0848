"""`[channels.blog]`: the incident page and Atom feed, with WordPress or a Markdown folder on top."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from channels.settings import ChannelSection, Secret

__all__ = ["BlogSettings"]


class BlogSettings(ChannelSection):
    """The incident page and Atom feed are built in; WordPress or a Markdown folder come on top."""

    publisher: Literal["none", "wordpress", "markdown"] = "none"
    wordpress_url: str = ""  # e.g. https://blog.shop.example (the REST API is under /wp-json)
    wordpress_user: str = ""
    wordpress_app_password: Secret | None = None
    wordpress_status: Literal["publish", "draft"] = "publish"
    markdown_dir: str = ""  # Hugo/Jekyll content folder: one file per incident
    timeout_seconds: Annotated[float, Field(gt=0)] = 20.0

    @property
    def live(self) -> bool:
        if not self.enabled or self.capture:
            return False
        if self.publisher == "wordpress":
            return bool(self.wordpress_url) and self.wordpress_app_password is not None
        return self.publisher == "markdown" and bool(self.markdown_dir)
