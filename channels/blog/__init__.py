"""The blog: the built-in incident page and Atom feed, with WordPress or a Markdown folder on top."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from channels.base import Capabilities, Overflow
from channels.blog.markup import markdown_text
from channels.blog.settings import BlogSettings
from channels.limits import fit_subject
from channels.spec import ChannelSpec, Fitted, LiveAdapter

__all__ = ["SPEC"]


def _fit(texts: Mapping[str, str], caps: Capabilities, md: Callable[[str], str]) -> Fitted:
    return Fitted(
        (texts["body"],), title=fit_subject(texts["title"], caps.max_title), html=md(texts["body"]).strip()
    )


def _build(section: BlogSettings) -> LiveAdapter:
    from channels.blog.adapter import BlogChannel

    return LiveAdapter(BlogChannel(section), 1, 0.0)


SPEC = ChannelSpec(
    name="blog",
    settings=BlogSettings,
    capabilities=Capabilities(max_body=0, max_title=120, overflow=Overflow.TRUNCATE, threads=True),
    parts=("title", "body"),
    fit=_fit,
    labels={"fr": "Blog", "en": "Blog"},
    build=_build,
    go_live='channels.blog.publisher ("wordpress" with wordpress_url and wordpress_app_password, '
    'or "markdown" with markdown_dir)',
    public_target="incidents",
    seen_by_everybody=True,
    # Hugo/Jekyll and WordPress read the body as markup: what people wrote is escaped for them.
    escaped_parts={"body": markdown_text},
)
