"""`broadcaster deliveries <incident>`: per channel sent / captured / pending / failed / dead, with reasons.

"captured" is a capture-mode channel's delivery: stored (see `broadcaster captured`), never sent.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from sqlmodel import col, select

from broadcaster import outbox
from broadcaster.cli.options import row_number
from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import console, fail, open_runtime, run, state, user_errors
from broadcaster.cli.views import delivery_table
from broadcaster.models import Delivery, Incident, IncidentUpdate


def register(root: typer.Typer) -> None:
    @root.command("deliveries")
    @user_errors
    def deliveries(
        ctx: typer.Context,
        incident_id: Annotated[int, row_number("Incident number.")],
        problems: Annotated[int, typer.Option(help="Show at most this many failed/dead/retrying rows.")] = 20,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Where every message of an incident stands, and why the failed ones failed."""

        async def fetch():  # type: ignore[no-untyped-def]
            async with open_runtime(state(ctx).settings) as runtime, runtime.sessions() as session:
                if await session.get(Incident, incident_id) is None:
                    return None
                update_ids = list(
                    await session.exec(
                        select(IncidentUpdate.id).where(IncidentUpdate.incident_id == incident_id)
                    )
                )
                counts = await outbox.counts_by_channel(session, update_ids)
                troubled = list(
                    await session.exec(
                        select(Delivery)
                        .where(col(Delivery.update_id).in_(update_ids))
                        .where(col(Delivery.last_error) != "")
                        .where(col(Delivery.status).not_in(outbox.DELIVERED))
                        .order_by(col(Delivery.id))
                        .limit(problems)
                    )
                )
                return counts, troubled

        result = run(fetch())
        if result is None:
            fail(f"no incident #{incident_id}")
            return
        counts, troubled = result
        if as_json:
            console.print_json(
                json.dumps(
                    {
                        "incident_id": incident_id,
                        "by_channel": counts,
                        "problems": [
                            {
                                "id": d.id,
                                "update_id": d.update_id,
                                "channel": d.channel,
                                "target": d.target,
                                "status": d.status,
                                "attempts": d.attempts,
                                "last_error": d.last_error,
                                "next_attempt_at": d.next_attempt_at.isoformat(),
                            }
                            for d in troubled
                        ],
                    }
                )
            )
            return
        console.print(delivery_table(counts, title=f"Deliveries of incident #{incident_id}"))
        if troubled:
            table = Table(title="Failed, dead and retrying")
            for column in ("update", "channel", "target", "status", "attempts", "reason"):
                table.add_column(column)
            for d in troubled:
                table.add_row(
                    str(d.update_id),
                    d.channel,
                    outside(d.target),
                    d.status,
                    str(d.attempts),
                    outside(d.last_error),
                )
            console.print(table)
