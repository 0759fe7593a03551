"""The scale benchmark's servers besides the monitor: a PostgreSQL and an HAProxy, on loopback.

PostgreSQL is started by the tests' own function (tests/pg.py `start_server`): Debian's binaries, a new
data directory under /tmp, run as ``nobody`` when we are root (PostgreSQL refuses root),
listening only on a Unix socket in that directory. Unlike the tests' server it keeps the
default durability (``fsync``, ``synchronous_commit`` on), as a production server would, and
as the SQLite store does (WAL, ``synchronous=FULL``): a load test without it would measure a
store that loses acknowledged reports on a power cut.

HAProxy (Debian's ``haproxy``) gets a generated config: one HTTP frontend on 127.0.0.1 and the
monitors as its backend, round robin, keep-alive on both sides.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.core import BenchmarkError
from tests.pg import SUPERUSER, PostgresUnavailable, start_server



@dataclass
class Postgres:
    directory: Path
    pg_ctl: str
    as_user: list[str]

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.directory}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def processes(self) -> list[psutil.Process]:
        """The postmaster and its children (backends, writer, WAL writer, ...)."""
        pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        main = psutil.Process(pid)
        return [main, *main.children(recursive=True)]

    def stop(self) -> None:
        subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data_dir), "-m", "fast", "-w", "stop"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Postgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_postgres() -> Postgres:
    """A throwaway server as the tests start one (tests/pg.py), but with PostgreSQL's durability:
    the benchmark measures commits."""
    try:
        server = start_server(durable=True, prefix="sr-bench-pg-")
    except PostgresUnavailable as error:
        raise BenchmarkError(str(error)) from None
    return Postgres(server.directory, server.pg_ctl, server.as_user)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def haproxy_config(port: int, backends: list[str]) -> str:
    """Round robin over the monitors (``http://HOST:PORT`` each), HTTP keep-alive both sides."""
    servers = "\n".join(f"    server m{i} {url.removeprefix('http://')}" for i, url in enumerate(backends, 1))
    return f"""global
    maxconn 8000
    nbthread 1

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 75s
    timeout server 30s
    timeout http-keep-alive 75s

frontend agents
    bind 127.0.0.1:{port}
    default_backend monitors

backend monitors
    balance roundrobin
    http-reuse always
{servers}
"""


@dataclass
class HAProxy:
    process: subprocess.Popen
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> HAProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_haproxy(workdir: Path, backends: list[str]) -> HAProxy:
    binary = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if binary is None:
        raise BenchmarkError("haproxy is not installed (make system-deps installs Debian's haproxy)")
    port = free_port()
    config = workdir / "haproxy.cfg"
    config.write_text(haproxy_config(port, backends))
    check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30, check=False)
    if check.returncode != 0:
        raise BenchmarkError(f"haproxy refused its config: {check.stderr.strip()[-300:]}")
    log = (workdir / "haproxy.log").open("w")
    process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(f"haproxy stopped at start: {(workdir / 'haproxy.log').read_text()[-300:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return HAProxy(process, f"http://127.0.0.1:{port}")
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    raise BenchmarkError("haproxy did not start listening within 15 s")
