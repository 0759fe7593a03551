"""The agent's config file (TOML): where the monitor is, how the check runs, verdict thresholds.

Tables: ``[monitor]``, ``[check]``, ``[room]``, ``[thresholds]``, ``[agent]`` (the daemon). Unknown keys
are rejected by name. The file is optional; a commented sample is ``agents/agent.sample.toml``.
``[monitor] url`` is one URL or a list of them (several monitors of one practice, tried in
order: ``agents/client.py``). The environment overrides the file: ``SESSIONREADY_MONITOR_URL``
the monitor's URL (several separated by commas or spaces) and ``SESSIONREADY_TOKEN`` the token (so a service manager can pass them without a file). Under
systemd, a credential named ``token`` (``LoadCredential=token:...``) is read from
``$CREDENTIALS_DIRECTORY/token`` when no token is given otherwise, before ``token_file``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from sessionready import quality
from sessionready.config import ConfigError, decode_section, read_toml
from sessionready.state_dir import state_dir
from sessionready.typed import limits

SECTIONS = {"monitor", "check", "room", "thresholds", "agent"}
MAX_MONITORS = 8  # a practice's monitors; more would only add timeouts before a report moves
URL_MAX_CHARS = 2048


@dataclass(frozen=True)
class MonitorSection:
    # One URL or several (a list in the file): the first is used while it answers.
    url: tuple[str, ...] = field(default=(), metadata=limits(max_len=MAX_MONITORS))
    ca_file: str = field(default="", metadata=limits(max_len=4096))
    allow_insecure_http: bool = False
    # A file holding the token (readable only by its owner); the token itself never goes here.
    token_file: str = field(default="", metadata=limits(max_len=4096))


@dataclass(frozen=True)
class CheckSection:
    # Adaptive length (docs/quality-model.md, "Adaptive length"): each phase runs at least its
    # min and at most its max, and stops in between once its figures are settled. With
    # adaptive = false (or --fixed-length) the phases run udp_seconds and load_seconds.
    adaptive: bool = True
    udp_min_seconds: float = field(default=2.0, metadata=limits(ge=0.5, le=600))
    udp_max_seconds: float = field(default=10.0, metadata=limits(ge=1, le=600))
    load_min_seconds: float = field(default=2.0, metadata=limits(ge=0.5, le=600))
    load_max_seconds: float = field(default=6.0, metadata=limits(ge=1, le=600))
    udp_seconds: float = field(default=5.0, metadata=limits(ge=1, le=600))
    load_seconds: float = field(default=4.0, metadata=limits(ge=1, le=600))
    ramp_seconds: float = field(default=1.0, metadata=limits(ge=0, le=60))
    streams: int = field(default=4, metadata=limits(ge=1, le=32))
    targets: tuple[str, ...] = field(default=(), metadata=limits(max_len=16))
    speedtest: bool = False
    # Legacy speedtest server entries (".../speedtest/upload.php") to use instead of
    # speedtest.net's list, e.g. a practice's own server; () = speedtest.net's.
    speedtest_servers: tuple[str, ...] = field(default=(), metadata=limits(max_len=16))


@dataclass(frozen=True)
class RoomSection:
    # May the check open the microphone? Only summary levels ever leave it, never audio.
    microphone: bool = True
    # An input device name or index as PortAudio knows it; "" = the system default.
    device: str = field(default="", metadata=limits(max_len=200))
    # dB to add to dBFS(A) to get dBA for this microphone, from a calibration; absent = uncalibrated.
    calibration_offset_db: float | None = field(default=None, metadata=limits(ge=-50, le=200))


# Intervals below half a second would only measure the agent itself (tests use 0.5 .. 2 s).
_interval = limits(ge=0.5, le=86_400)


@dataclass(frozen=True)
class AgentSection:
    """The daemon (``sessionready agent``): its spool and its cadences. See docs/agent.md."""

    # The on-disk spool (SQLite); "" = the platform's state directory (default_spool_path).
    spool_path: str = field(default="", metadata=limits(max_len=4096))
    spool_max_mb: float = field(default=20.0, metadata=limits(ge=0.01, le=100_000))
    background_interval_s: float = field(default=300.0, metadata=_interval)  # light network sample
    machine_interval_s: float = field(default=60.0, metadata=_interval)  # machine health
    burst_seconds: float = field(default=2.0, metadata=limits(ge=0.2, le=60))  # each background UDP burst
    # A full check this long before each session; fractions are allowed (tests use 0.1).
    pre_session_lead_minutes: float = field(default=15.0, metadata=limits(ge=0, le=1440))
    sessions_poll_s: float = field(default=60.0, metadata=_interval)  # asking the monitor for sessions
    live_interval_s: float = field(default=2.0, metadata=limits(ge=0.5, le=60))  # one live report each
    notify: bool = True  # a desktop notification when a pre-session check is not "ready"


@dataclass(frozen=True)
class AgentConfig:
    monitor: MonitorSection = field(default_factory=MonitorSection)
    check: CheckSection = field(default_factory=CheckSection)
    room: RoomSection = field(default_factory=RoomSection)
    thresholds: quality.Thresholds = field(default_factory=quality.Thresholds)
    source: str = "defaults"
    agent: AgentSection = field(default_factory=AgentSection)
    # From SESSIONREADY_TOKEN; wins over the token file. Never shown in a repr.
    token_override: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        """The first monitor's URL ("" when none is configured)."""
        return self.monitor.url[0] if self.monitor.url else ""

    @property
    def urls(self) -> tuple[str, ...]:
        """Every configured monitor URL, in the order they are tried."""
        return self.monitor.url

    @property
    def ca_file(self) -> str | None:
        return self.monitor.ca_file or None

    @property
    def allow_insecure_http(self) -> bool:
        return self.monitor.allow_insecure_http

    @property
    def spool_file(self) -> Path:
        return Path(self.agent.spool_path).expanduser() if self.agent.spool_path else default_spool_path()

    def token(self) -> str:
        if self.token_override:
            return self.token_override
        if not self.monitor.token_file:
            return ""
        try:
            return Path(self.monitor.token_file).read_text().strip()
        except OSError as error:
            raise ConfigError(f"cannot read the token file {self.monitor.token_file}: {error.strerror}") from None


