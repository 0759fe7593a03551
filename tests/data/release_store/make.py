"""Build the store a released monitor leaves behind, for the upgrade tests: run it from a
checkout of that release, and it drives a real monitor process through its own API and CLI
until every table holds rows, then writes the SQLite file and a manifest of row counts.

    git worktree add /tmp/release <commit> && cd /tmp/release
    /path/to/.venv/bin/python -m tests.data.release_store.make OUT_DIR

Everything goes through the monitor's public surface (HTTP API, `sessionready monitor` CLI),
so the rows are exactly what that release writes. The clock is the real one: sessions are
placed around the time of the run, and the upgrade tests must not assume a date.
"""

from __future__ import annotations

import copy
import json
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sessionready.typed import encode, rfc3339
from tests.conftest import CHECK, make_sample, run_cli, start_monitor

PASSWORD = "a long enough password"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main(out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="release-store-"))
    config = work / "monitor.toml"
    # A webhook nobody answers: alerts are raised, deliveries queued and attempts recorded.
    config.write_text(
        "[monitor]\nrisk_interval_s = 1\n\n[alerts]\nmin_backoff_s = 1.0\n\n[[alerts.webhook]]\n"
        f'name = "it-hook"\nurl = "http://127.0.0.1:{closed_port()}/hook"\nformat = "generic"\naudience = "it"\n'
    )
    data = work / "data"
    monitor = start_monitor(data, "--config", str(config))
    try:
        populate(monitor, data)
    finally:
        monitor.stop()
    database = data / "sessionready.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        counts = {table: db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}
        user_version = db.execute("PRAGMA user_version").fetchone()[0]
    empty = [table for table, count in counts.items() if count == 0]
    if empty:
        raise SystemExit(f"tables left empty: {', '.join(empty)}")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(database, out / "sessionready.sqlite3")
    manifest = {"made_at": rfc3339(time.time()), "user_version": user_version, "rows": counts}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(work)
    print(json.dumps(manifest, indent=1, sort_keys=True))


def populate(monitor, data: Path) -> None:  # noqa: ANN001 - tests.conftest.Monitor
    def cli(*args: str, password: bool = False) -> str:
        result = run_cli(*args, "--data-dir", str(data), input=PASSWORD + "\n" if password else None)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def call(method: str, path: str, token: str | None, body: object = None, expect: tuple[int, ...] = (200, 201, 204)) -> dict:
        status, answer = monitor.json(method, path, token, body)
        assert status in expect, (method, path, status, answer)
        return answer

    it = monitor.token("it", "it-1")
    client = monitor.token("client", "c-1")
    therapist = monitor.token("therapist", "t-1")
    monitor.token("metrics", "prom")
    revoked = monitor.token("client", "c-gone")
    token_id = call("GET", "/api/v1/whoami", revoked)["agent_id"]
    cli("monitor", "token", "revoke", token_id)

    cli("monitor", "user", "create", "--username", "admin.one", "--role", "admin", "--password-stdin", password=True)
    cli("monitor", "user", "create", "--username", "th.one", "--role", "therapist", "--participant", "t-1", "--password-stdin", password=True)
    login = call("POST", "/api/v1/login", None, {"username": "th.one", "password": PASSWORD})["token"]
    call("POST", "/api/v1/login", None, {"username": "th.one", "password": "not the password at all"}, expect=(401,))

    for participant, role in (("c-1", "client"), ("c-2", "client"), ("t-1", "therapist")):
        call("POST", "/api/v1/participants", it, {"participant_id": participant, "role": role})
    call("POST", "/api/v1/caseload", it, {"therapist_id": "t-1", "client_id": "c-1"})
    call("POST", "/api/v1/enrollments", it, {"role": "client", "participant_id": "c-3", "ttl_hours": 24})
    spent = call("POST", "/api/v1/enrollments", it, {"role": "client", "participant_id": "c-4"})
    call("DELETE", f"/api/v1/enrollments/{spent['enrollment']['code_id']}", it)

    now = time.time()
    soon = {"session_id": "s-soon", "therapist_id": "t-1", "client_id": "c-1", "start": rfc3339(now + 1200), "planned_duration_s": 3000}
    call("POST", "/api/v1/sessions", it, soon)
    later = {"session_id": "s-later", "therapist_id": "t-1", "client_id": "c-2", "start": rfc3339(now + 86_400), "planned_duration_s": 3000}
    call("POST", "/api/v1/sessions", it, later)
    call("POST", "/api/v1/sessions/s-later/state", it, {"state": "cancelled"})
    csv = f"session_id,therapist_id,client_id,start,planned_duration_minutes\ns-imported,t-1,c-1,{rfc3339(now + 7 * 86_400)},50\n"
    status, raw = monitor.request("POST", "/api/v1/sessions/import", it, csv.encode(), {"Content-Type": "text/csv"})
    assert status == 200, raw

    # A check at each end: the client's loses 8 % upstream, so the coming session is at risk
    # and the webhook is called (and fails).
    bad = copy.deepcopy(CHECK)
    bad.update(check_id=uuid.uuid4().hex, session_id="s-soon", started_at=rfc3339(now - 60))
    bad["network"]["loss"].update(up=0.08, up_ci95=[0.06, 0.1])
    call("POST", "/api/v1/checks", client, bad)
    good = copy.deepcopy(CHECK)
    good.update(check_id=uuid.uuid4().hex, session_id="s-soon", started_at=rfc3339(now - 60))
    call("POST", "/api/v1/checks", therapist, good)

    samples = [
        {"report_id": uuid.uuid4().hex, "seq": n + 1, "kind": "background", "sample": encode(make_sample(rfc3339(now - 600 + 60 * n)))}
        for n in range(6)
    ]
    spool = {"pending": 0, "dropped_background": 0, "rejected": 0, "dropped_live": 0}
    call("POST", "/api/v1/reports", client, {"spool": spool, "reports": samples})

    call("GET", "/api/v1/sessions?limit=10", login)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the risk pass (every second) raises the alert; the worker tries the webhook
        alerts = call("GET", "/api/v1/alerts", it)["alerts"]
        if alerts and any(delivery.get("attempts") for alert in alerts for delivery in alert.get("deliveries", [])):
            break
        time.sleep(0.5)
    else:
        raise SystemExit("no alert delivery attempt within 60 s")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
