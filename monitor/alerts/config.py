"""The ``[alerts]`` config table: webhooks and the delivery worker's retry rules.

Webhook URLs of Slack and Teams carry their own secret in the path, and generic webhooks may
have an HMAC secret: both fields are left out of ``repr`` and never appear in an error
message or a log line. Webhooks are known by their ``name`` everywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from yarl import URL

from sessionready.config import ConfigError, decode_section
from sessionready.netaddr import is_loopback_host
from sessionready.terms import ID_PATTERN
from sessionready.typed import limits

AlertKind = Literal["session_at_risk", "session_not_ready", "live_degraded", "live_recovered", "agent_offline", "session_summary"]
KINDS: tuple[str, ...] = get_args(AlertKind)
# Sent only to webhooks that list them in ``kinds``: off by default, and not part of "all kinds".
OPT_IN_KINDS: tuple[str, ...] = ("session_summary",)
MIN_SECRET_CHARS = 16


@dataclass(frozen=True)
class WebhookConfig:
    """One destination. ``audience`` it gets every alert; therapist only its therapist's sessions."""

    name: str = field(metadata=limits(max_len=64, pattern=ID_PATTERN))
    url: str = field(repr=False, metadata=limits(max_len=2048))
    format: Literal["generic", "slack", "teams"] = "generic"
    audience: Literal["it", "therapist"] = "it"
    # The therapist whose own channel this is (audience "therapist" only).
    therapist_id: str = field(default="", metadata=limits(max_len=64, pattern=f"({ID_PATTERN})?"))
    # Which kinds of alert to send; empty = all of them except the opt-in ones (session_summary).
    kinds: tuple[AlertKind, ...] = field(default=(), metadata=limits(max_len=len(KINDS)))
    # For one HTTP request, connect to last byte.
    timeout_s: float = field(default=10.0, metadata=limits(ge=0.5, le=60))
    # Generic format only: signs each body with HMAC-SHA256 (X-Sessionready-Signature).
    secret: str = field(default="", repr=False, metadata=limits(max_len=256))

    def __post_init__(self) -> None:
        where = f"webhook '{self.name}'"
        try:
            url = URL(self.url)
        except (ValueError, TypeError):
            raise ConfigError(f"{where}: url is not a URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"{where}: url must be an https:// URL")
        if url.user or url.password:
            raise ConfigError(f"{where}: url must not contain a user name or password")
        if url.scheme == "http" and not is_loopback_host(url.host):
            raise ConfigError(f"{where}: url must use https:// (plain http:// only to a loopback address)")
        if self.audience == "therapist" and not self.therapist_id:
            raise ConfigError(f"{where}: a therapist webhook needs therapist_id (the therapist whose channel it is)")
        if self.audience == "it" and self.therapist_id:
            raise ConfigError(f"{where}: therapist_id is only for audience = \"therapist\"")
        if self.secret and self.format != "generic":
            raise ConfigError(f"{where}: secret signs generic payloads only; {self.format} does not check signatures")
        if self.secret and len(self.secret) < MIN_SECRET_CHARS:
            raise ConfigError(f"{where}: secret must be at least {MIN_SECRET_CHARS} characters")
        if len(set(self.kinds)) != len(self.kinds):
            raise ConfigError(f"{where}: kinds lists a kind twice")

    def wants(self, kind: str, therapist_id: str) -> bool:
        """Whether an alert of ``kind`` about a session of ``therapist_id`` goes to this webhook."""
        if (self.kinds or kind in OPT_IN_KINDS) and kind not in self.kinds:
            return False
        return self.audience == "it" or therapist_id == self.therapist_id


@dataclass(frozen=True)
class AlertsConfig:
    """Webhooks and retry rules. With no webhook, alerts are still recorded (``GET /api/v1/alerts``)."""

    webhook: tuple[WebhookConfig, ...] = field(default=(), metadata=limits(max_len=64))
    # Attempts per delivery before it is marked failed.
    max_attempts: int = field(default=8, metadata=limits(ge=1, le=100))
    # Backoff after the n-th failure: min(max, min * 2^(n-1)), then a random 50-100 % of that.
    min_backoff_s: float = field(default=5.0, metadata=limits(ge=0.5, le=3600))
    max_backoff_s: float = field(default=600.0, metadata=limits(ge=1, le=86_400))
    # An alert not delivered this long after it was raised is stale: marked failed, not sent.
    max_age_s: float = field(default=3600.0, metadata=limits(ge=60, le=7 * 86_400))
    # Requests in flight at once (at most one per webhook, to keep each channel in order).
    max_concurrent: int = field(default=4, metadata=limits(ge=1, le=64))

    def __post_init__(self) -> None:
        names = [w.name for w in self.webhook]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"webhook names must be unique; '{duplicates[0]}' is used twice")
        if self.max_backoff_s < self.min_backoff_s:
            raise ConfigError("max_backoff_s must be at least min_backoff_s")

    def webhook_named(self, name: str) -> WebhookConfig | None:
        return next((w for w in self.webhook if w.name == name), None)


def load_alerts(table: object, path: Path | str) -> AlertsConfig:
    """The ``[alerts]`` table of a config file, validated; ConfigError names the key."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"config file {path}: 'alerts' must be a table")
    try:
        return decode_section(AlertsConfig, table, path, "alerts")
    except ConfigError as error:
        message = str(error)
        if message.startswith("config file "):
            raise
        raise ConfigError(f"config file {path}: [alerts] {message}") from None
