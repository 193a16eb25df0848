"""Typed settings read from one TOML file; secrets are `env:VAR_NAME` references.

A bad file never shows a traceback: `ConfigError` carries one line naming the file, the key and
the problem, e.g. ``config.toml: channels.telegram.token: environment variable TG_TOKEN is not set``.
With no file at all every channel runs in capture mode, so the product works with zero setup.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from broadcaster.errors import ConfigurationError
from channels.registry import SPECS, ChannelsSettings
from channels.settings import Secret
from channels.settings import Section as _Section

ENV_PREFIX = "env:"
DEFAULT_CONFIG_PATH = Path("config.toml")


class ConfigError(ConfigurationError):
    """A one-line, user-facing description of what is wrong in the configuration."""


__all__ = [
    "AlertSourceSettings",
    "ChannelsSettings",
    "ConfigError",
    "DispatchSettings",
    "DrillSettings",
    "ScheduleSettings",
    "Settings",
    "load_settings",
    "parse_settings",
]


LocalisedText = dict[str, str]


class BrandSettings(_Section):
    name: str = "Ma Boutique"
    public_url: str = "https://shop.example"
    timezone: str = "Europe/Paris"
    default_locale: str = "fr"
    locales: list[str] = Field(default_factory=lambda: ["fr", "en"])
    alternative: LocalisedText = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class StaffSettings(_Section):
    """Where alerts for the team go (spikes of customer reports, missed promises)."""

    email: str = ""  # the on-call address
    telegram_chat_id: str = ""  # a staff group the bot is a member of

    @field_validator("email")
    @classmethod
    def _an_address(cls, value: str) -> str:
        from email_validator import EmailNotValidError, validate_email

        if not value:
            return value
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"not an e-mail address: {exc}") from None


class InboxSettings(_Section):
    bot_enabled: bool = True  # the status bot answers status questions and chat commands
    # A spike: more than `spike_threshold` status questions or complaints within
    # `spike_window_minutes` while no incident is open drafts an incident and alerts the staff.
    spike_threshold: Annotated[int, Field(ge=1)] = 10
    spike_window_minutes: Annotated[float, Field(gt=0)] = 5.0
    spike_cooldown_minutes: Annotated[float, Field(ge=0)] = 60.0  # no second draft before this
    canned_dir: str = ""  # your own canned replies: <dir>/<locale>/<name>.j2, beside the built-in ones


def _default_ladder() -> dict[str, list[str]]:
    """Each channel's `notice_hours`: e-mail 72 h before, push 24 h, the social channels 1 h."""
    ladder: dict[str, list[str]] = {}
    for spec in SPECS.values():
        if spec.notice_hours is not None:
            ladder.setdefault(str(spec.notice_hours), []).append(spec.name)
    return dict(sorted(ladder.items(), key=lambda item: -int(item[0])))


