"""Schema versions: a store written by the last release before versions opens with every row
intact; a store from a newer release is refused untouched; each step is all or nothing.

SQLite only (not in the contract suite): the release store is a SQLite file, and the copies a
SQLite upgrade writes beside the store are files. PostgreSQL's versions, from version 1 with the
release's rows, are tested in tests/test_store_postgres.py."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from monitor.store import migrations
from monitor.store.core import open_store
from monitor.store.migrations import Migration, StoreTooNew
from tests.conftest import run_cli, start_monitor

RELEASE = Path(__file__).parent / "data" / "release_store"
MANIFEST = json.loads((RELEASE / "manifest.json").read_text())


def release_copy(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    shutil.copyfile(RELEASE / MANIFEST["file"], data_dir / "sessionready.sqlite3")
    return data_dir


def snapshot(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order."""
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {table: sorted(db.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr) for table in tables}


def version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return migrations.stored_version(db)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_release_store_opens_with_every_row_intact(tmp_path: Path) -> None:
    data_dir = release_copy(tmp_path)
    database = data_dir / "sessionready.sqlite3"
    before = snapshot(database)
    assert version(database) == MANIFEST["user_version"] == 0
    assert {table: len(rows) for table, rows in before.items()} == MANIFEST["rows"]

    open_store(data_dir).close()

    after = snapshot(database)
    for table, rows in before.items():
        assert after[table] == rows, f"{table} changed"
    assert version(database) == migrations.latest()


def test_a_monitor_serves_the_release_stores_sessions_and_alerts(tmp_path: Path) -> None:
    data_dir = release_copy(tmp_path)
    kept = {row[0] for row in snapshot(data_dir / "sessionready.sqlite3")["alerts"]}  # alert_id comes first
    monitor = start_monitor(data_dir)
    try:
        it = monitor.token("it", "it-upgrade")
        status, body = monitor.json("GET", "/api/v1/sessions?limit=10", it)
        assert status == 200, body
        assert {(s["session_id"], s["state"]) for s in body["sessions"]} >= {("s-later", "cancelled")}
        assert {s["session_id"] for s in body["sessions"]} == {"s-soon", "s-later", "s-imported"}
        status, body = monitor.json("GET", "/api/v1/alerts", it)
        assert status == 200 and kept <= {alert["alert_id"] for alert in body["alerts"]}, body  # and new ones, as time moved on
        status, body = monitor.json("GET", "/api/v1/caseload", it)
        assert status == 200 and {(e["therapist_id"], e["client_id"]) for e in body["caseload"]} >= {("t-1", "c-1")}
    finally:
        monitor.stop()


def test_a_store_from_a_newer_release_is_refused_and_left_untouched(tmp_path: Path) -> None:
    data_dir = release_copy(tmp_path)
    database = data_dir / "sessionready.sqlite3"
    db = sqlite3.connect(database)
    db.execute(f"PRAGMA user_version = {migrations.latest() + 1}")
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the store is in WAL mode: put the change into the file itself
    db.close()
    before = digest(database)

    with pytest.raises(StoreTooNew, match="newer sessionready"):
        open_store(data_dir)
    for command in (["monitor", "migrate"], ["monitor", "token", "list"]):
        result = run_cli(*command, "--data-dir", str(data_dir))
        assert result.returncode == 3, result
        assert result.stderr.count("\n") == 1 and f"schema version {migrations.latest() + 1}" in result.stderr
        assert "Traceback" not in result.stderr
    result = run_cli("monitor", "--data-dir", str(data_dir), "--port", "0", timeout=60)
    assert result.returncode == 3 and "newer sessionready" in result.stderr, result
    assert digest(database) == before


def test_migrate_says_what_it_will_do_does_it_and_then_has_nothing_to_do(tmp_path: Path) -> None:
    data_dir = release_copy(tmp_path)
    check = run_cli("monitor", "migrate", "--check", "--data-dir", str(data_dir))
    assert check.returncode == 1 and "pending v1" in check.stdout and "pending v2" in check.stdout, check
    assert version(data_dir / "sessionready.sqlite3") == 0, "--check changes nothing"
    done = run_cli("monitor", "migrate", "--data-dir", str(data_dir))
    assert done.returncode == 0 and f"at version {migrations.latest()}" in done.stdout, done
    again = run_cli("monitor", "migrate", "--check", "--data-dir", str(data_dir))
    assert again.returncode == 0 and "up to date" in again.stdout, again
    missing = run_cli("monitor", "migrate", "--data-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 3 and "there is no store" in missing.stderr


def _add_note_column(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE sessions ADD COLUMN note_code TEXT")


def _half_then_fail(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE sessions ADD COLUMN half_done TEXT")
    raise sqlite3.OperationalError("the second statement of this step failed")


def columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[1] for row in db.execute(f'PRAGMA table_info("{table}")')}


def test_a_step_is_backed_up_first_and_applied_whole_or_not_at_all(tmp_path: Path) -> None:
    data_dir = release_copy(tmp_path)
    database = data_dir / "sessionready.sqlite3"
    open_store(data_dir).close()  # at the baseline
    rows = snapshot(database)
    step = Migration(migrations.latest() + 1, "a column for a test", _add_note_column)
    steps = [*migrations.MIGRATIONS, step]
    db = sqlite3.connect(database, isolation_level=None)
    try:
        assert migrations.pending(db, steps) == [step]
        assert migrations.upgrade(db, database, steps) == [step]
        assert migrations.upgrade(db, database, steps) == [], "a second run has nothing to do"
    finally:
        db.close()
    assert version(database) == step.version and "note_code" in columns(database, "sessions")
    backup = data_dir / f"sessionready.sqlite3.before-v{step.version}"
    assert snapshot(backup) == rows and version(backup) == migrations.latest()
    assert backup.stat().st_mode & 0o077 == 0, "the backup is as private as the store"

    broken = Migration(step.version + 1, "fails half-way", _half_then_fail)
    db = sqlite3.connect(database, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="failed"):
            migrations.upgrade(db, database, [*steps, broken])
    finally:
        db.close()
    assert version(database) == step.version and "half_done" not in columns(database, "sessions")

    with pytest.raises(AssertionError, match="numbered"):
        migrations.upgrade(sqlite3.connect(":memory:", isolation_level=None), database, [broken])


def test_a_new_store_starts_at_the_latest_version_without_a_backup(tmp_path: Path) -> None:
    open_store(tmp_path / "fresh").close()
    assert version(tmp_path / "fresh" / "sessionready.sqlite3") == migrations.latest()
    assert not list((tmp_path / "fresh").glob("*.before-v*"))
