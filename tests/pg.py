"""A real PostgreSQL server for the tests, started and removed by the tests themselves.

Debian's PostgreSQL (``make system-deps``) runs from a temporary data directory as an ordinary
user: the tests run as root in CI, and PostgreSQL refuses to run as root, so as root the
server runs as ``nobody`` (``setpriv``) with the directory owned by it. It listens only on a
Unix socket inside that directory (``listen_addresses=''``): nothing is reachable from the
network. Durability is switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``):
a test database is thrown away, and without them creating a database takes milliseconds.

Each pytest-xdist worker starts its own server (its own directory and socket), so workers
never share a database or a lock. Each test gets a fresh database (``new_database``): empty,
for the migration tests, or a copy of one the store migrated once per server (cheaper).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "postgres"  # the role initdb creates (-U); trust authentication on the socket only
SERVER_USER = "nobody"  # who runs the server when the tests run as root
TEMPLATE = "sessionready_template"  # a database at the latest schema, copied per test
_COUNTER = itertools.count(1)


def database_name(url: str) -> str:
    """The database of a URL made by ``PostgresServer.url`` (the socket directory is in its query)."""
    return url.split("@/", 1)[1].split("?", 1)[0]


class PostgresUnavailable(Exception):
    """initdb or pg_ctl is missing or failed; ``str()`` says which and why."""


def _binaries() -> tuple[str, str]:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (candidate / "initdb").exists():
                return str(candidate / "initdb"), str(candidate / "pg_ctl")
        raise PostgresUnavailable("PostgreSQL's initdb/pg_ctl are not installed (make system-deps installs Debian's postgresql)")
    return initdb, pg_ctl


@dataclass
class PostgresServer:
    """One running server: ``directory`` holds its data (``data/``) and its socket."""

    directory: Path
    pg_ctl: str
    as_user: list[str]
    options: str  # the server's command-line settings (pg_ctl -o)
    start_seconds: float = 0.0  # initdb + start, measured here (docs/testing.md quotes it)
    databases: list[str] = field(default_factory=list)
    template_ready: bool = False

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "postgres") -> str:
        """A libpq URL through the socket directory (no host, no port, no password)."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.directory}"

    def admin(self, sql: str) -> None:
        """Run one statement as the superuser, outside a transaction (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self, migrated: bool = False) -> str:
        """A fresh database, empty or (``migrated``) a copy of one the store has already brought
        to the latest schema: copying it costs less than migrating each test's database, and
        the migrations themselves are tested on empty ones (tests/test_store_postgres.py)."""
        name = f"t{os.getpid()}_{next(_COUNTER)}"
        if migrated:
            self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{self._template()}" STRATEGY FILE_COPY')
        else:
            self.admin(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.url(name)

    def _template(self) -> str:
        if not self.template_ready:
            from monitor.store.postgres import upgrade

            self.admin(f'CREATE DATABASE "{TEMPLATE}"')
            upgrade(self.url(TEMPLATE))
            self.template_ready = True
        return TEMPLATE

    def drop_database(self, url: str) -> None:
        name = database_name(url)
        # WITH (FORCE): a test that failed half-way may leave a connection open.
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.databases:
            self.databases.remove(name)

    def add_password_role(self, role: str, password: str, database_url: str) -> str:
        """A login role that must give ``password`` (SCRAM) on the socket, owning the database
        at ``database_url``; every other role stays trusted. Returns a URL for it without the
        password."""
        import psycopg

        self.admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        name = database_name(database_url)
        self.admin(f'ALTER DATABASE "{name}" OWNER TO {role}')
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(f"local all {role} scram-sha-256\n" + hba.read_text())
        self.admin("SELECT pg_reload_conf()")
        url = f"postgresql://{role}@/{name}?host={self.directory}"
        deadline = time.monotonic() + 30
        while True:  # the reload is asynchronous: wait until a password is asked for
            try:
                psycopg.connect(url, password="").close()
            except psycopg.OperationalError as error:
                if "password" in str(error):
                    return url
            if time.monotonic() > deadline:
                raise PostgresUnavailable("pg_hba.conf reload did not take effect")
            time.sleep(0.05)

    def start(self) -> None:
        """Start the server on its data directory (again, after ``crash``)."""
        done = subprocess.run(
            [*self.as_user, self.pg_ctl, "-D", str(self.data_dir), "-l", str(self.directory / "server.log"), "-o", self.options, "-w", "-t", "60", "start"],
            capture_output=True, text=True, timeout=90, env={**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"}, cwd=self.directory, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            log = (self.directory / "server.log").read_text(errors="replace")[-800:] if (self.directory / "server.log").exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {done.stderr.strip()[-300:]} {log}")

    def crash(self) -> None:
        """Stop the server at once, as a crash would (``-m immediate``: no checkpoint, every
        connection cut), keeping its data for ``start``."""
        done = subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"], capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise PostgresUnavailable(f"pg_ctl stop failed: {done.stderr.strip()[-300:]}")

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        with contextlib.suppress(PostgresUnavailable, subprocess.TimeoutExpired):
            self.crash()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_server(*, durable: bool = False, prefix: str = "sr-pg-") -> PostgresServer:
    """initdb in a new temporary directory and start the server on a socket in it.

    The tests' server skips durability (no fsync, asynchronous commits: a test database is
    thrown away); ``durable`` keeps PostgreSQL's defaults, as a benchmark of commits needs
    (benchmarks/scale_servers.py)."""
    initdb, pg_ctl = _binaries()
    started = time.monotonic()
    # Short and outside pytest's root-only temp tree: the socket path has a 107-byte limit, and
    # the server's user must be able to reach the directory.
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        as_user = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", "--"]
    env = {**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    data = directory / "data"
    try:
        done = subprocess.run(
            [*as_user, initdb, "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", *([] if durable else ["--no-sync"]), "--no-instructions"],
            capture_output=True, text=True, timeout=120, env=env, cwd=directory, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        options = f"-k {directory} -c listen_addresses='' " + (
            "-c max_connections=100 -c shared_buffers=128MB"
            if durable
            else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=32MB"
        )
        server = PostgresServer(directory, pg_ctl, as_user, options)
        server.start()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    server.start_seconds = time.monotonic() - started
    return server
