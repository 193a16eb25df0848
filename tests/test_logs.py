"""Structured log lines: one line per event whatever a field holds, JSON that parses, fixed reasons."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from broadcaster.delivery.channel_report import error_kind
from broadcaster.logs import StructuredFormatter


def record(event: str, **fields: object) -> logging.LogRecord:
    made = logging.LogRecord("broadcaster.delivery.dispatch", logging.WARNING, __file__, 1, event, None, None)
    made.created = datetime(2026, 12, 3, 14, 2, tzinfo=UTC).timestamp()
    made.fields = fields
    return made


def test_text_lines_quote_values_so_a_field_cannot_forge_another_line() -> None:
    line = StructuredFormatter("text").format(
        record("channel paused", channel="email", reason="a b\nERROR forged=1", count=3, wait=1.23456)
    )
    assert line == (
        "2026-12-03T14:02:00Z WARNING broadcaster.delivery.dispatch channel paused channel=email "
        'reason="a b\\nERROR forged=1" count=3 wait=1.235'
    )
    assert "\n" not in line


def test_json_lines_carry_the_same_fields() -> None:
    until = datetime(2026, 12, 3, 14, 3, tzinfo=UTC)
    line = StructuredFormatter("json").format(record("channel paused", channel="telegram", until=until))
    assert json.loads(line) == {
        "at": "2026-12-03T14:02:00Z", "level": "WARNING", "logger": "broadcaster.delivery.dispatch",
        "event": "channel paused", "channel": "telegram", "until": "2026-12-03T14:03:00Z",
    }  # fmt: skip


def test_the_reason_of_a_dead_row_is_the_kind_of_error_never_the_providers_text() -> None:
    assert error_kind("gave up after 8 attempts: unavailable: 421 <client@example.com> busy") == "unavailable"
    assert error_kind("gave up after 1 attempts: internal error: KeyError") == "internal error"
    assert error_kind("gave up after 2 attempts: client@example.com: refused") == "other"
    assert error_kind("550 5.1.1 <client@example.com> unknown") == "other"


def test_start_up_installs_every_channels_redaction_once_however_often_it_runs() -> None:
    from broadcaster.logs import install_log_redaction
    from channels.registry import SPECS

    install_log_redaction()
    install_log_redaction()
    for spec in SPECS.values():
        for rule in spec.log_rules:
            for name in rule.loggers:
                same = [
                    f for f in logging.getLogger(name).filters if getattr(f, "secret", None) == rule.secret
                ]
                assert len(same) == 1, (spec.name, name)
    assert {spec.name for spec in SPECS.values() if spec.log_rules} == {
        "telegram",
        "twitter",
        "facebook",
        "email",
    }
