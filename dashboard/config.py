"""The dashboard's configuration: the ``[dashboard]`` table of a TOML file, validated once at
start-up into a frozen object; the login secret read from (or created in) its file."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sessionready import client_address
from sessionready.config import ConfigError, decode_section, read_toml, section_of
from sessionready.netaddr import is_loopback_host
from sessionready.state_dir import state_dir
from sessionready.typed import limits

SECRET_BYTES = 32  # 256 bits: the key that seals logins is derived from it


@dataclass(frozen=True)
class DashboardConfig:
    """Every key of ``[dashboard]`` with its default (docs/dashboard.md, dashboard/dashboard.sample.toml)."""

    monitor_url: str = field(default="", metadata=limits(max_len=400))
    ca_file: str = field(default="", metadata=limits(max_len=4096))
    allow_insecure_http: bool = False
    host: str = field(default="127.0.0.1", metadata=limits(max_len=255))
    port: int = field(default=8050, metadata=limits(ge=0, le=65_535))
    # The secret that seals logins into cookies and signs the login form; empty:
    # <state dir>/dashboard-secret.key, created 0600 if absent. Dashboards behind one load
    # balancer need the same file's content (docs/dashboard.md, "Several dashboards").
    secret_key_file: str = field(default="", metadata=limits(max_len=4096))
    # Idle limit of a dashboard login; the monitor's own expiry (expires_at) also applies.
    session_minutes: int = field(default=60, metadata=limits(ge=1, le=24 * 60))
    # An IANA zone for every viewer; empty: each viewer's browser zone.
    time_zone: str = field(default="", metadata=limits(max_len=64))
    # Cookies are Secure unless the page is served over plain HTTP from this machine to this
    # machine (browser and dashboard both on loopback: `make demo`, tests). false: Secure only
    # over https (a plain-HTTP network you trust; not advised).
    cookie_secure: bool = True
    # The address of the TLS proxy in front, e.g. "127.0.0.1"; "" = none. Only requests from
    # it may name the browser's address and scheme (X-Forwarded-For, -Proto, -Host); from
    # anyone else those headers are dropped.
    trusted_proxy: str = field(default="", metadata=limits(max_len=64))
    request_timeout_s: float = field(default=10.0, metadata=limits(ge=0.5, le=120))
    # The server (waitress): a connection that sends nothing for idle_timeout_s is closed; at
    # most connection_limit connections at once, and connections_per_address from one
    # address (0 = no cap; not applied to trusted_proxy). A browser keeps about 6.
    idle_timeout_s: float = field(default=10.0, metadata=limits(ge=1, le=300))
    connection_limit: int = field(default=500, metadata=limits(ge=10, le=10_000))
    connections_per_address: int = field(default=50, metadata=limits(ge=0, le=10_000))
    # Logins per minute from one browser address, counted here before the monitor is asked.
    login_attempts_per_minute: int = field(default=10, metadata=limits(ge=1, le=10_000))
    # A secret shared with the monitor (its client_address_secret_file): the dashboard signs
    # each login's browser address with it, so the monitor limits logins per person and not
    # per dashboard. "" = not sent (every login then counts against the dashboard's address).
    client_address_secret_file: str = field(default="", metadata=limits(max_len=4096))


def default_state_dir() -> Path:
    """systemd's StateDirectory when run as a service, else the user's state directory."""
    # The XDG layout on every platform, as docs/dashboard.md says (the agent's follows the platform).
    return state_dir("dashboard", platform="linux")


def load_dashboard_config(path: Path | None, **overrides: object) -> DashboardConfig:
    """The file's ``[dashboard]`` table (if a file is given), then the non-None overrides; validated."""
    config = DashboardConfig()
    if path is not None:
        document = read_toml(path)
        table = section_of(document, path, "dashboard", {"dashboard"})
        config = decode_section(DashboardConfig, table, path, "dashboard")
    changes = {key: value for key, value in overrides.items() if value is not None}
    config = replace(config, **changes)
    validate(config)
    return config


def validate(config: DashboardConfig) -> None:
    """ConfigError with one sentence for anything the dashboard could not run with."""
    monitor_base_url(config)
    if config.ca_file and not os.path.isfile(config.ca_file):
        raise ConfigError(f"the CA file {config.ca_file} does not exist")
    if config.trusted_proxy:
        try:
            ipaddress.ip_address(config.trusted_proxy)
        except ValueError:
            raise ConfigError(f"trusted_proxy '{config.trusted_proxy}' is not an IP address: name the one proxy in front, e.g. 127.0.0.1") from None
    if config.client_address_secret_file:
        client_address.read_shared_secret(config.client_address_secret_file)
    if config.time_zone:
        try:
            ZoneInfo(config.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"time_zone '{config.time_zone}' is not a known IANA time zone (e.g. Europe/Berlin)") from None


def monitor_base_url(config: DashboardConfig) -> str:
    """The monitor's base URL without a trailing slash. Plain HTTP to another machine would carry
    every user's password and session token in clear, so it needs ``allow_insecure_http``."""
    raw = config.monitor_url.strip()
    if not raw:
        raise ConfigError("no monitor given: pass --monitor URL or set monitor_url in [dashboard]")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"'{raw}' is not an http(s) URL (expected e.g. https://monitor.example.org:8470)")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError("the monitor URL must be scheme, host, port and path only (no user, query or fragment)")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname) and not config.allow_insecure_http:
        raise ConfigError(
            f"refusing to send passwords and tokens in clear text to {parts.hostname}: use https://, "
            "or set allow_insecure_http = true (--allow-insecure-http) if this network is trusted"
        )
    return raw.rstrip("/")


def secret_key(config: DashboardConfig) -> bytes:
    """The login secret: the configured file, else one in the state directory, created (0600)
    on first start. Logins are sealed under a key derived from it, so they outlive a restart
    and hold on every dashboard given the same file; a new secret ends every login."""
    path = Path(config.secret_key_file) if config.secret_key_file else default_state_dir() / "dashboard-secret.key"
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(SECRET_BYTES) + "\n")
        text = path.read_text().strip()
    except FileExistsError:  # another process created it meanwhile
        text = path.read_text().strip()
    except OSError as error:
        raise ConfigError(f"cannot use the secret key file {path}: {error.strerror or error.__class__.__name__}") from None
    if len(text) < 32:
        raise ConfigError(f"the secret key file {path} holds fewer than 32 characters: use at least 128 random bits")
    return text.encode()
