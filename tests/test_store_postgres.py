"""The PostgreSQL store beyond the contract suite: its schema versions (the release's rows survive
an upgrade from version 1, a newer database is refused untouched, two monitors starting at once
migrate once), ``[monitor] store_url`` (validated, never echoing a password), and a real monitor
process on PostgreSQL taking an agent's check and reports."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import uuid
from pathlib import Path

import psycopg
import pytest

from monitor.store import migrations, postgres
from monitor.store.migrations import StoreTooNew
from sessionready.schema import ReportEnvelope, SpoolStatus
from sessionready.typed import decode, encode, rfc3339
from tests.conftest import CHECK, SESSIONREADY, make_sample, run_cli, start_monitor
from tests.pg import PostgresServer
from tests.stores import TABLES
from tests.test_store_migrations import MANIFEST, RELEASE

SPOOL = {"pending": 0, "dropped_background": 0, "dropped_live": 0, "rejected": 0}


@pytest.fixture
def database(postgres_server: PostgresServer):  # a URL
    url = postgres_server.new_database()
    yield url
    postgres_server.drop_database(url)


def pg_snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table but schema_version, in a stable order (a partitioned table's
    rows under its own name, its partitions left out)."""
    with psycopg.connect(url) as conn:
        tables = [row[0] for row in conn.execute(TABLES)]
        return {table: sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr) for table in tables}


def pg_version(url: str) -> int:
    with psycopg.connect(url) as conn:
        return postgres.stored_version(conn)


