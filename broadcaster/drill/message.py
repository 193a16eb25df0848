"""The TEST message of `broadcaster drill`, per channel (pure: no I/O, no templates to break).

It says what it is in French and English first, so nobody reading it on a phone mistakes it
for an outage, and asks for the round trips the drill checks (a reply, `/status`).
"""

from __future__ import annotations

import html

from broadcaster.message import RenderedMessage

__all__ = ["DRILL_KIND", "TEST_EN", "TEST_FR", "drill_message"]

DRILL_KIND = "drill"
TEST_FR = "TEST — exercice : ceci est un test de nos canaux de crise, aucune action requise."
TEST_EN = "TEST — drill: this is a test of our crisis channels, no action needed."
_REPLY = (
    "Répondez à ce message (n'importe quel texte) : la réponse doit revenir dans la boîte de réception.",
    "Reply to this message (any text): the reply must come back into the inbox.",
)
_STATUS = (
    "Envoyez /status dans ce chat : le bot doit répondre.",
    "Send /status in this chat: the bot must answer.",
)


def drill_message(channel: str, brand: str, locale: str) -> RenderedMessage:
    """The drill's message for `channel`, short enough for its limits (push: 178, X: 280).

    >>> drill_message("push", "Maison Exemple", "fr").parts[0].startswith("TEST — exercice")
    True
    """
    title = f"TEST — exercice / drill — {brand}"
    short = f"{TEST_FR}\n{TEST_EN}"
    match channel:
        case "email":
            body = f"{TEST_FR}\n{_REPLY[0]}\n\n{TEST_EN}\n{_REPLY[1]}\n\n— {brand}"
            paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in body.split("\n\n"))
            return RenderedMessage(channel, locale, DRILL_KIND, (body,), title=title, html=paragraphs)
        case "telegram":
            text = (
                f"<b>{html.escape(TEST_FR)}</b>\n{_STATUS[0]}\n\n<b>{html.escape(TEST_EN)}</b>\n{_STATUS[1]}"
            )
            return RenderedMessage(channel, locale, DRILL_KIND, (text,), title=title)
        case "push":
            return RenderedMessage(channel, locale, DRILL_KIND, (short,), title="TEST — exercice / drill")
        case "blog":
            markdown = f"**{TEST_FR}**\n\n**{TEST_EN}**\n"
            body = "".join(f"<p><strong>{html.escape(line)}</strong></p>" for line in (TEST_FR, TEST_EN))
            return RenderedMessage(channel, locale, DRILL_KIND, (markdown,), title=title, html=body)
    return RenderedMessage(channel, locale, DRILL_KIND, (short,), title=title)  # X, Facebook
