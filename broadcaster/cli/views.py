"""Rich renderings shared by commands: channel previews, lint findings, delivery counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from babel import Locale, UnknownLocaleError
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from broadcaster.cli.outside import outside
from broadcaster.compose.lint import Finding
from broadcaster.config import Settings
from broadcaster.localtime import local_time
from broadcaster.message import RenderedMessage
from broadcaster.models import INERT, Conversation, Message
from broadcaster.publishing.drafting import TRANSLATION_OPTIONS, Fallback

STATUS_STYLES = {
    "sent": "green", "captured": "magenta", "pending": "yellow", "sending": "cyan", "failed": "red",
    "dead": "bold red",
}  # fmt: skip
DELIVERY_COLUMNS = ("sent", "captured", "pending", "sending", "failed", "dead")


def finding_lines(findings: Sequence[Finding]) -> Text:
    text = Text()
    for finding in findings:
        style = "bold red" if finding.severity == "error" else "yellow"
        where = "/".join(part for part in (finding.channel, finding.locale) if part)
        text.append(f"{finding.severity.upper():8}", style=style)
        text.append(f"{finding.rule:15}", style="bold")
        text.append(f"{finding.message}" + (f"  [{where}]" if where else "") + "\n")
    return text


def _language_name(locale: str) -> str:
    try:
        return str(Locale.parse(locale.replace("-", "_")).get_display_name("en"))
    except (UnknownLocaleError, ValueError):
        return locale


def fallback_lines(settings: Settings, fallbacks: Sequence[Fallback]) -> Text:
    """Who reads part of the update in the fallback language, and the options that would fix it."""
    default = _language_name(settings.brand.default_locale)
    text = Text()
    for f in fallbacks:
        options = ", ".join(f"{TRANSLATION_OPTIONS[name]} {f.locale}:…" for name in f.missing)
        text.append(f"{'UNTRANSLATED':14}", style="yellow")
        text.append(
            f"{f.readers} message(s) to {f.locale} subscribers will show the {', '.join(f.missing)}"
            f" in {default}: add {options}\n"
        )
    return text


def message_panel(message: RenderedMessage, findings: Sequence[Finding]) -> Panel:
    body = Text()
    if message.title:
        body.append(message.title + "\n", style="bold")
        body.append("\n")
    for index, part in enumerate(message.parts, 1):
        if len(message.parts) > 1:
            body.append(f"── part {index}/{len(message.parts)} ──\n", style="dim")
        body.append(part + "\n")
    mine = [
        f for f in findings if f.channel == message.channel and (not f.locale or f.locale == message.locale)
    ]
    if mine:
        body.append("\n")
        body.append_text(finding_lines(mine))
    border = "red" if any(f.severity == "error" for f in mine) else "yellow" if mine else "green"
    return Panel(body, title=f"{message.channel} · {message.locale}", border_style=border, expand=True)


def delivery_table(counts: Mapping[str, Mapping[str, int]], title: str = "Deliveries") -> Table:
    captured = any(row.get("captured") for row in counts.values())
    caption = "captured: stored by capture mode, not sent (`broadcaster captured` shows them)"
    table = Table(title=title, caption=caption if captured else None)
    table.add_column("channel")
    for status in DELIVERY_COLUMNS:
        table.add_column(status, justify="right", style=STATUS_STYLES[status])
    table.add_column("total", justify="right", style="bold")
    for channel in sorted(counts):
        row = counts[channel]
        table.add_row(channel, *(str(row.get(s, 0)) for s in DELIVERY_COLUMNS), str(sum(row.values())))
    return table


ANSWER_STYLES = {"queued": "yellow", "sent": "green", "captured": "magenta", "failed": "red"}
CONVERSATION_STYLES = {"open": "bold yellow", "pending": "cyan", "closed": "dim"}


def answer_status(message: Message) -> Text:
    """How an outgoing message fared: queued, sent, captured (capture mode), or failed with the reason."""
    if message.direction != "out":
        return Text()
    text = outside(message.delivery_status or "queued", ANSWER_STYLES.get(message.delivery_status, ""))
    if message.delivery_status == "failed" and message.delivery_error:  # the provider's words
        text.append_text(outside(f": {message.delivery_error}", "red"))
    return text


def inbox_table(rows: Sequence[tuple[Conversation, Message | None]]) -> Table:
    """Conversations with their last message; outside text is `outside`: no markup, no control codes."""
    table = Table(title="Inbox")
    for column in ("#", "channel", "customer", "status", "assignee", "labels", "incident", "last message"):
        table.add_column(column)
    for conversation, latest in rows:
        table.add_row(
            str(conversation.id), conversation.channel,
            outside(conversation.customer_name or conversation.customer_handle),
            outside(conversation.status, CONVERSATION_STYLES.get(conversation.status, "")),
            outside(conversation.assignee or "—"), outside(", ".join(conversation.labels) or "—"),
            f"#{conversation.incident_id}" if conversation.incident_id else "—",
            _last_message(latest),
        )  # fmt: skip
    return table


def _caution(message: Message) -> str:
    """The mark of an incoming message that neither acted nor got a bot answer: "[unverified] "."""
    return f"[{message.trust}] " if message.direction == "in" and message.trust in INERT else ""


def _last_message(message: Message | None) -> Text:
    if message is None:
        return Text()
    text = Text("← ") if message.direction == "in" else Text("→ ")
    text.append(_caution(message), style="bold yellow")
    text.append_text(outside(" ".join(message.text.split())[:80]))
    if message.direction == "out":
        text.append(" · ")
        text.append_text(answer_status(message))
    return text


def conversation_text(conversation: Conversation, messages: Sequence[Message], timezone: str) -> Text:
    """One conversation: a header (naming `timezone`, the brand's), then every message at its local
    time with who wrote it and, if ours, its fate."""
    text = Text()
    text.append(f"#{conversation.id} ", style="bold")
    text.append(f"{conversation.channel} · ")
    text.append_text(outside(conversation.customer_name or conversation.customer_handle))
    text.append(" · ")
    text.append(conversation.status, style=CONVERSATION_STYLES.get(conversation.status, ""))
    details = [
        f"assigned to {conversation.assignee}" if conversation.assignee else "unassigned",
        f"labels: {', '.join(conversation.labels)}" if conversation.labels else "",
        f"incident #{conversation.incident_id}" if conversation.incident_id else "",
        "bot quiet (an agent answered)" if conversation.handed_off else "",
        f"times in {timezone}",
    ]
    text.append_text(outside(" · " + " · ".join(d for d in details if d) + "\n", "dim"))
    for message in messages:
        text.append(f"{local_time(message.created_at, timezone)} ")
        if message.direction == "in":
            text.append("← ")
            text.append(f"{message.intent} ", style="dim")
            text.append(_caution(message), style="bold yellow")
            text.append_text(outside(message.text + "\n"))
            continue
        text.append_text(outside(f"→ {message.author or 'bot'}: ", "bold"))
        text.append_text(outside(message.text + " "))
        text.append("[")
        text.append_text(answer_status(message))
        text.append("]\n")
    text.rstrip()
    return text
