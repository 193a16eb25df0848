"""Plain text of an HTML e-mail body, in time linear in its size.

lxml (libxml2's HTML parser, C) builds the tree and `iterwalk` visits it without recursion; the
stdlib `html.parser` took quadratic time on unclosed attributes (`<a b='` × 80 KB: 15 s of CPU).
Only the first `MAX_HTML_CHARS` characters are read: a reply's own words come first, its quoted
history after, and libxml2 still has super-linear corners (a tag with 10,000s of attributes).
libxml2 stops building below 256 levels of nesting: the text above (the reply's) is kept.
"""

from __future__ import annotations

import re

from lxml import etree

__all__ = ["MAX_HTML_CHARS", "html_to_text"]

MAX_HTML_CHARS = 128 * 1024  # the worst shape known costs ~0.4 s of CPU at this size (bench/README.md)

_BLOCK_TAGS = frozenset(
    {"div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "hr", "pre", "dd", "dt"}
)
_PARAGRAPH_TAGS = frozenset({"p"})
# Not the reply's text: quoted history (`<blockquote>`), code, metadata.
_HIDDEN_TAGS = frozenset({"blockquote", "script", "style", "head", "title", "template", "noscript"})
_WHITESPACE = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """Plain text of an HTML e-mail body, line breaks as displayed, whitespace collapsed.

    Entities become characters (`&lt;` is a literal `<`); nothing else is interpreted.

    >>> html_to_text("<p>Le site&nbsp;est <b>lent</b></p><blockquote>vieux</blockquote>")
    'Le site est lent'
    """
    head = html[:MAX_HTML_CHARS]
    if not head.strip():
        return ""
    parser = etree.HTMLParser(encoding="utf-8", no_network=True, remove_comments=True, remove_pis=True)
    root = etree.fromstring(head.encode("utf-8", errors="replace"), parser)
    if root is None:  # only a comment or a doctype: no element at all
        return ""
    chunks = _Chunks()
    hidden = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if hidden or tag in _HIDDEN_TAGS:
                hidden += 1
                continue
            chunks.open(tag)
            chunks.text(element.text)
        else:
            if hidden:
                hidden -= 1
                if hidden:
                    continue
            else:
                chunks.close(tag)
            chunks.text(element.tail)
    lines = "\n".join(" ".join(line.split()) for line in chunks.joined().split("\n"))
    return _BLANK_LINES.sub("\n\n", lines).strip()


class _Chunks:
    """Text pieces and the line breaks that tags make, as a browser shows them."""

    def __init__(self) -> None:
        self._chunks: list[str] = []

    def text(self, data: str | None) -> None:
        if data:
            self._chunks.append(_WHITESPACE.sub(" ", data))  # source line breaks are spaces in HTML

    def open(self, tag: str) -> None:
        if tag == "br":
            self._chunks.append("\n")
        else:
            self.close(tag)

    def close(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self._ensure_newlines(1)
        elif tag in _PARAGRAPH_TAGS:
            self._ensure_newlines(2)

    def joined(self) -> str:
        return "".join(self._chunks)

    def _ensure_newlines(self, count: int) -> None:
        text = "".join(self._chunks[-3:]).rstrip(" ")
        if not text:
            return
        have = len(text) - len(text.rstrip("\n"))
        self._chunks.append("\n" * max(0, count - have))
