"""E-mail: every subscriber's address through an SMTP relay; replies come back on our SMTP
listener or over IMAP."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from channels.base import Capabilities, Inbound, Overflow
from channels.email.redaction import LOG_RULES
from channels.email.settings import EmailSettings
from channels.limits import fit_subject
from channels.spec import ChannelSpec, Fitted, LiveAdapter

__all__ = ["SPEC"]


def _fit(texts: Mapping[str, str], caps: Capabilities, _md: Callable[[str], str]) -> Fitted:
    return Fitted((texts["text"],), title=fit_subject(texts["subject"], caps.max_title), html=texts["html"])


def _check_address(value: str, _section: EmailSettings) -> tuple[str, str]:
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(value, check_deliverability=False).normalized, ""
    except EmailNotValidError as exc:
        return value, f"email {value!r}: {exc}"


def _build(section: EmailSettings) -> LiveAdapter:
    from channels.email.adapter import EmailChannel

    return LiveAdapter(EmailChannel(section), section.pool_size, section.rate_per_second)


SPEC = ChannelSpec(
    name="email",
    settings=EmailSettings,
    # RFC 5322 recommends lines (so a one-line subject) of at most 78 characters.
    capabilities=Capabilities(max_body=0, max_title=78, overflow=Overflow.TRUNCATE, inbound=Inbound.WEBHOOK),
    parts=("subject", "text", "html"),
    fit=_fit,
    labels={"fr": "E-mail", "en": "E-mail"},
    build=_build,
    go_live="channels.email.host",
    subscribers=True,
    subscriber_column="email",
    check_address=_check_address,
    addresses_ignore_case=True,
    answers_alerts=True,
    staff_alerts=True,
    drill_audience="drill.email_addresses",
    notice_hours=72,
    log_rules=LOG_RULES,
)
