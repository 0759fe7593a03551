"""The monitor's configuration: TOML table ``[monitor]``; command-line flags override it."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from monitor.alerts.config import AlertsConfig, load_alerts
from monitor.retention import RetentionConfig, load_retention
from sessionready.config import ConfigError, decode_section, read_toml, section_of
from sessionready.typed import limits

DEFAULT_PORT = 8470
HOST_PORT_PATTERN = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}"


@dataclass(frozen=True)
class MonitorConfig:
    """Everything the monitor needs to start. Defaults are the embedded, single-machine set-up."""

    host: str = field(default="127.0.0.1", metadata=limits(max_len=255))
    # HTTP and the UDP reflector use the same port number (TCP and UDP).
    port: int = field(default=DEFAULT_PORT, metadata=limits(ge=0, le=65535))
    # Where the SQLite store and the probe-key secret live; "" = the platform default.
    data_dir: str = field(default="", metadata=limits(max_len=4096))
    # Where the monitor keeps its data: "" = the embedded SQLite store in data_dir; a
    # postgresql:// URL = a PostgreSQL database (docs/postgresql.md), which several monitors may
    # share. The password belongs in the environment (PGPASSWORD) or a password file
    # (PGPASSFILE, ~/.pgpass), not in this URL; repr=False: a URL is never printed whole.
    store_url: str = field(default="", repr=False, metadata=limits(max_len=4096))
    # host:port clients should send UDP probes to, when it differs from the monitor's own
    # address (NAT, a UDP load balancer); "" = the host the client used for HTTP and `port`.
    advertise_udp: str = field(default="", metadata=limits(max_len=262, pattern=f"({HOST_PORT_PATTERN})?"))
    # Whom a UDP probe key answers: only the IP address that asked for it over HTTP, so that
    # nobody can aim the reflector at a spoofed address. "address" = the HTTP connection's
    # peer; "forwarded" = the last X-Forwarded-For entry, for a monitor reachable only through
    # a TLS proxy that sets it; "off" = the first address that uses the key (the reflector
    # then echoes to whoever holds a key, as before).
    probe_key_binding: Literal["address", "forwarded", "off"] = "address"
    # The address people open the monitor at (https://monitor.example.org), for the full check
    # link URLs `monitor link create` prints; "" = print the path only.
    public_url: str = field(default="", metadata=limits(max_len=2048, pattern=r"(https?://[^\s?#]+)?"))
    # HTTPS: both or neither. Without them the monitor serves plain HTTP and should stay on
    # loopback or behind a TLS proxy (docs/deployment.md).
    tls_cert: str = field(default="", metadata=limits(max_len=4096))
    tls_key: str = field(default="", metadata=limits(max_len=4096))
    probe_key_ttl_s: int = field(default=300, metadata=limits(ge=10, le=86_400))
    max_download_bytes: int = field(default=1 << 30, metadata=limits(ge=1 << 20, le=1 << 40))
    max_upload_bytes: int = field(default=1 << 30, metadata=limits(ge=1 << 20, le=1 << 40))
    # Probe limits per token, by what costs (docs/monitor.md, "Throughput endpoints"): UDP
    # probe sessions (keys), a token bucket holding probe_session_burst and refilled at
    # probe_sessions_per_hour. A check takes 3 and a live session about 24 an hour, so a burst
    # of 30 lets a person re-run a check ten times in a row and is never in the way of one.
    probe_session_burst: int = field(default=30, metadata=limits(ge=3, le=100_000))
    probe_sessions_per_hour: int = field(default=60, metadata=limits(ge=1, le=1_000_000))
    # Throughput bytes (download + upload) per token and hour, as a bucket that starts full.
    # A check moves about 2 x 4 s x the link rate: 1 GB at 1 Gbit/s, 10 GB at 10 Gbit/s.
    probe_bytes_per_hour: int = field(default=64 << 30, metadata=limits(ge=1 << 20, le=1 << 50))
    # Downloads and uploads in flight at once per token; a check runs 4 streams.
    probe_streams_per_token: int = field(default=16, metadata=limits(ge=1, le=1024))
    max_report_bytes: int = field(default=256 * 1024, metadata=limits(ge=4096, le=64 << 20))
    max_udp_flows: int = field(default=4096, metadata=limits(ge=16, le=1_000_000))
    # A new HTTP connection must send a complete request head within this many seconds or be
    # closed: idle connections would otherwise hold file descriptors until none are left.
    header_timeout_s: float = field(default=10.0, metadata=limits(ge=0.5, le=300))
    # Connections at once from one remote IP; more are closed on accept. A whole practice may
    # share one NAT address (a check takes 5, an agent 1-2, a browser 6), so the default is
    # roomy; 0 = no cap, for a monitor behind a TLS proxy (every connection is the proxy's).
    max_connections_per_address: int = field(default=256, metadata=limits(ge=0, le=65_536))
    # Dashboard users (monitor/http/users.py): a login lasts at most user_session_hours, and ends
    # sooner when unused for user_idle_minutes. Login attempts per minute per address: the
    # peer's, or the browser's as the dashboard signs it with the secret in
    # client_address_secret_file (the same file the dashboard reads; "" = no signed addresses).
    user_session_hours: float = field(default=12.0, metadata=limits(ge=0.1, le=720))
    user_idle_minutes: float = field(default=60.0, metadata=limits(ge=1, le=43_200))
    login_attempts_per_minute: int = field(default=30, metadata=limits(ge=1, le=10_000))
    client_address_secret_file: str = field(default="", metadata=limits(max_len=4096))
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # The risk engine assesses sessions starting within this many minutes (and alerts on them),
    # every risk_interval_s seconds; live sessions are followed every 2 s regardless.
    risk_horizon_minutes: int = field(default=120, metadata=limits(ge=5, le=7 * 24 * 60))
    risk_interval_s: float = field(default=15.0, metadata=limits(ge=1, le=3600))
    # Monitors sharing one store run the risk service and the alert worker once: the holder of
    # each job's lease renews it every leader_lease_s / 3; another takes over within
    # leader_lease_s * 4/3 of the holder dying (monitor/leader.py, docs/deployment.md).
    leader_lease_s: float = field(default=3.0, metadata=limits(ge=0.3, le=60))
    # The browser check's WebRTC probe streams (docs/browser-check.md section 3, docs/deployment.md).
    # ICE binds one UDP port per stream (on one address) within rtc_port_min..rtc_port_max,
    # inclusive: the range a firewall must open; 0 and 0 = any port the OS picks. One port
    # (advertise_udp) is the reflector's; a range is needed here, one port per stream.
    rtc_port_min: int = field(default=20000, metadata=limits(ge=0, le=65535))
    rtc_port_max: int = field(default=20255, metadata=limits(ge=0, le=65535))
    # An IP address to offer the page as well as the monitor's own: the public side of a NAT that
    # forwards the range port for port. An address, not a name: browsers resolve no names in ICE.
    rtc_advertise_ip: str = field(default="", metadata=limits(max_len=45, pattern=r"([0-9A-Fa-f:.]+)?"))
    # A stream (its peer and its records) lasts at most this long; a browser check needs about 30 s.
    rtc_max_seconds: int = field(default=120, metadata=limits(ge=10, le=3600))
    # Streams at once; more are refused (503) until one ends. Each costs a UDP port and some CPU.
    rtc_max_peers: int = field(default=64, metadata=limits(ge=1, le=10_000))
    # The browser check's phases: the idle probe stream, then each of download and upload (the
    # command-line check's fixed-length defaults). Shorter phases finish sooner and know less.
    link_udp_seconds: float = field(default=5.0, metadata=limits(ge=1, le=60))
    link_load_seconds: float = field(default=4.0, metadata=limits(ge=1, le=60))
    # The idle phase stops once its figures are settled (sessionready/settle.py, the CLI's rule,
    # applied by the monitor to the stream it terminates), between these lengths (the CLI's
    # [check] udp_min_seconds and udp_max_seconds); false: it runs link_udp_seconds, fixed.
    link_adaptive: bool = True
    link_udp_min_seconds: float = field(default=2.0, metadata=limits(ge=1, le=60))
    link_udp_max_seconds: float = field(default=10.0, metadata=limits(ge=1, le=60))
    # With link_adaptive, each throughput phase stops once settled too, between these lengths
    # (the CLI's [check] load_min_seconds and load_max_seconds); without, it runs link_load_seconds.
    link_load_min_seconds: float = field(default=2.0, metadata=limits(ge=1, le=60))
    link_load_max_seconds: float = field(default=6.0, metadata=limits(ge=1, le=60))
    # The top-level [alerts] table (monitor/alerts/config.py); not a key of [monitor].
    alerts: AlertsConfig = field(default_factory=AlertsConfig, repr=False)
    # The top-level [retention] table (monitor/retention.py): how long each kind of row is kept.
    retention: RetentionConfig = field(default_factory=RetentionConfig, repr=False)

    def __post_init__(self) -> None:
        check_store_url(self.store_url)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key must be given together")
        if self.advertise_udp:
            host, _, port = self.advertise_udp.rpartition(":")
            if not 1 <= int(port) <= 65535 or host.startswith("-") or host.endswith("-"):
                raise ConfigError(f"advertise_udp must be HOST:PORT with a port from 1 to 65535, got '{self.advertise_udp}'")
        if (self.rtc_port_min == 0) != (self.rtc_port_max == 0) or self.rtc_port_min > self.rtc_port_max:
            raise ConfigError(
                f"rtc_port_min..rtc_port_max must be a range of UDP ports (min <= max), or both 0 for any port; got {self.rtc_port_min}..{self.rtc_port_max}"
            )
        if self.link_udp_min_seconds > self.link_udp_max_seconds:
            raise ConfigError(f"link_udp_min_seconds ({self.link_udp_min_seconds:g}) must not exceed link_udp_max_seconds ({self.link_udp_max_seconds:g})")
        if self.link_load_min_seconds > self.link_load_max_seconds:
            raise ConfigError(f"link_load_min_seconds ({self.link_load_min_seconds:g}) must not exceed link_load_max_seconds ({self.link_load_max_seconds:g})")
        if self.rtc_advertise_ip:
            try:
                ipaddress.ip_address(self.rtc_advertise_ip)
            except ValueError:
                raise ConfigError(f"rtc_advertise_ip must be an IP address, got '{self.rtc_advertise_ip}'") from None

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir) if self.data_dir else default_data_dir()

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)


STORE_SCHEMES = ("postgresql", "postgres")  # libpq's two spellings


def check_store_url(url: str) -> None:
    """ConfigError unless ``url`` is "" or a postgresql:// URL. The error never repeats the URL:
    it may hold a password."""
    if not url:
        return
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in STORE_SCHEMES:
        got = f"; got a {scheme}:// URL" if separator and scheme.isalnum() and len(scheme) <= 20 else ""
        raise ConfigError(f'store_url must be "" (the embedded SQLite store in data_dir) or a postgresql:// URL{got}')
    if any(character.isspace() for character in url):
        raise ConfigError("store_url must not contain spaces or line breaks (percent-encode them)")


def default_data_dir() -> Path:
    """systemd's StateDirectory when run as a service, else the user's data directory."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "sessionready" / "monitor"


