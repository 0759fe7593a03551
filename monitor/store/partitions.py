"""PostgreSQL's samples, partitioned by week of arrival (version 6 of the schema; SQLite keeps
one table). docs/postgresql.md says why a week, and what retention does with the partitions.

``samples`` is partitioned by range of ``received_at`` (the monitor's clock at arrival, unix
seconds: what retention measures ages by, and never an agent's clock). Each partition holds one
span of ``SPAN_S`` seconds starting on a Monday 00:00 UTC and is named by that day
(``samples_20270111``); ``samples_default`` takes any row no partition covers, so an insert
never fails for want of one. At every retention pass (each monitor runs one at start, then
hourly) the current span's partition and the ``AHEAD`` after it are made, and those wholly older
than the samples limit dropped (``maintain``); the rows of the partition that the limit cuts
through (and of the default one) go a bounded batch at a time (``delete_rows``).

PostgreSQL accepts a unique index on a partitioned table only if it holds the partition key, and
``received_at`` is a retry's arrival, not the report's: ``(report_id, received_at)`` would let
a retry in. The report id's uniqueness is kept by ``sample_ids`` (one narrow row per stored
sample, its report id the primary key) and a trigger: before a sample is inserted, its id is
inserted there with ``ON CONFLICT DO NOTHING``, and a sample whose id was there is skipped, as
SQLite's ``INSERT ... ON CONFLICT DO NOTHING`` skips it. Two monitors inserting the same id at
once: the second waits for the first's commit on the primary key, then skips. The store's SQL
stays the same text on both back ends (``ON CONFLICT DO NOTHING ... RETURNING`` returns the
rows inserted). Rows moved between partitions by this module bypass the trigger (they are not
new reports). ``sample_ids`` rows go with their samples, in retention's batches.

Functions here take a psycopg connection inside a transaction (``%s`` placeholders); the module
imports no driver, so ``monitor.store.migrations`` can name its step without one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SPAN_S = 7 * 86_400  # a week
ORIGIN_S = 4 * 86_400  # 1970-01-05 00:00 UTC, a Monday: spans are ISO weeks in UTC
AHEAD = 2  # spans after the current one that always exist (the retention pass runs hourly)
DEFAULT = "samples_default"
# Partition changes by several monitors take turns under this transaction advisory lock.
LOCK_KEY = "samples partitions"
# How long a partition change waits for the table's lock (ingest holds it a few milliseconds at
# a time; a rollup rebuild holds it for its whole run). Creating or dropping a partition locks
# ``samples`` against every reader and writer while it runs, and writers queue behind a waiting
# change: waiting longer would stall ingest. A change that times out is tried at the next pass;
# rows meanwhile land in ``samples_default`` or leave by batches.
LOCK_TIMEOUT_MS = 1000
# Set (transaction-local) while this module moves rows: the trigger lets them through.
MOVING = "sessionready.moving_samples"


@dataclass(frozen=True)
class Partition:
    name: str
    low: float | None  # unix seconds, inclusive; None for the default partition (or one not ours)
    high: float | None  # exclusive


def span_start(t: float) -> float:
    """The start (unix seconds, a Monday 00:00 UTC) of the span holding ``t``."""
    return ORIGIN_S + math.floor((t - ORIGIN_S) / SPAN_S) * SPAN_S


def partition_name(low: float) -> str:
    return "samples_" + datetime.fromtimestamp(low, UTC).strftime("%Y%m%d")


_BOUNDS = re.compile(r"FOR VALUES FROM \('?([-+0-9.eE]+)'?\) TO \('?([-+0-9.eE]+)'?\)")


def partitions(conn: Any) -> list[Partition]:
    """``samples``'s partitions, oldest first, those without a range of ours last (from the catalog)."""
    rows = conn.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'samples'::regclass"
    ).fetchall()
    found = []
    for name, bound in rows:
        if bound is None:
            continue  # dropped by another transaction while the catalog was read: gone
        match = _BOUNDS.fullmatch(bound)
        # The default partition; or one made by hand with other bounds (MINVALUE...), never
        # dropped here, its expired rows deleted by batches like the default one's.
        found.append(Partition(name, None, None) if match is None else Partition(name, float(match.group(1)), float(match.group(2))))
    return sorted(found, key=lambda p: (p.low is None, p.low or 0.0))