class ScheduleSettings(_Section):
    """Promises kept on time: next updates, maintenance notices, postmortem reminders."""

    # The next update promised when an update names none, by the incident's impact (minutes).
    cadence_minutes: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: {"critical": 30.0, "major": 60.0, "minor": 120.0, "none": 120.0}
    )
    # A promise not kept: staff reminded at the promised time, the holding message posted this much later.
    holding_grace_minutes: Annotated[float, Field(ge=0)] = 10.0
    # The approved holding message, per locale; the templates add the next update time.
    holding_message: LocalisedText = Field(
        default_factory=lambda: {
            "fr": "Nos équipes sont toujours mobilisées sur ce problème.",
            "en": "Our teams are still working on this problem.",
        }
    )
    # Maintenance notices: hours before the start → the channels notified then.
    maintenance_ladder: dict[str, list[str]] = Field(default_factory=_default_ladder)
    postmortem_delay_hours: Annotated[float, Field(ge=0)] = 24.0
    # How often the scheduler reads the plan (incidents changed by the CLI or another node), in seconds.
    sync_seconds: Annotated[float, Field(gt=0)] = 15.0
    # How late a job may still run after a restart (minutes), per kind; later, it is reported missed.
    # A maintenance notice may run late until the maintenance starts, never after.
    grace_minutes: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"reminder": 60.0, "holding": 30.0, "start": 60.0, "end": 240.0,
                                 "postmortem": 1440.0}
    )  # fmt: skip

    @field_validator("maintenance_ladder")
    @classmethod
    def _hours_and_channels(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for hours, names in value.items():
            try:
                if float(hours) <= 0:
                    raise ValueError
            except ValueError:
                raise ValueError(f"{hours!r} is not a number of hours before the start (> 0)") from None
            unknown = sorted(set(names) - set(SPECS))
            if unknown:
                raise ValueError(f"unknown channel(s) {', '.join(unknown)} for the {hours} h notice")
        return value


class DrillSettings(_Section):
    """The test audience of `broadcaster drill`: our own addresses, never customers'."""

    email_addresses: list[str] = Field(default_factory=list)  # test mailboxes someone can reply from
    telegram_chat_id: str = ""  # a test chat (a staff group or your own chat with the bot)
    push_device: str = ""  # "fcm:<registration token>" or "webpush:<subscription JSON>" of a test device
    # Any other channel people subscribe on: {channel: [test addresses]} (`[drill.audience]`).
    audience: dict[str, list[str]] = Field(default_factory=dict)
    # How long the drill waits for the round trips (a reply to the e-mail, the bot's /status answer).
    wait_seconds: Annotated[float, Field(gt=0, le=3_600)] = 60.0

    @field_validator("email_addresses")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        from email_validator import EmailNotValidError, validate_email

        checked = []
        for value in values:
            try:
                checked.append(validate_email(value, check_deliverability=False).normalized)
            except EmailNotValidError as exc:
                raise ValueError(f"{value!r} is not an e-mail address: {exc}") from None
        return list(dict.fromkeys(checked))

    @field_validator("telegram_chat_id")
    @classmethod
    def _chat(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"-?\d{1,20}|@[A-Za-z0-9_]{5,32}", value):
            raise ValueError(f"{value!r} is not a Telegram chat id (digits, -100… for a group) or @name")
        return value

    @field_validator("audience")
    @classmethod
    def _subscriber_channels(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in value:
            spec = SPECS.get(name)
            if spec is None or not spec.subscribers:
                subscribers = ", ".join(n for n, s in SPECS.items() if s.subscribers)
                raise ValueError(f"{name}: not a channel people subscribe on ({subscribers})")
            if spec.drill_audience:
                raise ValueError(f"{name}: its test audience is {spec.drill_audience}")
        return {name: [a.strip() for a in addresses if a.strip()] for name, addresses in value.items()}

    @field_validator("push_device")
    @classmethod
    def _device(cls, value: str) -> str:
        value = value.strip()
        kind, _, rest = value.partition(":")
        if value and (kind not in ("fcm", "webpush") or not rest.strip()):
            # Never "topic:…": a topic reaches every app user, not one test device.
            raise ValueError('expected "fcm:<registration token>" or "webpush:<subscription JSON>"')
        return value


class AuthSettings(_Section):
    # Roles that must set up a second factor (TOTP) before they can do anything once signed in.
    require_2fa: list[str] = Field(default_factory=lambda: ["admin", "editor"])
    session_idle_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 120
    session_lifetime_hours: Annotated[int, Field(ge=1, le=24 * 31)] = 24
    # Failed sign-ins within lockout_minutes before the e-mail typed, or the client address, is locked.
    max_failures_per_account: Annotated[int, Field(ge=1)] = 5
    max_failures_per_address: Annotated[int, Field(ge=1)] = 20
    lockout_minutes: Annotated[int, Field(ge=1)] = 15

    @field_validator("require_2fa")
    @classmethod
    def _known_roles(cls, value: list[str]) -> list[str]:
        from broadcaster.auth.roles import ROLES

        unknown = sorted(set(value) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown role(s) {', '.join(unknown)}: expected some of {', '.join(ROLES)}")
        return value


class PrivacySettings(_Section):
    # What customers wrote (inbox messages, raw webhook records) is deleted by the scheduler after this.
    keep_customer_messages_days: Annotated[int, Field(ge=1)] = 365


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    public_base_url: str = "http://127.0.0.1:8080"
    # Slow or greedy clients: past this many connections and requests at once uvicorn answers 503;
    # an idle keep-alive connection is closed after keep_alive_seconds.
    limit_concurrency: Annotated[int, Field(ge=1)] = 1000
    keep_alive_seconds: Annotated[int, Field(ge=1)] = 5
    log_format: Literal["text", "json"] = "text"  # our log lines: key=value text or one JSON object each
    metrics: bool = False  # GET /metrics, for a token that reads incidents: queue sizes are not public


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///data/broadcaster.db"


class DispatchSettings(_Section):
    # Renewed every lease_seconds / 3 while the worker lives: after a crash its rows wait this long.
    lease_seconds: Annotated[float, Field(ge=1)] = 10.0
    # Transient failures are retried until the next try would fall past created_at + this window
    # (a day, as Novu does); max_attempts optionally caps the tries as well (None: no cap).
    retry_window_seconds: Annotated[float, Field(gt=0)] = 86_400.0
    max_attempts: Annotated[int | None, Field(ge=1)] = None
    # The circuit breaker: after this many transient failures in a row a channel stops sending
    # and tries one row every breaker_probe_seconds until one reaches the provider.
    breaker_failures: Annotated[int, Field(ge=1)] = 5
    breaker_probe_seconds: Annotated[float, Field(gt=0, le=3_600)] = 30.0
    backoff_base_seconds: Annotated[float, Field(gt=0)] = 2.0
    backoff_max_seconds: Annotated[float, Field(gt=0, le=86_400)] = 900.0
    batch_size: Annotated[int, Field(ge=1)] = 200
    poll_interval_seconds: Annotated[float, Field(gt=0)] = 0.5
    # The longest a provider's "retry after" may hold back a delivery, a channel or a poller.
    max_pause_seconds: Annotated[float, Field(gt=0, le=86_400)] = 900.0
    # One pacing budget per bot for every worker: in Redis when set (redis://host:6379/0), else in
    # PostgreSQL when that is the database; SQLite (one process) paces in the process.
    redis_url: Secret | None = None


class AlertSourceSettings(_Section):
    """`[alerts.<source>]`: a monitor allowed to post to /webhooks/alerts/<source>."""

    # Checked on every call: an HMAC-SHA256 of the body in X-Broadcaster-Signature ("sha256=<hex>"),
    # or the secret itself as a bearer token where the tool can only send a header.
    secret: Secret
    # What names a component in its alerts (a label value, a monitor's name) → the component.
    components: dict[str, str] = Field(default_factory=dict)


class ComponentSettings(_Section):
    label: LocalisedText
    critical: bool = False  # checkout/payment: the linter asks for an alternative when it is down


def _default_components() -> dict[str, ComponentSettings]:
    return {
        "website": ComponentSettings(label={"fr": "Site web", "en": "Website"}),
        "checkout": ComponentSettings(label={"fr": "Commande", "en": "Checkout"}, critical=True),
        "payment": ComponentSettings(label={"fr": "Paiement", "en": "Payment"}, critical=True),
        "mobile-app": ComponentSettings(label={"fr": "Application mobile", "en": "Mobile app"}),
        "order-tracking": ComponentSettings(label={"fr": "Suivi de commande", "en": "Order tracking"}),
    }


class Settings(_Section):
    brand: BrandSettings = Field(default_factory=BrandSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    staff: StaffSettings = Field(default_factory=StaffSettings)
    inbox: InboxSettings = Field(default_factory=InboxSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    drill: DrillSettings = Field(default_factory=DrillSettings)
    templates_dir: str = ""
    components: dict[str, ComponentSettings] = Field(default_factory=_default_components)
    channels: ChannelsSettings = Field(default_factory=ChannelsSettings)
    alerts: dict[str, AlertSourceSettings] = Field(default_factory=dict)
    source: str = Field(default="(defaults)", exclude=True)
    api: Any = Field(default=None, exclude=True)  # removed: only to say so (see the validator)

    @field_validator("api")
    @classmethod
    def _no_shared_api_token(cls, value: object) -> None:
        raise ValueError(
            "the shared [api] token is gone; remove the section and give each script its own token:"
            " broadcaster users add … --role viewer, then broadcaster tokens create"
        )

    @field_validator("alerts")
    @classmethod
    def _alert_sources_and_components(
        cls, value: dict[str, AlertSourceSettings], info: ValidationInfo
    ) -> dict[str, AlertSourceSettings]:
        from broadcaster.alerts.payloads import SOURCES

        components = info.data.get("components") or {}
        for name, source in value.items():
            if name not in SOURCES:
                raise ValueError(f"{name}: unknown source (one of {', '.join(SOURCES)})")
            unknown = sorted(set(source.components.values()) - set(components))
            if unknown:
                raise ValueError(f"{name}.components: unknown component(s) {', '.join(unknown)}")
        return value

    def component_label(self, name: str, locale: str) -> str:
        """The component's label for `locale`, else its language's ("en_GB" → "en"), else the default's."""
        labels = self.components[name].label
        language = locale.replace("-", "_").split("_")[0]
        return labels.get(locale) or labels.get(language) or labels.get(self.brand.default_locale) or name

    @property
    def status_url(self) -> str:
        return self.server.public_base_url.rstrip("/") + "/status"


def _resolve_env_refs(node: Any, path: str, source: str) -> Any:
    if isinstance(node, dict):
        return {k: _resolve_env_refs(v, f"{path}.{k}" if path else k, source) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_env_refs(v, f"{path}[{i}]", source) for i, v in enumerate(node)]
    if isinstance(node, str) and node.startswith(ENV_PREFIX):
        var = node[len(ENV_PREFIX) :]
        value = os.environ.get(var)
        if value is None:
            raise ConfigError(f"{source}: {path}: environment variable {var} is not set")
        if not value.strip():
            raise ConfigError(f"{source}: {path}: environment variable {var} is empty")
        return value
    return node


def _describe(error: Mapping[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{key}: unknown key"
    if kind == "missing":
        return f"{key}: required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key}: {message} (got {error.get('input')!r})" if kind != "value_error" else f"{key}: {message}"


def parse_settings(data: dict[str, Any], source: str) -> Settings:
    """Validate a TOML document's data; raise `ConfigError` naming the first bad key."""
    resolved = _resolve_env_refs(data, "", source)
    try:
        settings = Settings.model_validate(resolved)
    except ValidationError as exc:
        first = exc.errors()[0]
        # Never echo a secret back: inputs under secret-looking keys are hidden.
        if any(str(p).endswith(("password", "token", "secret", "key")) for p in first["loc"]):
            first = {**first, "input": "***"}
        raise ConfigError(f"{source}: {_describe(first)}") from None
    return settings.model_copy(update={"source": source})


def load_settings(path: Path | None = None) -> Settings:
    """Load `path`, or $BROADCASTER_CONFIG, or ./config.toml; defaults when none exists."""
    if path is None:
        env_path = os.environ.get("BROADCASTER_CONFIG")
        path = Path(env_path) if env_path else DEFAULT_CONFIG_PATH
        if not env_path and not path.exists():
            return Settings()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_settings(data, str(path))
