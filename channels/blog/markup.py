"""Text that leaves for another renderer (Jekyll, Hugo, WordPress) stays text there, never markup.

Markdown with raw HTML on (kramdown) passes `<script>` through; Jekyll runs Liquid (`{{ }}`,
`{% %}`) and Hugo its shortcodes (`{{< >}}`, `{{% %}}`) over the file before any Markdown; WordPress
runs shortcodes (`[embed]…`) in a post's content. Character references are plain text to all of
them, and every Markdown and HTML renderer shows them as the character they stand for.

>>> markdown_text("{% raw %}<script>")
'&#123;% raw %&#125;&lt;script&gt;'
"""

from __future__ import annotations

__all__ = ["markdown_text", "without_shortcodes"]

_MARKDOWN_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "{": "&#123;", "}": "&#125;"})
_SHORTCODE_BRACKETS = str.maketrans({"[": "&#91;", "]": "&#93;"})


def markdown_text(text: str) -> str:
    """`text` (Markdown a person wrote) with no raw HTML and no template delimiter left in it."""
    return text.translate(_MARKDOWN_TEXT)


def without_shortcodes(html: str) -> str:
    """`html` with its square brackets as references, so WordPress finds no shortcode in it."""
    return html.translate(_SHORTCODE_BRACKETS)
