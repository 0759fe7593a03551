"""PostgreSQL's samples by week (monitor/store/partitions.py), on a real server with an injected
clock: partitions are made ahead, a sample lands whenever it arrives (a week's partition, or the
default one far before or after), and retention drops the weeks wholly past the limit, deletes
the rest of what expired a batch at a time, and touches nothing else, with two monitors running
it at once. The contract suite (tests/test_retention.py) covers what both back ends share."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from monitor.retention import DAY_S, RetentionConfig, RetentionJob
from monitor.store.core import TokenInfo
from sessionready.schema import ReportEnvelope, SpoolStatus
from sessionready.typed import decode, encode, rfc3339
from tests.conftest import make_sample
from tests.pg import PostgresServer
from tests.stores import StoreFactory
from tests.test_store_contract import race

WEEK = 7 * DAY_S
M0 = 1_799_625_600.0  # Monday 2027-01-11 00:00 UTC (date -u -d @1799625600): the current week's start
T = M0 + 3.5 * DAY_S  # "now": Thursday noon
KEEP = RetentionConfig(samples_days=14)  # before = T - 14 days = M0 - 10.5 days: inside the week of M0 - 2 weeks
SPOOL = SpoolStatus(0, 0, 0, 0)


def week(k: int) -> str:
    """The partition of the week k weeks from M0's (names are the Monday, UTC)."""
    from datetime import UTC, datetime

    return "samples_" + datetime.fromtimestamp(M0 + k * WEEK, UTC).strftime("%Y%m%d")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stores(tmp_path: Path, postgres_server: PostgresServer):  # a StoreFactory on PostgreSQL only
    factory = StoreFactory("postgresql", tmp_path, postgres_server)
    yield factory
    factory.close()


def store_at(store, agent: TokenInfo, received_at: float) -> str:
    """One sample arriving at ``received_at``; its report id."""
    report_id = uuid.uuid4().hex
    sample = encode(make_sample(rfc3339(T)))  # taken_at: the agent's clock, which retention never reads
    envelope = decode(
        ReportEnvelope,
        {"report_id": report_id, "seq": 1, "kind": "background", "sample": sample},
    )
    assert store.add_reports(agent, [envelope], SPOOL, received_at) == [True]
    return report_id


def weeks(stores: StoreFactory) -> set[str]:
    """samples' partitions, as PostgreSQL's catalog lists them."""
    return {row[0] for row in stores.sql("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'samples'::regclass")}


def where(stores: StoreFactory) -> dict[str, str]:
    """Each stored sample's report id: the partition holding it."""
    return dict(stores.sql("SELECT report_id, tableoid::regclass::text FROM samples"))


def run(store, clock: Clock, now: float, config: RetentionConfig) -> dict[str, int]:
    clock.now = now
    return asyncio.run(RetentionJob(store, config, clock).run_once())


