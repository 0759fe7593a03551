"""Jitter is judged on the mean of |D|, not on RFC 3550's last J (issue 15, docs/quality-model.md).

RFC 3550's J is a running mean with gain 1/16: its last value follows the last ~16 packets and
never converges, so near a line it tosses the verdict. The report keeps J (``jitter_ms``) and
carries the mean |D| per direction (``jitter_mean_ms``), which the verdict, the settle rule and
the risk engine read; a report from before it is judged on J as it always was.

Streams are built from |D| sequences whose J and mean are worked by hand: after hundreds of
equal |D| = b, J = b (to 1e-10); then m steps of |D| = v leave J = v - (v - b)(15/16)^m, and
(15/16)^8 = 0.59672.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from agents.render import render_report
from monitor.risk.engine import CheckSummary
from monitor.rtc.records import PROBE_HEAD, RECEIPT, IdleRule, StreamRecords, network_of
from sessionready import flow, quality, schema, settle
from sessionready.facts import assess_check
from sessionready.stats import abs_transit_differences, mean_abs_transit_difference
from sessionready.typed import SchemaError, decode, encode
from tests.conftest import CHECK

T = quality.Thresholds()
MS = 1_000_000


def downstream_flow(d_ms: list[float], spacing_ms: float = 100.0) -> flow.FlowResult:
    """An idle flow whose downstream transit zigzags by ``d_ms`` (|D| = each value in turn) and
    whose upstream is steady; packets far enough apart never to overtake each other."""
    transit = [100.0]
    for i, d in enumerate(d_ms):
        transit.append(transit[-1] + (d if i % 2 == 0 else -d))
    sent = len(transit)
    sent_ns = [round(seq * spacing_ms * MS) for seq in range(sent)]
    echoes = {}
    for seq in range(sent):
        reflector_recv = 7 * 10**12 + sent_ns[seq] + 5 * MS  # the reflector's own clock
        reflector_send = reflector_recv + MS
        client_recv = sent_ns[seq] + 5 * MS + MS + round(transit[seq] * MS)
        echoes[seq] = flow.Echo(client_recv, reflector_recv, reflector_send)
    return flow.analyse("idle", sent, sent_ns, echoes, list(range(sent)))


def network_of_flow(idle: flow.FlowResult, **more) -> schema.Network:
    return flow.network(idle, loaded_down_ms=None, loaded_up_ms=None, **more)


def verdict(network: schema.Network) -> quality.Assessment:
    return assess_check(network, None, None, T)


def jitter_reasons(assessment: quality.Assessment) -> list[quality.Reason]:
    return [r for r in assessment.reasons if r.code.endswith("_jitter")]


def test_abs_transit_differences_by_hand() -> None:
    # Transits 10, 13, 9, 9 (receive - send): |D| = 3, 4, 0; mean 7 / 3.
    pairs = [(0, 10), (20, 33), (40, 49), (60, 69)]
    assert abs_transit_differences(pairs) == [3, 4, 0]
    assert mean_abs_transit_difference(pairs) == pytest.approx(7 / 3)
    assert mean_abs_transit_difference(pairs[:1]) is None


def test_a_mean_below_the_line_is_ready_whatever_the_last_j_says() -> None:
    # 391 x |D| 26.5 then 8 x 40: J = 40 - 13.5 x 0.59672 = 31.94 ms, over the 30 ms line;
    # mean = (391 x 26.5 + 8 x 40) / 399 = 26.77 ms, under it.
    net = network_of_flow(downstream_flow([26.5] * 391 + [40.0] * 8))
    assert net.jitter_ms is not None and net.jitter_mean_ms is not None
    assert net.jitter_ms.down == pytest.approx(31.944, abs=0.001)
    assert net.jitter_mean_ms.down == pytest.approx(26.771, abs=0.001)
    assert net.jitter_mean_ms.up == 0.0
    assessment = verdict(net)
    assert assessment.verdict == "ready" and not jitter_reasons(assessment)


def test_a_mean_above_the_line_is_at_risk_whatever_the_last_j_says() -> None:
    # 391 x 31.5 then 8 x 20: J = 20 + 11.5 x 0.59672 = 26.86 ms; mean = 31.27 ms.
    net = network_of_flow(downstream_flow([31.5] * 391 + [20.0] * 8))
    assert net.jitter_ms.down == pytest.approx(26.862, abs=0.001)
    assessment = verdict(net)
    assert assessment.verdict == "at_risk"
    (reason,) = jitter_reasons(assessment)
    assert (reason.code, reason.severity) == ("high_download_jitter", "warning")
    # Words stay plain and name the judged figure, not J.
    assert "varies by about 31 ms" in reason.message


def test_an_old_report_without_the_mean_is_judged_on_j_as_before() -> None:
    # The same stream as the "ready" one above, stored by an agent from before jitter_mean_ms:
    # the key is absent from its JSON, and J (31.94 ms) is judged, as it was then.
    wire = encode(network_of_flow(downstream_flow([26.5] * 391 + [40.0] * 8)))
    del wire["jitter_mean_ms"]
    old = decode(schema.Network, wire)
    assert old.jitter_mean_ms is None
    assessment = verdict(old)
    assert assessment.verdict == "at_risk"
    (reason,) = jitter_reasons(assessment)
    assert reason.code == "high_download_jitter" and "varies by about 32 ms" in reason.message
    # The risk engine reads a stored check the same way, and keeps the figure it judged.
    report = json_report(wire)
    summary = CheckSummary.from_report(report, 0.0)
    assert summary.verdict == "at_risk" and summary.jitter_down_ms == pytest.approx(31.944)
    with_mean = json_report(encode(network_of_flow(downstream_flow([26.5] * 391 + [40.0] * 8))))
    summary = CheckSummary.from_report(with_mean, 0.0)
    assert summary.verdict == "ready" and summary.jitter_down_ms == pytest.approx(26.771)


def json_report(network_wire: dict) -> dict:
    # The stored check of tests/data/report.json with this network part (its throughput kept).
    return {**CHECK, "network": {**network_wire, "throughput_mbps": CHECK["network"]["throughput_mbps"]}}


def test_the_line_itself_does_not_trigger() -> None:
    # The model triggers strictly above a line: a mean of exactly 30 ms gives no reason (even
    # with J far above), 30.001 ms a warning; 50.001 ms is critical.
    def facts(mean: float, j: float) -> quality.NetworkFacts:
        return quality.NetworkFacts(
            rtt_p50_ms=20.0, rtt_p95_ms=25.0, jitter_up_ms=j, jitter_down_ms=0.1, loss_up_ratio=0.0, loss_down_ratio=0.0,
            loss_up_ci95=None, loss_down_ci95=None, packets_sent=500, packets_received=500, throughput_down_mbps=None,
            throughput_up_mbps=None, loaded_latency_down_ms=None, loaded_latency_up_ms=None,
            jitter_mean_up_ms=mean, jitter_mean_down_ms=0.1,
        )  # fmt: skip

    def jitter_reasons(mean: float, j: float) -> list[tuple[str, str]]:
        return [(r.code, r.severity) for r in quality.assess(facts(mean, j), T).reasons if r.code.endswith("_jitter")]

    assert jitter_reasons(30.0, 45.0) == []
    assert jitter_reasons(30.001, 10.0) == [("high_upload_jitter", "warning")]
    assert jitter_reasons(50.001, 10.0) == [("high_upload_jitter", "critical")]
    with pytest.raises(ValueError, match="jitter_mean_up_ms"):
        facts(-1.0, 10.0)


def test_a_negative_or_absurd_mean_in_a_report_is_refused() -> None:
    wire = encode(network_of_flow(downstream_flow([5.0] * 40)))
    for bad in (-0.5, 700_000.0, "12"):
        with pytest.raises(SchemaError, match="jitter_mean_ms"):
            decode(schema.Network, {**wire, "jitter_mean_ms": {"up": bad, "down": 1.0}})


def test_the_settle_rule_settles_on_the_mean_interval_alone() -> None:
    # 400 |D| alternating 25 and 29 (mean 27, s = 2.0): t interval 27 -+ 1.966 x 2.0 / 20 =
    # 26.80..27.20, wholly under 30: settled with no grade, though J (31.94 here) is over the
    # line. Before, the interval was widened to include J and the phase could never settle.
    d = tuple(25.0 if i % 2 else 29.0 for i in range(400))
    so_far = settle.StreamSoFar(401, 401, 401, tuple((i * 0.02, 20.0) for i in range(401)), (0.0,) * 400, d, 0.0, 31.94)
    judged = {j.figure: j for j in settle.judge_idle(so_far, T)}["jitter_down"]
    assert judged.settled and judged.severity is None
    assert (judged.low, judged.high) == pytest.approx((26.80, 27.20), abs=0.01)
    assert so_far.jitter_mean_down_ms == pytest.approx(27.0)
    # Mouth-to-ear delay reads the same figure: 20 / 2 + 2 x 27 + 25 = 89 ms, not 2 x 31.94.
    delay = {j.figure: j for j in settle.judge_idle(so_far, T)}["delay"]
    assert delay.low <= 89.0 <= delay.high < 2 * 31.94 + 35


def test_the_cli_report_carries_the_figure_its_rule_settled_not_the_later_echoes() -> None:
    # The idle rule decided on 381 probes (|D| 27: settled under the line); 8 echoes still in
    # flight then came back with |D| 80. The flow over all 389 has J = 80 - 53 x 0.59672 =
    # 48.4 ms and a mean of 28.3 ms; the report carries the 27 ms that was settled.
    idle = downstream_flow([27.0] * 380 + [80.0] * 8)
    assert idle.jitter_down_ms == pytest.approx(48.37, abs=0.01)
    net = network_of_flow(idle, jitter_mean_ms=(0.0, 27.0))
    assert net.jitter_mean_ms == schema.DirectionMs(up=0.0, down=27.0)
    assert net.jitter_ms.down == pytest.approx(48.37, abs=0.01)  # J is still reported as measured
    assert verdict(net).verdict == "ready"
    assert network_of_flow(idle).jitter_mean_ms.down == pytest.approx((380 * 27 + 8 * 80) / 388, abs=0.001)


def test_the_browser_report_carries_the_figure_the_monitors_rule_settled() -> None:
    # The page sends every 20 ms; echoes come back with a downstream delay that zigzags by 27 ms
    # (echoes overtaking each other as a jittery path does; in arrival order |D| = 0 once, then
    # 27), and their arrival times ride back on later probes (receipts). After the rule's
    # decision, eight more echoes zigzag by 80 ms before the page moves on: the report must
    # carry the figure the rule settled, not one moved by those.
    records = StreamRecords("c" * 32, "link1", idle=IdleRule(settle.PhaseLimits(2.0, 10.0)))
    page_ms, origin_ns = 1000.0, 5 * 10**9
    arrivals: list[tuple[float, int]] = []  # (page arrival ms, seq)
    decided_at = None
    seq = 0
    while decided_at is None or seq < decided_at + 8:
        sent_ms = page_ms + seq * 20.0
        heard = sorted((a, s) for a, s in arrivals if a <= sent_ms)[-13:]
        body = PROBE_HEAD.pack(1, 1, len(heard), seq, sent_ms) + b"".join(RECEIPT.pack(s, a) for a, s in heard)
        recv_ns = origin_ns + round(seq * 20.0 * MS)
        assert records.answer(body + bytes(172 - len(body)), recv_ns, lambda r=recv_ns: r + 50_000) is not None
        records.settle_idle(recv_ns + 60_000)
        zigzag = 27.0 if decided_at is None else 80.0
        arrivals.append((sent_ms + 2.0 + (zigzag if seq % 2 else 0.0), seq))
        if decided_at is None and records.idle.decision is not None:
            decided_at = seq
        seq += 1
    decision = records.idle.decision
    settled_up, settled_down = decision.jitter_mean_ms
    assert decision.stopped == "settled" and settled_up == 0.0 and 26.9 < settled_down < 27.0
    echoes = [(s, a) for a, s in sorted(arrivals)]
    net = network_of(records, seq, echoes, {"idle": (page_ms, page_ms + seq * 20.0)}, ramp_s=1.0)
    assert net.jitter_mean_ms.down == round(settled_down, 3)
    assert net.jitter_ms.down > 30  # J, moved by the late echoes, is reported but not judged
    assert verdict(net).verdict == "ready"



def test_the_check_prints_the_jitter_it_judged() -> None:
    # The person reads "ready" next to the jitter judged (26.8 ms), not J's 31.9 ms; a report
    # without the mean prints J.
    net = encode(network_of_flow(downstream_flow([26.5] * 391 + [40.0] * 8)))
    for network, shown in ((net, "down 26.8 ms"), ({k: v for k, v in net.items() if k != "jitter_mean_ms"}, "down 31.9 ms")):
        report = decode(schema.CheckReport, json_report(network))
        out = io.StringIO()
        render_report(Console(file=out, width=200), report, "")
        assert shown in out.getvalue(), out.getvalue()


def test_the_mean_interval_widens_for_neighbours_that_move_together() -> None:
    # |D| 26, 26, 26, 28, 28, 28, ... (600 values, mean 27): s^2 = 600 / 599 = 1.00167; the
    # neighbours' products of deviations repeat 1, 1, -1, 1, 1, -1, summing to 201 over the 599
    # pairs, so rho1 = (201 / 599) / 1.00167 = 0.335 and the variance of the mean is 1.670 times
    # s^2 / n: half-width t(599) x sqrt(1.00167 x 1.670 / 600) = 1.9640 x 0.05280 = 0.1037
    # (0.0803 without). Alternating values (rho1 = -1) keep the plain interval: never narrower.
    low, high = settle.mean_interval([26.0, 26.0, 26.0, 28.0, 28.0, 28.0] * 100)
    assert (high - low) / 2 == pytest.approx(0.1037, abs=0.0005)
    low, high = settle.mean_interval([26.0, 28.0] * 300)
    assert (high - low) / 2 == pytest.approx(1.9640 * (600 / 599 / 600) ** 0.5, abs=0.0005)
