"""The agent's spool on a real SQLite file: order, persistence, bounds, privacy, and SIGKILL."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from agents.daemon.spool import Spool, SpoolError
from sessionready import schema
from sessionready.typed import decode
from tests.conftest import make_check, make_sample

REPO = Path(__file__).resolve().parents[2]


def seqs(spool: Spool) -> list[int]:
    return [s.seq for s in spool.pending(10_000)]


def test_reports_come_back_in_seq_order_as_envelopes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool" / "spool.sqlite3", max_bytes=1 << 20)
    added = [spool.add_sample("background", make_sample()), spool.add_check(make_check("a" * 32)), spool.add_sample("live", make_sample(session_id="s-1"))]
    pending = spool.pending(10)
    assert [p.seq for p in pending] == [1, 2, 3] and pending == added
    assert [p.kind for p in pending] == ["background", "check", "live"]
    envelopes = [decode(schema.ReportEnvelope, json.loads(p.body)) for p in pending]
    assert envelopes[1].report_id == envelopes[1].check.check_id == "a" * 32
    assert envelopes[2].sample == make_sample(session_id="s-1") and envelopes[2].seq == 3
    assert len({p.report_id for p in pending}) == 3
    assert spool.pending(2) == added[:2]
    stats = spool.stats()
    assert stats.pending == 3 and stats.pending_bytes == sum(len(p.body) for p in pending)
    # A check spooled twice (a retried hand-over) is kept once.
    assert spool.add_check(make_check("a" * 32)) == added[1] and spool.stats().pending == 3


def test_acknowledge_removes_and_counts_rejected(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=1 << 20)
    added = [spool.add_sample("background", make_sample()) for _ in range(5)]
    spool.acknowledge([added[0].report_id, added[2].report_id], [added[1].report_id])
    assert seqs(spool) == [4, 5]
    stats = spool.stats()
    assert (stats.pending, stats.rejected, stats.pending_bytes) == (2, 1, len(added[3].body) + len(added[4].body))
    spool.acknowledge(["0" * 32], ["f" * 32])  # unknown ids: nothing happens, nothing is counted
    assert spool.stats() == stats


def test_contents_seq_and_counters_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    spool = Spool(path, max_bytes=1 << 20)
    first = [spool.add_sample("live", make_sample()) for _ in range(3)]
    spool.acknowledge([first[2].report_id], [first[0].report_id])
    spool.close()
    spool = Spool(path, max_bytes=1 << 20)
    assert spool.pending(10) == [first[1]]
    assert spool.stats().rejected == 1
    # Acknowledging the newest report must not let its seq be handed out again.
    assert spool.add_sample("background", make_sample()).seq == 4
    spool.acknowledge([s.report_id for s in spool.pending(10)])
    spool.close()
    spool = Spool(path, max_bytes=1 << 20)
    assert spool.stats().pending == 0 and spool.last_seq() == 4
    assert spool.add_sample("background", make_sample()).seq == 5


def test_full_spool_drops_oldest_background_then_live_and_keeps_checks(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    size = len(Spool(tmp_path / "probe.sqlite3", max_bytes=1 << 20).add_sample("background", make_sample()).body)
    spool = Spool(path, max_bytes=10 * size + size // 2)  # room for ten samples
    background = [spool.add_sample("background", make_sample()) for _ in range(4)]
    live = [spool.add_sample("live", make_sample()) for _ in range(4)]
    check = spool.add_check(make_check("c" * 32))  # about three samples' worth
    assert len(check.body) > 2 * size
    kept = seqs(spool)
    # The check needed room: the oldest background samples went, nothing else.
    dropped = [b.seq for b in background if b.seq not in kept]
    assert dropped == [b.seq for b in background][: len(dropped)] and dropped
    assert all(s.seq in kept for s in live) and check.seq in kept
    assert spool.stats().dropped_background == len(dropped)
    more_live = [spool.add_sample("live", make_sample()) for _ in range(6)]
    kept = seqs(spool)
    assert not any(b.seq in kept for b in background), "every background sample goes before any live one"
    lost_live = [s.seq for s in live + more_live if s.seq not in kept]
    assert lost_live == [s.seq for s in live + more_live][: len(lost_live)] and lost_live, "oldest live first"
    assert check.seq in kept and more_live[-1].seq in kept
    stats = spool.stats()
    assert stats.pending_bytes <= spool._max_bytes  # noqa: SLF001 - the bound itself
    assert (stats.dropped_background, stats.dropped_live) == (4, len(lost_live))
    spool.close()
    reopened = Spool(path, max_bytes=10 * size + size // 2)
    assert reopened.stats() == stats, "drop counts are persisted"


def test_checks_are_never_dropped_even_beyond_the_bound(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=4096)
    checks = [spool.add_check(make_check(f"{i:032x}")) for i in range(5)]
    assert seqs(spool) == [c.seq for c in checks]
    assert spool.stats().pending_bytes > 4096
    # A sample that finds the spool full of checks is itself the one dropped (and counted).
    sample = spool.add_sample("background", make_sample())
    assert sample.seq not in seqs(spool) and spool.stats().dropped_background == 1
    live = spool.add_sample("live", make_sample())
    assert live.seq not in seqs(spool) and spool.stats().dropped_live == 1


def test_spool_file_and_directory_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "spool"
    spool = Spool(directory / "spool.sqlite3", max_bytes=1 << 20)
    spool.add_sample("background", make_sample())
    for path in directory.iterdir():  # the database, its WAL and shared-memory files
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert {p.name for p in directory.iterdir()} >= {"spool.sqlite3", "spool.sqlite3-wal"}


def test_unusable_spool_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"this is not a database, just text" * 100)
    with pytest.raises(SpoolError, match="not a usable spool"):
        Spool(path, max_bytes=1 << 20)
    newer = tmp_path / "newer.sqlite3"
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version=7")
    with pytest.raises(SpoolError, match="newer agent"):
        Spool(newer, max_bytes=1 << 20)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Spool(tmp_path / "s.sqlite3", max_bytes=0)
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=1 << 20)
    with pytest.raises(ValueError):
        spool.add_sample("check", make_sample())  # type: ignore[arg-type]
    assert spool.stats().pending == 0


CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from agents.daemon.spool import Spool
from tests.conftest import make_sample

spool = Spool(Path(sys.argv[1]), max_bytes=1 << 30)
n = 0
while True:
    n += 1
    spooled = spool.add_sample("live" if n % 3 else "background", make_sample())
    print("add", spooled.seq, flush=True)
    if n % 7 == 0:
        oldest = spool.pending(3)
        print("acking", *[s.seq for s in oldest], flush=True)
        spool.acknowledge([s.report_id for s in oldest[:2]], [s.report_id for s in oldest[2:]])
        print("ack", *[s.seq for s in oldest], flush=True)
"""


