"""Rich renderings shared by commands: channel previews, lint findings, delivery counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from broadcaster.lint import Finding
from broadcaster.message import RenderedMessage

STATUS_STYLES = {"sent": "green", "pending": "yellow", "sending": "cyan", "failed": "red", "dead": "bold red"}
DELIVERY_COLUMNS = ("sent", "pending", "sending", "failed", "dead")


def finding_lines(findings: Sequence[Finding]) -> Text:
    text = Text()
    for finding in findings:
        style = "bold red" if finding.severity == "error" else "yellow"
        where = "/".join(part for part in (finding.channel, finding.locale) if part)
        text.append(f"{finding.severity.upper():8}", style=style)
        text.append(f"{finding.rule:15}", style="bold")
        text.append(f"{finding.message}" + (f"  [{where}]" if where else "") + "\n")
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
    table = Table(title=title)
    table.add_column("channel")
    for status in DELIVERY_COLUMNS:
        table.add_column(status, justify="right", style=STATUS_STYLES[status])
    table.add_column("total", justify="right", style="bold")
    for channel in sorted(counts):
        row = counts[channel]
        table.add_row(channel, *(str(row.get(s, 0)) for s in DELIVERY_COLUMNS), str(sum(row.values())))
    return table