def _create(conn: Any, low: float, existing: list[Partition]) -> str | None:
    """The partition for the span starting at ``low``, unless one overlaps it. Rows of that span
    already in the default partition move into it (PostgreSQL refuses the partition otherwise)."""
    high = low + SPAN_S
    if any(p.low is not None and p.low < high and p.high > low for p in existing):  # type: ignore[operator]
        return None
    name = partition_name(low)
    stranded = conn.execute(
        f'SELECT EXISTS (SELECT 1 FROM "{DEFAULT}" WHERE received_at >= %s AND received_at < %s)',
        (low, high),
    ).fetchone()[0]
    if stranded:
        conn.execute(f"SET LOCAL {MOVING} = 'on'")
        conn.execute("CREATE TEMP TABLE samples_moving (LIKE samples)")
        conn.execute(
            f'WITH moved AS (DELETE FROM "{DEFAULT}" WHERE received_at >= %s AND received_at < %s RETURNING *) INSERT INTO samples_moving SELECT * FROM moved',
            (low, high),
        )
    conn.execute(f'CREATE TABLE "{name}" PARTITION OF samples FOR VALUES FROM ({low!r}) TO ({high!r})')
    if stranded:
        conn.execute("INSERT INTO samples OVERRIDING SYSTEM VALUE SELECT * FROM samples_moving")
        conn.execute("DROP TABLE samples_moving")
        conn.execute(f"SET LOCAL {MOVING} = 'off'")
    return name


def maintain(conn: Any, now: float, before: float | None) -> tuple[list[str], list[str]]:
    """Make the partitions of the current span and the ``AHEAD`` after it (by ``now``), and
    drop those wholly older than ``before`` (unix seconds; None: drop nothing). Returns (made,
    dropped). Inside the caller's transaction; raises psycopg's LockNotAvailable when a lock
    is not had within ``LOCK_TIMEOUT_MS``. Another monitor doing the same waits for this one's
    commit and then finds nothing left to do."""
    conn.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (LOCK_KEY,))
    existing = partitions(conn)
    made = []
    for k in range(AHEAD + 1):
        name = _create(conn, span_start(now) + k * SPAN_S, existing)
        if name is not None:
            made.append(name)
            existing = partitions(conn)
    dropped = []
    if before is not None:
        for part in existing:
            if part.high is not None and part.high <= before:
                conn.execute(f'DROP TABLE IF EXISTS "{part.name}"')
                dropped.append(part.name)
    return made, dropped


def delete_rows(conn: Any, before: float, limit: int) -> int:
    """Delete at most ``limit`` samples older than ``before`` from the partitions that hold some
    (the one ``before`` cuts through, the default one, any whose drop has not happened yet) and
    at most ``limit`` rows of ``sample_ids``; returns the ids deleted. Each stored sample has one
    id row with the same ``received_at``, so the ids older than ``before`` are as many as the
    samples retention deletes, dropped or not: counting ids counts every sample gone, and a
    batch loop that stops when the ids run out has deleted the rows too.

    Holds the partitions' advisory lock shared until the caller's transaction ends: batches run
    side by side, but never while ``maintain`` (which holds it exclusively) is dropping or making
    a week, so the partitions listed here are those the DELETEs find. Without it, a batch that
    listed a week another monitor was dropping failed."""
    conn.execute("SELECT pg_advisory_xact_lock_shared(hashtextextended(%s, 0))", (LOCK_KEY,))
    left = limit
    for part in partitions(conn):
        if left <= 0:
            break
        if part.low is not None and part.low >= before:
            continue
        left -= conn.execute(
            f'DELETE FROM "{part.name}" WHERE ctid = ANY(ARRAY(SELECT ctid FROM "{part.name}" WHERE received_at < %s LIMIT %s))',
            (before, left),
        ).rowcount
    return conn.execute(
        "DELETE FROM sample_ids WHERE report_id IN (SELECT report_id FROM sample_ids WHERE received_at < %s LIMIT %s)",
        (before, limit),
    ).rowcount