def default_config_path() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home()))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "sessionready" / "agent.toml"


def default_spool_path(environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """Where the daemon keeps reports not yet delivered: state, not config and not cache.

    Under systemd (``StateDirectory=``) the unit's own state directory wins.
    """
    return state_dir(environ=environ, platform=platform) / "spool.sqlite3"


def load_agent_config(path: Path | None, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """The given file (which must exist), else the default path if a file is there, else defaults;
    then the environment's overrides (``environ``, default ``os.environ``)."""
    environ = os.environ if environ is None else environ
    return _with_environment(_load_file(path, environ), environ)


def _with_environment(config: AgentConfig, environ: Mapping[str, str]) -> AgentConfig:
    urls = split_urls(environ.get("SESSIONREADY_MONITOR_URL", ""))
    if urls:
        config = replace(config, monitor=replace(config.monitor, url=check_urls(urls, "SESSIONREADY_MONITOR_URL")))
    token = environ.get("SESSIONREADY_TOKEN", "").strip()
    if token:
        return replace(config, token_override=token)
    credentials = environ.get("CREDENTIALS_DIRECTORY", "").strip()
    if credentials and (Path(credentials) / "token").is_file():
        try:
            token = (Path(credentials) / "token").read_text().strip()
        except OSError as error:
            raise ConfigError(f"cannot read the token credential in {credentials}: {error.strerror}") from None
        if token:
            config = replace(config, token_override=token)
    return config


def _load_file(path: Path | None, environ: Mapping[str, str]) -> AgentConfig:
    if path is None:
        candidate = Path(environ["SESSIONREADY_CONFIG"]) if environ.get("SESSIONREADY_CONFIG") else default_config_path()
        if not candidate.exists():
            return AgentConfig()
        path = candidate
    document = read_toml(path)
    for key in document:
        if key not in SECTIONS:
            raise ConfigError(f"config file {path}: unknown key '{key}' (expected tables: {', '.join(sorted(SECTIONS))})")
    monitor_table = dict(_table(document, "monitor", path))
    if "url" in monitor_table:
        raw = monitor_table["url"]
        if isinstance(raw, str):
            monitor_table["url"] = [raw] if raw.strip() else []  # the single URL of earlier releases
        elif not isinstance(raw, list):
            raise ConfigError(f"config file {path}: key 'monitor.url': expected a URL or a list of URLs, got {type(raw).__name__}")
    monitor = decode_section(MonitorSection, monitor_table, path, "monitor")
    monitor = replace(monitor, url=check_urls(monitor.url, f"config file {path}: key 'monitor.url'"))
    check = decode_section(CheckSection, _table(document, "check", path), path, "check")
    for phase in ("udp", "load"):
        low, high = getattr(check, f"{phase}_min_seconds"), getattr(check, f"{phase}_max_seconds")
        if low > high:
            raise ConfigError(f"config file {path}: [check] {phase}_min_seconds ({low:g}) must not exceed {phase}_max_seconds ({high:g})")
    room = decode_section(RoomSection, _table(document, "room", path), path, "room")
    try:
        thresholds = quality.Thresholds.from_mapping(_table(document, "thresholds", path))
    except ValueError as error:
        raise ConfigError(f"config file {path}: [thresholds] {error}") from None
    agent = decode_section(AgentSection, _table(document, "agent", path), path, "agent")
    return AgentConfig(monitor, check, room, thresholds, str(path), agent)


def split_urls(raw: str) -> tuple[str, ...]:
    """Monitor URLs from one line (the environment, ``--monitor``): separated by commas or spaces."""
    return tuple(part for part in raw.replace(",", " ").split() if part)


def check_urls(urls: tuple[str, ...], where: str) -> tuple[str, ...]:
    """The URLs stripped, each non-empty, bounded and listed once; ConfigError naming ``where``.
    Whether each is a usable monitor URL (scheme, TLS) is ``agents.client.monitor_url``'s to say."""
    cleaned = tuple(url.strip() for url in urls)
    if len(cleaned) > MAX_MONITORS:
        raise ConfigError(f"{where}: at most {MAX_MONITORS} monitor URLs, got {len(cleaned)}")
    for index, url in enumerate(cleaned):
        if not url:
            raise ConfigError(f"{where}: URL {index + 1} of {len(cleaned)} is empty")
        if len(url) > URL_MAX_CHARS:
            raise ConfigError(f"{where}: URL {index + 1} is longer than {URL_MAX_CHARS} characters")
        if url.rstrip("/") in [u.rstrip("/") for u in cleaned[:index]]:
            raise ConfigError(f"{where}: {url} is listed twice")
    return cleaned


def _table(document: dict[str, object], name: str, path: Path) -> dict[str, object]:
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: '{name}' must be a table")
    return table
