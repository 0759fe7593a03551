"""The agent's config file (TOML): where the monitor is, how the check runs, verdict thresholds.

Tables: ``[monitor]``, ``[check]``, ``[room]``, ``[thresholds]``. Unknown keys are rejected by name. The
file is optional; a commented sample is ``agents/agent.sample.toml``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sessionready import quality
from sessionready.config import ConfigError, decode_section, read_toml
from sessionready.typed import limits

SECTIONS = {"monitor", "check", "room", "thresholds"}


@dataclass(frozen=True)
class MonitorSection:
    url: str = field(default="", metadata=limits(max_len=2048))
    ca_file: str = field(default="", metadata=limits(max_len=4096))
    allow_insecure_http: bool = False
    # A file holding the token (readable only by its owner); the token itself never goes here.
    token_file: str = field(default="", metadata=limits(max_len=4096))


@dataclass(frozen=True)
class CheckSection:
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


@dataclass(frozen=True)
class AgentConfig:
    monitor: MonitorSection = field(default_factory=MonitorSection)
    check: CheckSection = field(default_factory=CheckSection)
    room: RoomSection = field(default_factory=RoomSection)
    thresholds: quality.Thresholds = field(default_factory=quality.Thresholds)
    source: str = "defaults"

    @property
    def url(self) -> str:
        return self.monitor.url

    @property
    def ca_file(self) -> str | None:
        return self.monitor.ca_file or None

    @property
    def allow_insecure_http(self) -> bool:
        return self.monitor.allow_insecure_http

    def token(self) -> str:
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


def load_agent_config(path: Path | None) -> AgentConfig:
    """The given file (which must exist), else the default path if a file is there, else defaults."""
    if path is None:
        candidate = Path(os.environ["SESSIONREADY_CONFIG"]) if os.environ.get("SESSIONREADY_CONFIG") else default_config_path()
        if not candidate.exists():
            return AgentConfig()
        path = candidate
    document = read_toml(path)
    for key in document:
        if key not in SECTIONS:
            raise ConfigError(f"config file {path}: unknown key '{key}' (expected tables: {', '.join(sorted(SECTIONS))})")
    monitor = decode_section(MonitorSection, _table(document, "monitor", path), path, "monitor")
    check = decode_section(CheckSection, _table(document, "check", path), path, "check")
    room = decode_section(RoomSection, _table(document, "room", path), path, "room")
    try:
        thresholds = quality.Thresholds.from_mapping(_table(document, "thresholds", path))
    except ValueError as error:
        raise ConfigError(f"config file {path}: [thresholds] {error}") from None
    return AgentConfig(monitor, check, room, thresholds, str(path))


def _table(document: dict[str, object], name: str, path: Path) -> dict[str, object]:
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: '{name}' must be a table")
    return table