def load_config(path: Path | None, **overrides: object) -> MonitorConfig:
    """The config file's ``[monitor]`` table (if a file is given) with non-None overrides applied."""
    table: dict[str, object] = {}
    alerts = AlertsConfig()
    retention = RetentionConfig()
    if path is not None:
        document = read_toml(path)
        table = dict(section_of(document, path, "monitor", {"monitor", "alerts", "retention"}))
        if "alerts" in table:
            raise ConfigError(f"config file {path}: key 'monitor.alerts': alerts go in their own top-level [alerts] table")
        if "probe_requests_per_minute" in table:
            raise ConfigError(
                f"config file {path}: key 'monitor.probe_requests_per_minute' was replaced by probe_session_burst, "
                "probe_sessions_per_hour, probe_bytes_per_hour and probe_streams_per_token (docs/monitor.md)"
            )
        alerts = load_alerts(document.get("alerts", {}), path)
        retention = load_retention(document.get("retention", {}), path)
    table.update({key: value for key, value in overrides.items() if value is not None})
    source = path if path is not None else "command line"
    return replace(decode_section(MonitorConfig, table, source, "monitor"), alerts=alerts, retention=retention)


def with_port(config: MonitorConfig, port: int) -> MonitorConfig:
    return replace(config, port=port)