def test_sigkill_loses_nothing_the_spool_confirmed(tmp_path: Path) -> None:
    """A child appends as fast as it can and prints each seq once add_* has returned; it is
    killed at a random moment. Every printed seq must still be there (unless acknowledged),
    and the counters must agree with the rows."""
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(repo=str(REPO)))
    rng = random.Random()
    for round_ in range(4):
        path = tmp_path / f"spool-{round_}" / "spool.sqlite3"
        child = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            first = child.stdout.readline()  # started and spooled one
            assert first.startswith("add 1"), first
            time.sleep(rng.uniform(0.05, 0.5))
            child.send_signal(signal.SIGKILL)
            rest = child.stdout.read()
        finally:
            child.kill()
            child.wait()
        seen: dict[str, set[int]] = {"add": set(), "acking": set(), "ack": set()}
        for line in (first + rest).splitlines(keepends=True):
            if not line.endswith("\n"):
                continue  # cut by the kill: nothing was promised
            word, *numbers = line.split()
            seen[word].update(int(n) for n in numbers)
        added, acked = seen["add"], seen["ack"]
        spool = Spool(path, max_bytes=1 << 30)
        present = set(seqs(spool))
        # Reports being acknowledged when the kill came may be gone or not; the rest must be there.
        assert added - seen["acking"] <= present, f"lost {sorted(added - seen['acking'] - present)[:10]}"
        assert not acked & present, "an acknowledged report came back"
        # Consistency: counters agree with rows; seq never goes back; at most the report
        # being added at the kill is there without having been printed.
        stats = spool.stats()
        assert stats.pending == len(present)
        assert stats.pending_bytes == sum(len(s.body) for s in spool.pending(1_000_000))
        assert spool.last_seq() >= max(added) and spool.last_seq() <= max(added) + 1
        assert all(decode(schema.ReportEnvelope, json.loads(s.body)).seq == s.seq for s in spool.pending(1_000_000))
        assert spool.add_sample("live", make_sample()).seq == spool.last_seq() > max(added)
        spool.close()


def test_sample_size_for_batches(tmp_path: Path) -> None:
    """200 full samples fit in the monitor's default 256 KiB body limit (docs/reports.md)."""
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=1 << 30)
    sample = spool.add_sample("live", make_sample(session_id="s-2026-11-25-01"))
    body = len(b'{"spool":{},"reports":[]}') + 200 * (len(sample.body) + 1) + 100
    assert len(sample.body) < 900 and body < 256 * 1024
    # the realistic worst case for the numbers: every field at its longest
    wide = replace(make_sample(), taken_at="2026-11-25T10:00:00.123456789+00:00", session_id="s" * 64)
    assert len(spool.add_sample("live", wide).body) < 1000