def test_weeks_are_made_ahead_and_exactly_the_expired_samples_go_whole_weeks_by_dropping(
    stores: StoreFactory,
) -> None:
    clock = Clock(M0 - 5 * WEEK + 0.5 * DAY_S)
    store = stores.open(clock)
    agent, _ = store.create_token("client", "c-1")
    assert weeks(stores) == {"samples_default"}, "the migration made the default partition; opening makes none"
    nothing = RetentionConfig(samples_days=3650)  # earlier passes only make partitions
    run(store, clock, clock.now, nothing)
    assert weeks(stores) == {"samples_default", week(-5), week(-4), week(-3)}, "a pass made this week and the next two"
    ids = {"b": store_at(store, agent, M0 - 5 * WEEK + DAY_S)}
    run(store, clock, M0 - 3 * WEEK + 0.5 * DAY_S, nothing)
    ids |= {
        "c": store_at(store, agent, M0 - 2 * WEEK - 1),  # the last second of week -3
        "d": store_at(store, agent, M0 - 2 * WEEK + DAY_S),  # week -2, before the limit: deleted
        "at": store_at(store, agent, T - 14 * DAY_S),  # exactly at the limit: kept (older than it goes)
        "e": store_at(store, agent, M0 - 2 * WEEK + 5 * DAY_S),  # week -2, after the limit: kept
    }
    run(store, clock, M0 - WEEK + 0.5 * DAY_S, nothing)
    ids |= {
        "f": store_at(store, agent, M0 - WEEK + 2 * DAY_S),
        "g": store_at(store, agent, T),
        "past": store_at(store, agent, 1_000_000_000.0),  # 2001: the default partition, expired
        "future": store_at(store, agent, 4_000_000_000.0),  # 2096: the default partition, kept
    }
    placed = where(stores)
    assert {name: placed[report_id] for name, report_id in ids.items()} == {
        "b": week(-5), "c": week(-3), "d": week(-2), "at": week(-2), "e": week(-2),
        "f": week(-1), "g": week(0), "past": "samples_default", "future": "samples_default",
    }  # fmt: skip
    before = stores.table_counts()

    deleted = run(store, clock, T, KEEP)

    assert deleted["samples"] == 4, "b and c (their weeks dropped), d (batch), past (default partition)"
    assert set(where(stores)) == {ids[n] for n in ("at", "e", "f", "g", "future")}
    assert {row[0] for row in stores.sql("SELECT report_id FROM sample_ids")} == {ids[n] for n in ("at", "e", "f", "g", "future")}
    assert weeks(stores) == {"samples_default", week(-2), week(-1), week(0), week(1), week(2)}, "weeks -5 to -3 dropped; week 2 made"
    gone = stores.sql(f"SELECT relname FROM pg_class WHERE relname IN ('{week(-5)}', '{week(-4)}', '{week(-3)}')")
    assert gone == [], "dropped, not merely detached"
    after = stores.table_counts()
    assert {t: before[t] - after[t] for t in before if before[t] != after[t]} == {"samples": 4, "sample_ids": 4}, "nothing else touched"
    assert run(store, clock, T, KEEP)["samples"] == 0, "a second pass has nothing to do"
    assert run(store, clock, T + 1, KEEP)["samples"] == 1 and ids["at"] not in where(stores), "a second later the one at the limit goes"


def test_two_monitors_dropping_at_once_each_row_goes_once_and_a_stranded_row_moves_into_its_week(stores: StoreFactory) -> None:
    clock = Clock(M0 - 2 * WEEK + 0.5 * DAY_S)
    first = stores.open(clock)
    second = stores.open(clock)
    agent, _ = first.create_token("client", "c-1")
    run(first, clock, clock.now, RetentionConfig(samples_days=3650))  # weeks -2 to 0
    for n in range(30):  # week -2, wholly expired a week after T
        store_at(first, agent, M0 - 2 * WEEK + n * 3600.0)
    cut = [
        store_at(first, agent, M0 - WEEK + DAY_S),
        store_at(first, agent, M0 - WEEK + 6 * DAY_S),
    ]  # week -1: one expires
    run(first, clock, M0 + 0.5 * DAY_S, RetentionConfig(samples_days=3650))  # weeks 0 to 2
    kept = store_at(first, agent, T)
    stranded = store_at(first, agent, M0 + 3 * WEEK + DAY_S)  # week 3 has no partition yet: the default one
    assert where(stores)[stranded] == "samples_default"
    row = stores.sql(f"SELECT * FROM samples WHERE report_id = '{stranded}'")

    clock.now = T + WEEK  # before = M0 - 3.5 days: week -2 wholly past, week -1 cut through
    config = RetentionConfig(samples_days=14, batch_rows=10)
    rounds = []
    for _ in range(3):  # each round, the two monitors' passes race: no error, and each row counted once
        counts = race(
            2,
            lambda i: asyncio.run(RetentionJob((first, second)[i], config, clock).run_once())["samples"],
        )
        rounds.append(sum(counts))  # type: ignore[arg-type]
    assert rounds == [31, 0, 0], "week -2's 30 rows and week -1's first"
    assert set(where(stores)) == {cut[1], kept, stranded}
    assert {row[0] for row in stores.sql("SELECT report_id FROM sample_ids")} == {
        cut[1],
        kept,
        stranded,
    }, "their ids went with them"
    assert week(-2) not in weeks(stores) and {
        week(-1),
        week(1),
        week(2),
        week(3),
    } <= weeks(stores)
    assert where(stores)[stranded] == week(3), "made when week 3 came near, its row moved from the default partition"
    assert stores.sql(f"SELECT * FROM samples WHERE report_id = '{stranded}'") == row, "moved whole (rowid too)"


