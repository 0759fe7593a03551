"""Issue 4's acceptance, end to end: the real ``sessionready agent`` process against real
monitor processes on loopback that are stopped, killed and restarted (same port, same data
directory) while the agent keeps measuring; the agent itself killed with SIGKILL in the middle
of delivering a backlog; a full spool; live mode until a session's planned end.

Ground truth is the agent's own spool file (``Spool.last_seq()``: every seq it ever gave out)
read after the agent has stopped, against what the monitor stored."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from yarl import URL

from agents.daemon.spool import Spool
from tests.agent import test_daemon
from tests.agent.conftest import QUIET_CHECK, AgentProcess, agent_config, agent_id, checks, create_session, unix
from tests.agent.gate import ReportGate, Stop
from tests.conftest import Monitor, make_sample, new_token, start_monitor, wait_for

start_agent = test_daemon.start_agent  # the fixture that starts (and at the end kills) agents
pytestmark = pytest.mark.slow

# Small intervals: two machine samples a second, a network burst every second.
FAST = "machine_interval_s = 0.5\nbackground_interval_s = 1\nburst_seconds = 0.5\nsessions_poll_s = 0.5\n"


# --- reading back what the monitor and the spool hold ------------------------------------------


def stored_samples(monitor: Monitor, token: str, page: int = 1000) -> list[dict]:
    """Every sample of the token's agent, read in pages of ``page`` by moving ``since``
    (inclusive: a page's last moment is read again, and rows already seen are skipped)."""
    me = agent_id(monitor, token)
    found: dict[str, dict] = {}
    since = 0.0
    while True:
        status, body = monitor.json("GET", f"/api/v1/agents/{me}/samples?since={since:.3f}&limit={page}", token)
        assert status == 200, body
        rows = body["samples"]
        fresh = [row for row in rows if row["report_id"] not in found]
        found.update((row["report_id"], row) for row in fresh)
        if len(rows) < page:
            return sorted(found.values(), key=lambda row: row["seq"])
        assert fresh, f"a page of {page} samples taken at one moment: paging cannot move on"
        since = unix(rows[-1]["sample"]["taken_at"]) - 0.001


def agent_status(monitor: Monitor, staff: str, me: str) -> dict:
    status, body = monitor.json("GET", "/api/v1/agents", staff)
    assert status == 200, body
    return next(agent for agent in body["agents"] if agent["agent_id"] == me)


def spool_after(agent: AgentProcess) -> tuple[int, int, int]:
    """(last seq given out, pending, dropped background) of the stopped agent's spool file."""
    spool = Spool(agent.spool, 1_000_000)
    try:
        stats = spool.stats()
        return spool.last_seq(), stats.pending, stats.dropped_background
    finally:
        spool.close()


def received_bytes(monitor: Monitor) -> int:
    """What the monitor's open TCP connections have received so far (the kernel's count)."""
    port = URL(monitor.url).port
    shown = subprocess.run(["ss", "-tinH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True, check=True).stdout
    return sum(int(count) for count in re.findall(r"bytes_received:(\d+)", shown))


def uploading(monitor: Monitor) -> bool:
    """Whether a check's upload phase is running: megabytes flowing into the monitor."""
    before = received_bytes(monitor)
    time.sleep(0.25)
    return received_bytes(monitor) - before >= 2_000_000


def restart(stopped: Monitor) -> Monitor:
    """The same monitor again: same data directory, same HTTP and UDP port."""
    return start_monitor(stopped.data_dir, "--port", str(URL(stopped.url).port))


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="milliseconds")


# --- monitor stopped and restarted ---------------------------------------------------------------


def test_monitor_restart_every_report_arrives_once_in_order(tmp_path: Path, start_agent) -> None:  # noqa: ANN001
    monitor = start_monitor(tmp_path / "monitor")
    running = [monitor]
    try:
        token = new_token(monitor, "client", "e2e-restart")
        agent = start_agent(agent_config(monitor, tmp_path, FAST), token)
        wait_for(lambda: len(stored_samples(monitor, token)) >= 3, 20, "the first samples")
        monitor.stop()
        stopped = time.time()
        time.sleep(6)  # the agent keeps sampling into its spool
        running.append(monitor := restart(monitor))
        restarted = time.time()
        wait_for(lambda: sum(unix(s["sample"]["taken_at"]) > restarted + 1 for s in stored_samples(monitor, token)) >= 2, 30, "samples taken after the restart")
        code, _ = agent.stop()
        assert code == 0
        last_seq, pending, dropped = spool_after(agent)
        stored = stored_samples(monitor, token)
    finally:
        for each in running:
            each.stop()

    assert pending == 0 and dropped == 0
    seqs = [s["seq"] for s in stored]
    assert seqs == list(range(1, last_seq + 1)), "every report the agent made arrived, exactly once"
    received = [s["received_at"] for s in stored]
    assert received == sorted(received), "in order: report n+1 never before report n"
    held = [s for s in stored if stopped < unix(s["sample"]["taken_at"]) < restarted - 0.5]
    assert len(held) >= 6, "the agent kept sampling while the monitor was down"
    assert all(s["received_at"] >= restarted for s in held), "and those reports waited for the restart"
    print(f"restart: {last_seq} reports, {len(held)} made while the monitor was down")


# --- agent killed while delivering ----------------------------------------------------------------


# Reports waiting when the agent starts: some 20 batches of 100 to deliver. A killed agent
# delivers at most one batch, so at least 1,000 are still waiting at the tenth kill.
BACKLOG = 2000
# Where each kill falls (the gate: tests/agent/gate.py):
# "answer"    the monitor stored the batch and answered; the agent never heard, so the next
#             agent sends it again and the monitor must recognise every report of it;
# "request"   the batch is on its way and the monitor never sees it;
# "answered"  the agent was handed the answer and is killed at once, while it lets the batch
#             go from its spool (or before);
# "delivered" one batch went through and the next one is on its way: the spool let go.
# Each agent delivers at most one batch, so the backlog outlives every kill on any machine.
KILLS = ("answer", "request", "answered", "delivered", "answer", "delivered", "answered", "request", "answer", "delivered")
PLANS: dict[str, tuple[int, Stop, tuple[str, ...]]] = {  # passes, where to stop, what the gate sees
    "answer": (0, "answer", ("answer",)),
    "request": (0, "request", ("request",)),
    "answered": (1, "request", ("answered",)),
    "delivered": (1, "request", ("answered", "request")),
}


def test_sigkill_during_delivery_loses_nothing_and_stores_nothing_twice(tmp_path: Path, start_agent) -> None:  # noqa: ANN001
    monitor = start_monitor(tmp_path / "monitor")
    token = new_token(monitor, "client", "e2e-kill")
    staff = new_token(monitor, "it", "staff")
    metrics = new_token(monitor, "metrics", "prom")
    me = agent_id(monitor, token)
    gate = ReportGate(monitor.url).start()
    # The agent was cut off for a long time: its spool holds a backlog (written through the
    # spool's own API, as the daemon does). It reaches the monitor through the gate.
    config = agent_config(monitor, tmp_path, FAST, url=gate.url)
    spool = Spool(tmp_path / "spool.sqlite3", 20_000_000)
    begin = time.time() - BACKLOG
    for index in range(BACKLOG):
        spool.add_sample("background", make_sample(taken_at=iso(begin + index)))
    spool.close()
    kills: list[dict] = []
    try:
        for where in KILLS:
            passes, stop_at, expected = PLANS[where]
            gate.plan(passes=passes, stop_at=stop_at)
            agent = start_agent(config, token)
            seen = [gate.next_event(30) for _ in expected]
            assert tuple(batch.where for batch in seen) == expected, f"the gate saw {seen} for a kill at {where}: {kills}"
            batch = seen[0]
            agent.process.send_signal(signal.SIGKILL)
            agent.process.wait(timeout=10)
            gate.drop_held()
            while not gate.events.empty():  # a next batch the killed agent had started
                gate.events.get_nowait()
            kills.append({"where": where, "pending": batch.pending, "results": {r: batch.results.count(r) for r in set(batch.results)}, "last_seq": agent_status(monitor, staff, me)["last_seq"]})
            assert batch.pending > 100, f"the kill came while a backlog was being delivered: {kills}"
            if where != "request":  # the first batch the gate saw reached the monitor
                assert batch.status == 200 and batch.results, f"the monitor stored the batch before the kill: {kills}"
        gate.open()
        agent = start_agent(config, token)
        try:
            wait_for(lambda: agent_status(monitor, staff, me)["spool"]["pending"] <= 5, 120, "the backlog to drain")
        except AssertionError as error:
            state = f"agent exit code {agent.process.poll()}, status {agent_status(monitor, staff, me)}, kills {kills}"
            raise AssertionError(f"{error}; {state}; agent log: {agent.log.read_text()[-4000:]}") from None
        code, _ = agent.stop()
        assert code == 0
        last_seq, pending, dropped = spool_after(agent)
        stored = stored_samples(monitor, token)
        duplicates = monitor.metrics(metrics)['sessionready_ingest_reports_total{kind="background",result="duplicate"}']
    finally:
        gate.close()
        monitor.stop()

    assert pending == 0 and dropped == 0
    seqs = [s["seq"] for s in stored]
    assert len(set(seqs)) == len(seqs) == len(stored), "no report stored twice"
    assert seqs == list(range(1, last_seq + 1)), "no report lost"
    received = [s["received_at"] for s in stored]
    assert received == sorted(received), "in order, across kills too"
    assert last_seq > BACKLOG, "the killed agents measured too"
    # Each "answer" kill fell after the monitor had stored a batch and before the spool let it
    # go: the next agent sent it again and the monitor recognised every report of it.
    assert duplicates >= sum(kill["results"].get("stored", 0) for kill in kills if kill["where"] == "answer") > 0, kills
    print(f"kill: {last_seq} reports, {len(kills)} kills, {duplicates:.0f} re-sent reports answered as duplicate; {kills}")


# --- a full spool ---------------------------------------------------------------------------------


def test_full_spool_drops_the_oldest_background_samples_and_keeps_the_check(tmp_path: Path, start_agent) -> None:  # noqa: ANN001
    monitor = start_monitor(tmp_path / "monitor")
    running = [monitor]
    admin, staff = new_token(monitor, "admin", "ops"), new_token(monitor, "it", "staff")
    metrics, token = new_token(monitor, "metrics", "prom"), new_token(monitor, "client", "e2e-full")
    me = agent_id(monitor, token)
    # 10 kB of spool: a check and a dozen samples. The monitor dies during the check's upload
    # phase, so the check completes (a failed phase is data) and waits in the spool.
    check = QUIET_CHECK.replace("load_seconds = 1", "load_seconds = 2")
    config = agent_config(monitor, tmp_path, FAST + "spool_max_mb = 0.01\npre_session_lead_minutes = 10\nnotify = false\n", extra=check)
    try:
        agent = start_agent(config, token)
        wait_for(lambda: len(stored_samples(monitor, token)) >= 2, 20, "the first samples")
        create_session(monitor, admin, "s-full", "e2e-full", float(int(time.time()) + 300), 3600)  # checked at once
        wait_for(lambda: "pre-session check started" in agent.messages(), 20, "the check to start")
        wait_for(lambda: uploading(monitor), 20, "the check's upload to reach the monitor")
        monitor.process.kill()
        monitor.process.wait()
        spooled = wait_for(lambda: [line for line in agent.lines() if line["message"].startswith("pre-session check")][1:], 30, "the check's end")
        assert spooled[0]["message"] == "pre-session check spooled", spooled  # type: ignore[index]
        check_seq = spooled[0]["seq"]  # type: ignore[index]

        def dropped_now() -> int:
            spool = Spool(agent.spool, 10_000)  # the spool is made for several processes: SQLite locks
            try:
                return spool.stats().dropped_background
            finally:
                spool.close()

        wait_for(lambda: dropped_now() >= 3, 30, "the full spool to drop samples")
        running.append(monitor := restart(monitor))
        restarted = time.time()
        wait_for(lambda: checks(monitor, token), 30, "the check after the restart")
        wait_for(lambda: sum(unix(s["sample"]["taken_at"]) > restarted + 1 for s in stored_samples(monitor, token)) >= 2, 30, "samples after the restart")
        code, _ = agent.stop()
        assert code == 0
        last_seq, pending, dropped = spool_after(agent)
        stored, arrived = stored_samples(monitor, token), checks(monitor, token)
        status = agent_status(monitor, staff, me)["spool"]
        exported = monitor.metrics(metrics)[f'sessionready_agent_spool_dropped_reports_total{{agent_id="{me}",kind="background",participant_id="e2e-full"}}']
    finally:
        for each in running:
            each.stop()

    assert pending == 0 and dropped >= 3
    assert [c["report"]["session_id"] for c in arrived] == ["s-full"], "the check was kept and arrived"
    network = arrived[0]["report"]["network"]
    assert network["throughput_mbps"]["down"] is not None, "the check ran against a live monitor, which died in its upload"
    # The count reached the monitor: in the agent list and in /metrics.
    assert status["dropped_background"] == dropped and exported == dropped
    seqs = [s["seq"] for s in stored]
    assert all(s["kind"] == "background" for s in stored) and len(set(seqs)) == len(seqs)
    missing = sorted(set(range(1, last_seq + 1)) - set(seqs) - {check_seq})
    assert len(missing) == dropped, "every seq is stored, the check, or counted as dropped"
    assert missing == list(range(missing[0], missing[-1] + 1)), "one run of the oldest waiting samples"
    assert check_seq < missing[0], "the check was older than the dropped samples and still kept"
    assert all(seq > missing[-1] for seq in seqs if seq > check_seq), "what arrived are the newest samples"
    print(f"full spool: {last_seq} reports, check seq {check_seq}, dropped seqs {missing[0]}..{missing[-1]} ({dropped})")


# --- live mode for the session's duration ---------------------------------------------------------


def test_live_reports_every_2_seconds_until_the_planned_end_then_background(tmp_path: Path, start_agent) -> None:  # noqa: ANN001
    monitor = start_monitor(tmp_path / "monitor")
    try:
        admin, token = new_token(monitor, "admin", "ops"), new_token(monitor, "client", "e2e-live")
        # Machine samples only in background mode: they show at once when it resumes.
        config = agent_config(monitor, tmp_path, FAST.replace("background_interval_s = 1", "background_interval_s = 3600") + "pre_session_lead_minutes = 0\n")
        agent = start_agent(config, token)
        wait_for(lambda: len(stored_samples(monitor, token)) >= 2, 20, "background samples")
        # A session already in progress (planned sessions last at least a minute): it ends
        # in 12 s, by its plan; nobody marks it ended.
        created = time.time()
        start = float(int(created) - 48)
        end = start + 60
        create_session(monitor, admin, "s-e2e-live", "e2e-live", start, 60)
        time.sleep(end + 5 - time.time())
        code, _ = agent.stop()
        assert code == 0
        stored = stored_samples(monitor, token)
    finally:
        monitor.stop()

    live = [s for s in stored if s["kind"] == "live"]
    assert all(s["sample"]["session_id"] == "s-e2e-live" for s in live)
    taken = [unix(s["sample"]["taken_at"]) for s in live]
    received = [s["received_at"] for s in live]
    for gaps in ([b - a for a, b in zip(taken, taken[1:])], [b - a for a, b in zip(received, received[1:])]):
        assert all(1.5 <= gap <= 2.5 for gap in gaps), gaps
    assert all(r - t < 1.5 for r, t in zip(received, taken)), "each report delivered as it was taken"
    # For the session's duration: from soon after it was learned until its planned end.
    assert taken[0] - created <= 5 and end - 2.5 <= taken[-1] <= end + 2.5, (taken[0] - created, taken[-1] - end)
    assert len(live) >= 4
    background = [unix(s["sample"]["taken_at"]) for s in stored if s["kind"] == "background"]
    assert not [t for t in background if taken[0] <= t <= taken[-1]], "live mode replaces background samples"
    assert len([t for t in background if t > taken[-1]]) >= 4, "background samples resume after the end"
    messages = agent.messages()
    assert messages.index("mode: live") < len(messages) - 1 - messages[::-1].index("mode: background")
    print(f"live: {len(live)} reports, first {taken[0] - created:.2f} s after the session was created, last {taken[-1] - end:+.2f} s from its end")
