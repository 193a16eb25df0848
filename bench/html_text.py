"""CPU time of HTML-to-text on hostile HTML-only replies: ours (lxml, capped) vs the stdlib's html.parser.

    .venv/bin/python bench/html_text.py             # 80 KiB and 1 MiB of each shape
    .venv/bin/python bench/html_text.py --stdlib    # also html.parser at 10 and 20 KiB (quadratic)

Each shape repeats one construct up to the size; `html_to_text` reads only `MAX_HTML_CHARS` of it.
"raw lxml" parses the whole input without the cap (up to 256 KiB), to show why the cap is there.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lxml import etree  # noqa: E402

from channels.email.html import MAX_HTML_CHARS, html_to_text  # noqa: E402


def many_attributes(size: int) -> str:
    return "<a" + "".join(f" a{i}=1" for i in range(size // 8)) + ">x"


SHAPES: dict[str, Callable[[int], str]] = {
    "<a b=' (unclosed quotes)": lambda size: "<a b='" * (size // 6),
    "<div> nested": lambda size: "<div>" * (size // 5),
    "<!-- unclosed": lambda size: "<!--" * (size // 4),
    "one tag, many attributes": many_attributes,
    "<b>x</i> misnested": lambda size: "<b>x</i>" * (size // 8),
}


def seconds(work: Callable[[], object]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def stdlib(html: str) -> None:
    parser = HTMLParser(convert_charrefs=True)
    parser.feed(html)
    parser.close()


def raw_lxml(html: str) -> None:
    etree.fromstring(("<p>x</p>" + html).encode(), etree.HTMLParser(encoding="utf-8"))


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--stdlib", action="store_true", help="also time html.parser on small inputs")
    args = options.parse_args()
    print(f"MAX_HTML_CHARS = {MAX_HTML_CHARS:,}; CPU seconds")
    for name, make in SHAPES.items():
        for size in (80 * 1024, 256 * 1024, 1024 * 1024):
            html = make(size)
            ours = seconds(lambda html=html: html_to_text(html))
            # Uncapped, one tag with many attributes costs libxml2 quadratic time: 30 s at 1 MiB.
            raw = f"{seconds(lambda html=html: raw_lxml(html)):7.3f}" if size <= 256 * 1024 else "      -"
            print(f"{name:28} {size // 1024:5} KiB   html_to_text {ours:7.3f}   raw lxml {raw}")
        if args.stdlib:
            for size in (10 * 1024, 20 * 1024):
                html = make(size)
                took = seconds(lambda html=html: stdlib(html))
                print(f"{name:28} {size // 1024:5} KiB   html.parser  {took:7.3f}")


if __name__ == "__main__":
    main()