def test_any_arrival_lands_and_a_report_sent_again_later_is_stored_once(
    stores: StoreFactory,
) -> None:
    clock = Clock(T)
    store = stores.open(clock)
    agent, _ = store.create_token("client", "c-1")
    run(store, clock, T, KEEP)  # weeks 0 to 2
    envelope = decode(
        ReportEnvelope,
        {
            "report_id": uuid.uuid4().hex,
            "seq": 1,
            "kind": "live",
            "sample": encode(make_sample(rfc3339(T))),
        },
    )
    times = (
        T,
        -1e9,
        0.0,
        T + WEEK,
        3e9,
        9e12,
    )  # this week, 1938, 1970, next week, 2065, year ~287,000
    results = [store.add_reports(agent, [envelope], SPOOL, at) for at in times]
    assert results == [[True]] + [[False]] * (len(times) - 1), "the first arrival stores it; later ones, in any week, are retries"
    other, _ = store.create_token("client", "c-2")
    assert store.add_reports(other, [envelope], SPOOL, T) == [None], "another agent's id"
    for n, at in enumerate(times):
        store_at(store, agent, at + n)
    assert stores.sql("SELECT count(*) FROM samples") == [(1 + len(times),)]
    assert stores.sql("SELECT count(*) FROM samples_default") == [(4,)], "1938, 1970, 2065 and the far future"


def test_a_partition_made_by_hand_over_the_coming_weeks_is_left_alone_and_retention_still_deletes(
    stores: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(T)
    store = stores.open(clock)
    agent, _ = store.create_token("client", "c-1")
    stores.sql(f"CREATE TABLE handmade PARTITION OF samples FOR VALUES FROM ({M0}) TO (MAXVALUE)")
    expired, kept = store_at(store, agent, T - 20 * DAY_S), store_at(store, agent, T)
    assert where(stores) == {expired: "samples_default", kept: "handmade"}

    deleted = run(store, clock, T, KEEP)

    assert deleted["samples"] == 1 and set(where(stores)) == {kept}
    assert weeks(stores) == {"samples_default", "handmade"}, "no week made over it, and it is not dropped"
    assert [r.getMessage() for r in caplog.records if r.name == "sessionready.monitor.store"] == ["samples partitions not made"]


def test_a_batch_run_while_another_monitor_drops_a_week_waits_for_it_and_deletes_without_error(
    stores: StoreFactory,
) -> None:
    # Found by repeating the race above: one monitor's delete batch listed the partitions while
    # the other's pass was dropping one, and failed (a NULL bound from the catalog, or the
    # dropped table named in its DELETE). Here the drop is held open while the batch starts.
    import threading

    import psycopg

    from monitor.store import partitions

    clock = Clock(M0 - 2 * WEEK + 0.5 * DAY_S)
    store = stores.open(clock)
    agent, _ = store.create_token("client", "c-1")
    run(store, clock, clock.now, RetentionConfig(samples_days=3650))  # weeks -2 to 0
    for n in range(3):
        store_at(store, agent, M0 - 2 * WEEK + n * 3600.0)  # week -2: dropped
    late = store_at(store, agent, M0 - WEEK + DAY_S)  # week -1, before the limit: deleted by the batch
    kept = store_at(store, agent, M0 - WEEK + 5 * DAY_S)
    before = M0 - WEEK + 2 * DAY_S
    outcome: list[object] = []

    def batch() -> None:
        try:
            with psycopg.connect(stores.url) as conn, conn.transaction():  # type: ignore[arg-type]
                outcome.append(partitions.delete_rows(conn, before, 100))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            outcome.append(error)

    assert stores.url is not None
    with psycopg.connect(stores.url) as dropper:
        with dropper.transaction():
            assert partitions.maintain(dropper, M0 + 0.5 * DAY_S, before)[1] == [week(-2)]
            deleter = threading.Thread(target=batch)
            deleter.start()
            # The batch starts while the drop is not yet committed: it waits on a lock (the
            # partitions' advisory lock; before the fix, the dropped week's table).
            with psycopg.connect(stores.url, autocommit=True) as watcher:  # type: ignore[arg-type]
                deadline = time.monotonic() + 30
                while not watcher.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted)").fetchone()[0]:  # type: ignore[index]
                    assert deleter.is_alive() and time.monotonic() < deadline, outcome
                    time.sleep(0.01)
        deleter.join(30)
    assert outcome == [4], "week -2's three ids and week -1's row with its id, no error"
    assert set(where(stores)) == {kept}
    assert late not in {row[0] for row in stores.sql("SELECT report_id FROM sample_ids")}