def load_release_rows(url: str) -> dict[str, int]:
    """The SQLite release store's rows, table by table, into a database at version 1."""
    loaded: dict[str, int] = {}
    with sqlite3.connect(RELEASE / MANIFEST["file"]) as source, psycopg.connect(url) as target:
        # The rows come as they are; foreign keys were satisfied in the source. Replica mode lets
        # the tables fill in any order (the tests connect as the superuser).
        target.execute("SET session_replication_role = replica")
        tables = [row[0] for row in source.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            cursor = source.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
            if rows:
                marks = ", ".join(["%s"] * len(columns))
                with target.cursor() as out:
                    out.executemany(f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({marks})', rows)
            loaded[table] = len(rows)
        if "alert_deliveries" in tables:  # the identity continues after the ids the rows brought
            target.execute("SELECT setval(pg_get_serial_sequence('alert_deliveries', 'delivery_id'), (SELECT MAX(delivery_id) FROM alert_deliveries))")
    return loaded


def test_a_version_1_database_with_the_release_rows_upgrades_with_every_row_intact(database: str) -> None:
    assert [step.version for step in postgres.upgrade(database, up_to=1)] == []
    assert pg_version(database) == migrations.BASELINE
    loaded = load_release_rows(database)
    expected = {table: count for table, count in MANIFEST["rows"].items() if table != "sqlite_sequence"}
    assert loaded == expected
    before = pg_snapshot(database)

    store = postgres.PostgresStore(database)
    try:
        assert [step.version for step in store.migrations_applied] == [m.version for m in migrations.MIGRATIONS]
        sessions = {s.session_id: s.state for s in store.list_sessions(limit=10)}
        alerts = {a.alert.alert_id for a in store.list_alerts(None, None, 10)}
        caseload = {(e.therapist_id, e.client_id) for e in store.caseload()}
    finally:
        store.close()

    after = pg_snapshot(database)
    for table, rows in before.items():
        assert after[table] == rows, f"{table} changed"
    assert set(after) - set(before) == {"check_links", "session_summaries", "leases", "sample_ids"}  # migrations 3 to 6
    assert after["sample_ids"] == sorted(((r[1], r[2], r[8]) for r in after["samples"]), key=repr), "each sample's id, agent, arrival"
    assert placement(database) == {"samples_20261207": 6}, "the release's samples arrived in the week of 2026-12-07"
    assert pg_version(database) == migrations.latest()
    # What a monitor reads through the store, the same as the SQLite upgrade test sees.
    assert sessions.keys() == {"s-soon", "s-later", "s-imported"} and sessions["s-later"] == "cancelled"
    with sqlite3.connect(RELEASE / MANIFEST["file"]) as source:
        assert alerts == {row[0] for row in source.execute("SELECT alert_id FROM alerts")}
    assert ("t-1", "c-1") in caseload


def placement(url: str) -> dict[str, int]:
    """Rows of samples per partition that holds some."""
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT tableoid::regclass::text, count(*) FROM samples GROUP BY 1").fetchall())


def test_a_version_5_database_with_samples_over_weeks_upgrades_into_partitions_with_every_row(database: str) -> None:
    postgres.upgrade(database, up_to=1)
    load_release_rows(database)
    postgres.upgrade(database, up_to=5)
    # Copies of a release sample arriving in other weeks, at a week's first instant, and far
    # before and after any week a monitor would make (2001, 2096).
    arrivals = {
        1_795_996_800.0: "samples_20261130",  # Monday 2026-11-30 00:00 UTC: that week, not the one before
        1_795_996_799.5: "samples_20261123",
        1_794_000_000.0: "samples_20261102",
        1_000_000_000.0: "samples_20010903",  # Sunday 2001-09-09: its ISO week began on Monday the 3rd
        4_000_000_000.0: "samples_20961001",  # Tuesday 2096-10-02
    }
    columns = "agent_id, participant_id, session_id, kind, seq, taken_at, received_at, sample, has_network"
    with psycopg.connect(database) as conn:
        for n, at in enumerate(arrivals):
            conn.execute(
                f"INSERT INTO samples (report_id, {columns}) SELECT %s, {columns.replace('received_at', '%s')} FROM samples WHERE rowid = 1",
                (f"{n:032x}", at),
            )
    before = pg_snapshot(database)

    assert [step.version for step in postgres.upgrade(database)] == [6]

    after = pg_snapshot(database)
    assert {table: rows for table, rows in after.items() if table != "sample_ids"} == before, "every row, rowid included"
    assert after["sample_ids"] == sorted(((r[1], r[2], r[8]) for r in before["samples"]), key=repr)
    assert placement(database) == {"samples_20261207": 6, **dict.fromkeys(arrivals.values(), 1)}, "a week each, none in the default"

    store = postgres.PostgresStore(database, clock=lambda: 1_796_606_400.0)
    try:
        agent = next(t for t in store.list_tokens() if t.token_id == before["samples"][0][2])
        old = before["samples"][0][1]
        again = {"report_id": old, "seq": 1, "kind": "background", "sample": encode(make_sample(rfc3339(1_796_606_400.0)))}
        new = {**again, "report_id": "f" * 32, "seq": 99}
        results = store.add_reports(agent, [decode(ReportEnvelope, again), decode(ReportEnvelope, new)], SpoolStatus(0, 0, 0, 0), 1_796_606_400.0)
    finally:
        store.close()
    assert results == [False, True], "a stored id is a retry after the upgrade too"
    with psycopg.connect(database) as conn:
        # 11 rows were moved; the skipped retry took a number too (identities leave gaps).
        assert conn.execute("SELECT rowid FROM samples WHERE report_id = %s", ("f" * 32,)).fetchone()[0] == 13, "rowid goes on after the moved rows"


def test_a_database_from_a_newer_release_is_refused_and_left_untouched(database: str) -> None:
    postgres.upgrade(database)
    with psycopg.connect(database) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (migrations.latest() + 1,))
    before = pg_snapshot(database)
    with pytest.raises(StoreTooNew) as refused:
        postgres.PostgresStore(database)
    assert f"schema version {migrations.latest() + 1}" in str(refused.value)
    assert pg_snapshot(database) == before and pg_version(database) == migrations.latest() + 1


def test_two_monitors_starting_at_once_migrate_the_database_once(database: str) -> None:
    applied: list[list[int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def start() -> None:
        try:
            barrier.wait(10)
            applied.append([step.version for step in postgres.upgrade(database)])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    # One of them created the tables and applied every step; the other waited, then found none.
    assert sorted(applied, key=len) == [[], [m.version for m in migrations.MIGRATIONS]]
    assert pg_version(database) == migrations.latest()


# --- [monitor] store_url and the commands ------------------------------------------------------


def write_config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(f"[monitor]\nstore_url = {json.dumps(store_url)}\n")
    return path


@pytest.mark.parametrize(
    "url,expected",
    [
        ("mysql://admin:hunter2-secret@db/sr", "store_url must be \"\" (the embedded SQLite store in data_dir) or a postgresql:// URL; got a mysql:// URL"),
        ("host=db password=hunter2-secret", "store_url must be \"\" (the embedded SQLite store in data_dir) or a postgresql:// URL"),
        ("postgresql://sr:hunter2-secret@db/sr two", "store_url must not contain spaces"),
    ],
)
def test_a_bad_store_url_is_refused_by_name_without_its_password(tmp_path: Path, url: str, expected: str) -> None:
    result = run_cli("monitor", "migrate", "--config", str(write_config(tmp_path, url)), timeout=60)
    assert result.returncode == 3
    assert expected in result.stderr
    assert "hunter2" not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_sentence_without_the_password(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = f"postgresql://sr:hunter2-secret@/no_such_database?host={postgres_server.directory}"
    result = run_cli("monitor", "token", "list", "--config", str(write_config(tmp_path, url)), timeout=60)
    assert result.returncode == 3, result.stderr
    assert "cannot connect to the store postgresql://sr@" in result.stderr and "/no_such_database" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_the_password_comes_from_the_environment_or_a_password_file(tmp_path: Path, postgres_server: PostgresServer, database: str) -> None:
    url = postgres_server.add_password_role("sr_pw", "pw-from-env-7", database)
    config = str(write_config(tmp_path, url))
    plain = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    refused = subprocess.run([*SESSIONREADY, "monitor", "migrate", "--config", config], capture_output=True, text=True, env=plain, timeout=60, check=False)
    assert refused.returncode == 3, refused.stderr
    assert "cannot connect to the store postgresql://sr_pw@" in refused.stderr and "Traceback" not in refused.stderr
    done = run_cli("monitor", "migrate", "--config", config, env={"PGPASSWORD": "pw-from-env-7"})
    assert done.returncode == 0 and f"the store is at version {migrations.latest()}" in done.stdout, done.stderr
    passfile = tmp_path / "pgpass"
    passfile.write_text("*:*:*:sr_pw:pw-from-env-7\n")
    passfile.chmod(0o600)  # libpq ignores a password file others can read
    listed = run_cli("monitor", "token", "list", "--config", config, env={"PGPASSFILE": str(passfile)})
    assert listed.returncode == 0, listed.stderr
    assert "pw-from-env-7" not in done.stdout + done.stderr + listed.stdout + listed.stderr


def test_migrate_says_what_it_will_do_does_it_and_then_has_nothing_to_do(tmp_path: Path, database: str) -> None:
    config = str(write_config(tmp_path, database))
    check = run_cli("monitor", "migrate", "--check", "--config", config, timeout=60)
    assert check.returncode == 1, check.stderr
    assert "schema version none" in check.stdout and "pending v1: create the store's tables" in check.stdout
    assert pg_version(database) == 0, "--check changes nothing"
    done = run_cli("monitor", "migrate", "--config", config, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"the store is at version {migrations.latest()}" in done.stdout
    again = run_cli("monitor", "migrate", "--config", config, timeout=60)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_a_monitor_on_postgresql_takes_an_agents_check_and_reports_and_serves_them(tmp_path: Path, database: str) -> None:
    config = str(write_config(tmp_path, database))
    data_dir = tmp_path / "monitor"
    monitor = start_monitor(data_dir, "--config", config)
    try:
        # Tokens made by the command line land in the same database the monitor serves from.
        made = run_cli("monitor", "token", "create", "--role", "client", "--participant", "c-pg", "--config", config)
        assert made.returncode == 0, made.stderr
        client = made.stdout.strip().splitlines()[-1]
        staff = run_cli("monitor", "token", "create", "--role", "it", "--participant", "it-pg", "--config", config).stdout.strip().splitlines()[-1]

        check_id = uuid.uuid4().hex
        report = {**CHECK, "check_id": check_id, "session_id": None}
        status, body = monitor.json("POST", "/api/v1/checks", client, report)
        assert status == 201 and body == {"check_id": check_id, "stored": True, "duplicate": False}, body
        status, body = monitor.json("POST", "/api/v1/checks", client, report)
        assert status == 200 and body["duplicate"] is True  # a retry, told apart in PostgreSQL too
        samples = [
            {"report_id": uuid.uuid4().hex, "seq": n + 1, "kind": "background", "sample": _sample(f"2026-11-25T10:0{n}:00+00:00")}
            for n in range(3)
        ]
        status, body = monitor.json("POST", "/api/v1/reports", client, {"spool": SPOOL, "reports": samples})
        assert status == 200 and [r["status"] for r in body["results"]] == ["stored"] * 3, body

        status, body = monitor.json("GET", f"/api/v1/checks/{check_id}", staff)
        assert status == 200 and body["report"] == report and body["participant_id"] == "c-pg", body
        status, agents = monitor.json("GET", "/api/v1/agents", staff)
        assert status == 200, agents
        [agent] = [a for a in agents["agents"] if a["participant_id"] == "c-pg"]
        status, body = monitor.json("GET", f"/api/v1/agents/{agent['agent_id']}/samples?since=1764028800", staff)  # 2026-11-25T00:00:00Z
        assert status == 200 and len(body["samples"]) == 3, body
    finally:
        monitor.stop()
    # It was PostgreSQL, not a SQLite file beside the monitor, that kept them.
    assert not (data_dir / "sessionready.sqlite3").exists()
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM checks WHERE check_id = %s", (check_id,)).fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 3
    assert "hunter2" not in monitor.logs()


def _sample(taken_at: str) -> dict:
    from sessionready.typed import encode

    return encode(make_sample(taken_at))  # type: ignore[return-value]
