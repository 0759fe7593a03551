"""Issue 16 part 6, faults of the store under real monitor processes, each with its numbers:
reports sent, acknowledged and stored.

- PostgreSQL stopped abruptly (``pg_ctl stop -m immediate``, as a crash) and started again while
  agents post reports to two monitors: meanwhile every answer is a 503 with a clear body (never
  a 500), the monitors reconnect by themselves, and every report acknowledged is in the
  database. The test's server commits synchronously (``synchronous_commit = on``, as a
  production server): an acknowledged report is one the server had written before it died.
- The disk under the SQLite store fills up (a 16 MiB tmpfs mounted by the test, and a file
  filling what is left; a fresh store's WAL alone grows to about 4 MiB before its first
  checkpoint): reports are answered 503 ``store_full`` and the log says the disk is
  full; the file passes ``PRAGMA integrity_check``; once space returns the same monitor stores
  again without a restart.

The loaders stand for agents: each posts its next report until it is acknowledged (a 503 is
tried again, as an agent's spool does), so sent >= acknowledged, and stored must equal
acknowledged exactly: nothing acknowledged lost, nothing stored twice.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sessionready.typed import encode
from tests.conftest import Monitor, make_sample, start_monitor, unavailable, wait_for
from tests.test_leader_e2e import leaders_now

pytestmark = pytest.mark.slow

SPOOL = {"pending": 0, "dropped_background": 0, "rejected": 0, "dropped_live": 0}


@dataclass
class Loader:
    """One agent posting one report at a time, each until acknowledged, to its monitors in turn."""

    monitors: list[Monitor]
    token: str
    stop: threading.Event
    sent: int = 0  # requests made
    acknowledged: list[int] = field(default_factory=list)  # seqs answered stored or duplicate
    statuses: Counter = field(default_factory=Counter)
    unavailable_bodies: list[dict] = field(default_factory=list)
    slowest_503_s: float = 0.0

    def run(self) -> None:
        seq, turn = 1, 0
        envelope = self._envelope(seq)
        while not self.stop.is_set():
            monitor = self.monitors[turn % len(self.monitors)]
            turn += 1
            body = json.dumps({"spool": SPOOL, "reports": [envelope]}).encode()
            request = urllib.request.Request(
                f"{monitor.url}/api/v1/reports", data=body, method="POST",
                headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            )  # fmt: skip
            self.sent += 1
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status, answer = response.status, json.loads(response.read())
            except urllib.error.HTTPError as error:
                status, answer = error.code, json.loads(error.read() or b"{}")
            self.statuses[status] += 1
            if status == 200 and answer["results"][0]["status"] in ("stored", "duplicate"):
                self.acknowledged.append(seq)
                seq += 1
                envelope = self._envelope(seq)
                continue
            if status == 503:
                self.unavailable_bodies.append(answer)
                self.slowest_503_s = max(self.slowest_503_s, time.monotonic() - started)
            time.sleep(0.05)  # an agent backs off; the same report goes again

    @staticmethod
    def _envelope(seq: int) -> dict:
        return {"report_id": uuid.uuid4().hex, "seq": seq, "kind": "background", "sample": encode(make_sample())}


def run_loaders(loaders: list[Loader]) -> list[threading.Thread]:
    threads = [threading.Thread(target=loader.run, daemon=True) for loader in loaders]
    for thread in threads:
        thread.start()
    return threads


def acknowledged(loaders: list[Loader]) -> int:
    return sum(len(loader.acknowledged) for loader in loaders)


# --- PostgreSQL restarted under load -----------------------------------------------------------


def test_postgresql_restarted_under_load_503_meanwhile_nothing_acknowledged_lost(tmp_path: Path) -> None:
    import psycopg

    from monitor.store.postgres import PostgresStore
    from tests.pg import PostgresUnavailable, database_name, start_server

    try:
        server = start_server()  # its own server: this test stops it
    except PostgresUnavailable as error:
        unavailable(str(error))
    running: list[Monitor] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        url = server.new_database(migrated=True)
        # The test servers run with synchronous_commit off on their command line (fast, thrown
        # away); a database's own setting overrides it for every session on that database.
        server.admin(f'ALTER DATABASE "{database_name(url)}" SET synchronous_commit = on')
        config = tmp_path / "monitor.toml"
        config.write_text(f"[monitor]\nstore_url = {json.dumps(url)}\nleader_lease_s = 1.5\n")
        store = PostgresStore(url)
        try:
            tokens = {f"c-fault-{n}": store.create_token("client", f"c-fault-{n}") for n in range(4)}
            metrics = store.create_token("metrics", "prom")[1]
        finally:
            store.close()
        running += [start_monitor(tmp_path / "a", "--config", str(config)), start_monitor(tmp_path / "b", "--config", str(config))]
        loaders = [Loader(running, token, stop) for _, token in tokens.values()]
        threads = run_loaders(loaders)
        wait_for(lambda: acknowledged(loaders) >= 40, 20, "reports acknowledged before the restart", poll_s=0.05)

        server.crash()
        down_at, before = time.monotonic(), acknowledged(loaders)
        wait_for(lambda: sum(len(loader.unavailable_bodies) for loader in loaders) >= 4, 20, "503 answers while the database is down", poll_s=0.05)
        time.sleep(1.0)
        during = acknowledged(loaders) - before
        server.start()  # the database's own synchronous_commit = on still holds
        downtime_s = time.monotonic() - down_at
        up_at, restarted_with = time.monotonic(), acknowledged(loaders)
        wait_for(lambda: acknowledged(loaders) >= restarted_with + 40, 30, "reports acknowledged after the restart", poll_s=0.05)
        recovered_s = time.monotonic() - up_at
        stop.set()
        for thread in threads:
            thread.join(40)
        # Both monitors reconnected; one of them leads the risk service again.
        leaders = wait_for(lambda: leaders_now(running, metrics, "risk") or None, 10, "a risk leader after the restart", poll_s=0.1)
        logs = "".join(m.logs() for m in running)
    finally:
        stop.set()
        for thread in threads:
            thread.join(40)
        for monitor in running:
            monitor.stop()
        try:
            with psycopg.connect(url) as conn:
                stored = dict(conn.execute("SELECT participant_id, count(*) FROM samples GROUP BY participant_id").fetchall())
                distinct = conn.execute("SELECT count(DISTINCT (agent_id, seq)) FROM samples").fetchone()[0]
                commit_mode = conn.execute("SHOW synchronous_commit").fetchone()[0]
        finally:
            server.stop()

    statuses = sum((loader.statuses for loader in loaders), Counter())
    sent, acked = sum(loader.sent for loader in loaders), acknowledged(loaders)
    bodies = [body for loader in loaders for body in loader.unavailable_bodies]
    print(
        f"postgresql restart: {sent} requests sent, {acked} reports acknowledged, {sum(stored.values())} stored ({distinct} distinct); "
        f"answers {dict(statuses)}; database down {downtime_s:.1f} s, {during} acknowledged meanwhile; "
        f"40 acknowledged {recovered_s:.1f} s after it came back; slowest 503 {max(l.slowest_503_s for l in loaders):.1f} s"
    )
    assert commit_mode == "on"
    assert set(statuses) <= {200, 503} and statuses[503] >= 4, statuses
    assert {body["error"]["code"] for body in bodies} == {"store_unavailable"}, bodies[:3]
    assert all("try again" in body["error"]["message"] for body in bodies)
    # The answer is the one the API's document promises for this operation.
    from monitor.openapi import openapi_document

    assert "503" in openapi_document()["paths"]["/api/v1/reports"]["post"]["responses"]
    # A request whose commit made it before the server died may be answered just after: one per
    # loader at most. Anything more would be acknowledged without a database.
    assert during <= len(loaders), "nothing is acknowledged while the database is down"
    for (participant, (_, token)), loader in zip(tokens.items(), loaders, strict=True):
        assert loader.token == token
        assert stored.get(participant, 0) == len(loader.acknowledged) == loader.acknowledged[-1], (participant, stored, len(loader.acknowledged))
    assert sum(stored.values()) == distinct == acked, "every acknowledged report stored, once"
    assert len(leaders) == 1
    assert "store unavailable" in logs and "Traceback" not in logs and "internal_error" not in logs
    assert "store_url" not in logs


# --- a full disk under the SQLite store --------------------------------------------------------


def test_a_full_disk_under_sqlite_is_a_clear_503_no_corruption_and_recovers(tmp_path: Path) -> None:
    mount = tmp_path / "store"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        unavailable(f"cannot mount a small tmpfs for the full disk (needs root): {done.stderr.strip()}")
    monitor: Monitor | None = None
    stop = threading.Event()
    try:
        monitor = start_monitor(mount)  # its log is beside the mount, not on the full disk
        from monitor.store.core import open_store

        store = open_store(mount)
        try:
            token = store.create_token("client", "c-disk")[1]
        finally:
            store.close()
        loader = Loader([monitor], token, stop)
        thread = run_loaders([loader])[0]
        wait_for(lambda: len(loader.acknowledged) >= 20, 20, "reports acknowledged before the disk fills", poll_s=0.05)
        # Fill what is left, leaving the store's files as they are.
        filler = mount / "filler"
        room = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
        descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(descriptor, b"\1" * 65536):
                pass
        except OSError:  # ENOSPC: the disk is full
            pass
        finally:
            os.close(descriptor)
        full_with = len(loader.acknowledged)
        assert filler.stat().st_size >= room // 2, "the store itself had not filled the disk already"
        wait_for(lambda: len(loader.unavailable_bodies) >= 5, 30, "503 answers on the full disk", poll_s=0.05)
        full_at = len(loader.acknowledged)
        time.sleep(0.5)
        stuck = len(loader.acknowledged) - full_at
        filler.unlink()  # space returns
        wait_for(lambda: len(loader.acknowledged) >= full_at + 20, 30, "reports acknowledged once space returned", poll_s=0.05)
        stop.set()
        thread.join(40)
        logs = monitor.logs()
    finally:
        stop.set()
        if monitor is not None:
            monitor.stop()
        database = mount / "sessionready.sqlite3"
        integrity, stored = "", -1
        if database.exists():
            with sqlite3.connect(database) as db:
                integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
                stored = db.execute("SELECT count(*) FROM samples").fetchone()[0]
                seqs = [row[0] for row in db.execute("SELECT seq FROM samples ORDER BY seq")]
            db.close()
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)

    bodies = loader.unavailable_bodies
    print(
        f"full disk: {loader.sent} requests sent, {len(loader.acknowledged)} acknowledged ({full_with} before the disk filled), "
        f"{stored} stored; answers {dict(loader.statuses)}; integrity_check: {integrity}"
    )
    assert set(loader.statuses) <= {200, 503}, loader.statuses
    assert {body["error"]["code"] for body in bodies} == {"store_full"}, bodies[:3]
    assert "disk is full" in bodies[0]["error"]["message"]
    assert stuck <= 1, "nothing acknowledged while the disk is full"
    assert integrity == "ok"
    assert stored == len(loader.acknowledged) and seqs == loader.acknowledged, "every acknowledged report stored once, none else"
    assert "store unavailable" in logs and "is full" in logs and "Traceback" not in logs
