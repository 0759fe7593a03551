"""Issue 16 part 4, end to end: a real ``sessionready agent`` in live mode with two monitor URLs,
two real monitor processes on one store (one SQLite file shared by both processes), and the
first monitor killed with SIGKILL while a batch it had stored was on its way back.

The agent reaches the first monitor through the report gate (tests/agent/gate.py), which holds
one batch's answer after the monitor stored it; the monitor is then killed and the held
connection cut, as the kernel cuts a dead process's connections. So the agent sent a batch to a
monitor that died before answering: it must send it again to the second monitor, which finds
every report of it already in the store (duplicate), and carry on there. Ground truth: the
agent's own spool (every seq it ever gave out, none pending), the store's rows, the gate's and
the second monitor's counts of what was sent."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiohttp import web

from tests.agent import test_daemon
from tests.agent.conftest import QUIET_CHECK, create_session, unix
from tests.agent.gate import ReportGate
from tests.agent.test_e2e import spool_after, stored_samples
from tests.conftest import new_token, start_monitor, wait_for

start_agent = test_daemon.start_agent
pytestmark = pytest.mark.slow

LIVE_S = 0.5  # the shortest live interval the config allows: more reports in less time
# Background samples kept out of the way: the test is about live mode.
AGENT = f"machine_interval_s = 3600\nbackground_interval_s = 3600\nsessions_poll_s = 0.5\npre_session_lead_minutes = 0\nlive_interval_s = {LIVE_S}\nnotify = false\n"


class CuttingGate(ReportGate):
    """A held batch's connection is cut when dropped (no answer at all), not answered 503."""

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        try:
            return await super()._forward(request)
        except web.HTTPServiceUnavailable:
            if request.transport is not None:
                request.transport.abort()
            raise


def test_a_monitor_killed_before_answering_loses_nothing_and_the_agent_carries_on(tmp_path: Path, start_agent) -> None:  # noqa: ANN001
    store = tmp_path / "store"
    first = start_monitor(store)
    (tmp_path / "store-b").symlink_to(store)  # the same directory; its own log file beside it
    second = start_monitor(tmp_path / "store-b")
    running = [first, second]
    gate = CuttingGate(first.url).start()
    gate.open()  # every batch passes, counted, until the test plans the kill
    try:
        admin, token, metrics = new_token(first, "admin", "ops"), new_token(first, "client", "c-failover"), new_token(first, "metrics", "prom")
        config = tmp_path / "agent.toml"
        config.write_text(f'[monitor]\nurl = ["{gate.url}", "{second.url}"]\n\n{QUIET_CHECK}\n[agent]\nspool_path = "{tmp_path / "spool.sqlite3"}"\n{AGENT}')
        now = time.time()
        create_session(first, admin, "s-failover", "c-failover", float(int(now) - 30), 600)  # in progress
        agent = start_agent(config, token)
        wait_for(lambda: len(stored_samples(second, token)) >= 8, 40, "live reports through the first monitor")

        gate.plan(passes=0, stop_at="answer")
        before = []
        while (event := gate.next_event(20)).where != "answer":
            before.append(event)
        held = event
        assert held.status == 200 and held.results and set(held.results) == {"stored"}, held
        first.process.kill()  # SIGKILL, with the batch stored and its answer not yet sent
        first.process.wait(timeout=10)
        killed = time.time()
        gate.drop_held()  # its connection is cut: the agent never hears an answer
        gate.close()  # and the first monitor's address refuses connections from now on
        while not gate.events.empty():
            before.append(gate.events.get_nowait())

        wait_for(lambda: sum(unix(s["sample"]["taken_at"]) > killed + 1 for s in stored_samples(second, token)) >= 10, 40, "live reports through the second monitor")
        code, _ = agent.stop()
        assert code == 0
        last_seq, pending, dropped = spool_after(agent)
        stored = stored_samples(second, token)
        counts = second.metrics(metrics)
    finally:
        for monitor in running:
            monitor.stop()

    sent_to_first = sum(len(event.results) for event in before) + len(held.results)
    by_second = {result: counts.get(f'sessionready_ingest_reports_total{{kind="live",result="{result}"}}', 0.0) for result in ("stored", "duplicate", "rejected")}
    seqs = [s["seq"] for s in stored]
    print(
        f"failover: {last_seq} reports made, {last_seq - pending - dropped} acknowledged, {len(stored)} stored ({len(set(seqs))} distinct); "
        f"sent {sent_to_first + sum(by_second.values()):.0f} = {sent_to_first} to the first monitor + {sum(by_second.values()):.0f} to the second "
        f"({by_second['stored']:.0f} stored, {by_second['duplicate']:.0f} duplicate, {by_second['rejected']:.0f} rejected); "
        f"the batch held at the kill: {len(held.results)} reports"
    )
    assert pending == 0 and dropped == 0, "every report made was acknowledged"
    assert len(set(seqs)) == len(seqs) == len(stored), "no report stored twice"
    assert seqs == list(range(1, last_seq + 1)), "no report lost"
    # At least the held batch. A batch in flight when the agent is stopped is cancelled
    # mid-request and sent again by the stop's flush: the second monitor recognises it too.
    assert by_second["duplicate"] >= len(held.results), "the batch the dead monitor had stored was sent again, and recognised, every report of it"
    assert by_second["rejected"] == 0
    assert by_second["stored"] + sent_to_first == last_seq, "every report stored once, by one monitor or the other"
    messages = agent.messages()
    moves = [message for message in messages if message.startswith("monitor down, moving to the next")]
    print(f"failover: the agent's moves: {moves}")
    assert moves, messages
    # Live mode went on through the second monitor's reflector: its windows have echoes again.
    after = [s["sample"]["network"] for s in stored if unix(s["sample"]["taken_at"]) > killed + 2]
    assert after and all(n["problem"] is None and n["packets_received"] > 0 for n in after[-5:]), after[-5:]
    unmeasured = [s["seq"] for s in stored if s["sample"]["network"]["problem"] == "monitor_unreachable"]
    # Loopback loses nothing: a window with loss counted probes the killed reflector never
    # echoed, before any request had found its monitor down (docs/agent.md says so).
    lossy = [(s["seq"], s["sample"]["network"]["packets_sent"], s["sample"]["network"]["packets_received"]) for s in stored if (s["sample"]["network"]["loss_up"] or 0) > 0]
    print(f"failover: live windows without numbers while the stream moved: {len(unmeasured)}; windows with loss (seq, sent, received): {lossy}")
    assert len(lossy) <= 2, lossy
    assert len(unmeasured) <= 3, unmeasured
