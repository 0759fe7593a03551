"""Everything the demo keeps in its data directory: the layout, the config files it writes for
each part (rewritten at every start), secrets with owner-only permissions, and the
certificate the monitor serves when it listens beyond loopback.

::

    DATA_DIR/monitor/                 the monitor's store (SQLite) and probe-key secret
    DATA_DIR/monitor.toml             the monitor's config
    DATA_DIR/dashboard.toml           the dashboard's config; dashboard-secret.key its cookie secret
    DATA_DIR/<role>-agent.toml        each agent's config; <role>-agent.token its token (0600),
    DATA_DIR/<role>-spool.sqlite3     and its spool
    DATA_DIR/tls/                     certificate and key (shaped link only)
    DATA_DIR/logs/*.log               every part's output
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sessionready.demo import DemoError

# Short enough that a demo shows real numbers within a minute, within the agent's allowed ranges.
AGENT_SETTINGS = {
    "background_interval_s": 10.0,
    "machine_interval_s": 5.0,
    "burst_seconds": 3.0,
    "pre_session_lead_minutes": 3.0,
    "sessions_poll_s": 10.0,
    "live_interval_s": 2.0,
    "notify": False,
}
CHECK_SETTINGS = {"udp_seconds": 5.0, "load_seconds": 3.0, "ramp_seconds": 1.0, "streams": 4}
RISK_INTERVAL_S = 2.0


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def store(self) -> Path:
        return self.root / "monitor"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, part: str) -> Path:
        return self.logs / f"{part}.log"

    def config(self, part: str) -> Path:
        return self.root / f"{part}.toml"

    def token(self, role: str) -> Path:
        return self.root / f"{role}-agent.token"

    def spool(self, role: str) -> Path:
        return self.root / f"{role}-spool.sqlite3"

    @property
    def tls_cert(self) -> Path:
        return self.root / "tls" / "cert.pem"

    @property
    def tls_key(self) -> Path:
        return self.root / "tls" / "key.pem"

    def create(self) -> None:
        """The directories, owner-only: they hold tokens and the store."""
        for directory in (self.root, self.store, self.logs):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_toml(path: Path, tables: dict[str, dict[str, object]]) -> Path:
    lines = ["# Written by 'sessionready demo' at every start; edits are overwritten."]
    for name, table in tables.items():
        lines += ["", f"[{name}]", *(f"{key} = {toml_value(value)}" for key, value in table.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def monitor_config(layout: Layout, *, tls: bool) -> Path:
    table: dict[str, object] = {"risk_interval_s": RISK_INTERVAL_S}
    if tls:
        table.update(tls_cert=str(layout.tls_cert), tls_key=str(layout.tls_key))
    return write_toml(layout.config("monitor"), {"monitor": table})


def agent_config(layout: Layout, role: str, monitor_url: str, ca_file: Path | None) -> Path:
    monitor: dict[str, object] = {"url": monitor_url, "token_file": str(layout.token(role))}
    if ca_file is not None:
        monitor["ca_file"] = str(ca_file)
    return write_toml(
        layout.config(f"{role}-agent"),
        {
            "monitor": monitor,
            "check": CHECK_SETTINGS,
            "room": {"microphone": False},  # the demo never opens this machine's microphone
            "agent": {"spool_path": str(layout.spool(role)), **AGENT_SETTINGS},
        },
    )


def dashboard_config(layout: Layout, monitor_url: str, port: int, ca_file: Path | None) -> Path:
    table: dict[str, object] = {
        "monitor_url": monitor_url,
        "host": "127.0.0.1",
        "port": port,
        "secret_key_file": str(layout.root / "dashboard-secret.key"),
    }
    if ca_file is not None:
        table["ca_file"] = str(ca_file)
    return write_toml(layout.config("dashboard"), {"dashboard": table})


def self_signed_certificate(layout: Layout, address: str) -> None:
    """A certificate for ``address`` (valid a week), made afresh at every start: the monitor
    serves HTTPS on the shaped link, and the agents and the dashboard trust exactly this one."""
    layout.tls_cert.parent.mkdir(mode=0o700, exist_ok=True)
    cert, key = layout.tls_cert, layout.tls_key
    process = subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "7",
            "-subj", "/CN=sessionready-demo", "-addext", f"subjectAltName=IP:{address}",
            "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "keyUsage=critical,digitalSignature",
            "-addext", "extendedKeyUsage=serverAuth", "-keyout", str(key), "-out", str(cert),
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if process.returncode != 0:
        problem = (process.stderr.strip().splitlines() or [f"exit status {process.returncode}"])[-1]
        raise DemoError(f"openssl could not make the monitor's certificate ({problem})")
    os.chmod(key, 0o600)