# --- version 6 --------------------------------------------------------------------------------

INDEXES = (
    # The version 5 table's keys (report_id its primary key, rowid unique) as plain indexes: a
    # unique one would need received_at in it. report_id's uniqueness: sample_ids.
    "CREATE INDEX samples_by_report ON samples (report_id)",
    "CREATE INDEX samples_by_rowid ON samples (rowid)",
    "CREATE INDEX samples_by_agent ON samples (agent_id, taken_at)",
    "CREATE INDEX samples_by_session ON samples (session_id, taken_at)",
    "CREATE INDEX samples_by_participant ON samples (participant_id, taken_at)",
    "CREATE INDEX samples_by_received ON samples (received_at)",
    "CREATE INDEX sample_ids_by_received ON sample_ids (received_at)",
)

TRIGGER = (
    f"""CREATE FUNCTION samples_stored_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('{MOVING}', true) = 'on' THEN
        RETURN NEW;  -- a row moving between partitions, not a new report
    END IF;
    INSERT INTO sample_ids (report_id, agent_id, received_at) VALUES (NEW.report_id, NEW.agent_id, NEW.received_at)
        ON CONFLICT (report_id) DO NOTHING;
    IF FOUND THEN
        RETURN NEW;
    END IF;
    RETURN NULL;  -- stored before: skipped, as SQLite's ON CONFLICT DO NOTHING skips it
END
$$""",
    "CREATE TRIGGER samples_stored_once BEFORE INSERT ON samples FOR EACH ROW EXECUTE FUNCTION samples_stored_once()",
)


def partition_samples(conn: Any) -> None:
    """Version 6 on PostgreSQL: ``samples`` becomes partitioned, every row moved with its values
    (its ``rowid`` too), one partition per span that holds rows; ``sample_ids`` and the trigger
    keep report ids unique. One transaction (the migration's)."""
    conn.execute("ALTER TABLE samples RENAME TO samples_v5")
    conn.execute("DROP INDEX samples_by_agent, samples_by_session, samples_by_participant, samples_by_received")
    # LIKE keeps the columns in their order, their NOT NULLs, defaults and rowid's identity.
    conn.execute("CREATE TABLE samples (LIKE samples_v5 INCLUDING DEFAULTS INCLUDING IDENTITY) PARTITION BY RANGE (received_at)")
    conn.execute("ALTER TABLE samples ADD FOREIGN KEY (agent_id) REFERENCES tokens (token_id)")
    conn.execute(f'CREATE TABLE "{DEFAULT}" PARTITION OF samples DEFAULT')
    spans = conn.execute(
        "SELECT DISTINCT floor((received_at - %s) / %s) FROM samples_v5",
        (ORIGIN_S, SPAN_S),
    ).fetchall()
    existing: list[Partition] = []
    for low in sorted(ORIGIN_S + int(row[0]) * SPAN_S for row in spans):
        _create(conn, low, existing)
        existing.append(Partition("", low, low + SPAN_S))
    conn.execute("INSERT INTO samples OVERRIDING SYSTEM VALUE SELECT * FROM samples_v5")
    conn.execute("SELECT setval(pg_get_serial_sequence('samples', 'rowid'), COALESCE((SELECT MAX(rowid) FROM samples), 0) + 1, false)")
    conn.execute("CREATE TABLE sample_ids (report_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, received_at DOUBLE PRECISION NOT NULL)")
    conn.execute("INSERT INTO sample_ids (report_id, agent_id, received_at) SELECT report_id, agent_id, received_at FROM samples_v5")
    conn.execute("DROP TABLE samples_v5")
    for statement in (*INDEXES, *TRIGGER):
        conn.execute(statement)
