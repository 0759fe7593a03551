"""The lab checked against the reference tools, before anything of ours is measured in it.

If these fail, the accuracy tests' ground truth cannot be trusted: fix the lab first.
"""

from __future__ import annotations

import math
import statistics
import sys
import time

import pytest

from .groundtruth import DelayProfile, Relay, irtt_packet_id, mean_abs_difference, rfc3550_jitter
from .netlab import MONITOR_ADDR, Lab, LinkPoller, Tbf, busy_intervals
from .reference import IRTT_PORT, Iperf, Irtt, median_rtt_between, median_rtt_wall, parse_irtt

pytestmark = [pytest.mark.lab, pytest.mark.slow]

# TCP goodput over Ethernet framing: 1448 payload bytes per 1514-byte frame (tbf counts the
# frame) is 95.6 % of the shaped rate; 90 % leaves room for ACK clocking and slow start.
GOODPUT_MIN, GOODPUT_MAX = 0.90, 1.0


@pytest.mark.quiet_machine
@pytest.mark.parametrize(("direction", "rate_kbit"), [("down", 20_000), ("up", 8_000)])
def test_tbf_rate_is_what_iperf3_achieves(lab: Lab, tmp_path, direction, rate_kbit):
    lab.shape(direction, Tbf(rate_kbit, latency_ms=50))
    result = Iperf(lab, str(tmp_path)).run(direction, seconds=4, streams=4)
    ratio = result.mbps / (rate_kbit / 1000)
    print(f"tbf {rate_kbit} kbit/s {direction}: iperf3 {result.mbps:.2f} Mbit/s ({ratio:.1%})")
    assert GOODPUT_MIN <= ratio <= GOODPUT_MAX


def test_nft_loss_is_what_irtt_sees(lab: Lab, tmp_path):
    percent = 5.0
    lab.add_loss("up", percent, [IRTT_PORT])
    lab.add_loss("down", percent, [IRTT_PORT])
    irtt = Irtt(lab, str(tmp_path))
    result = parse_irtt(irtt.run(duration_s=10))
    for direction, seen_loss in (("up", result.loss_up), ("down", result.loss_down)):
        seen, dropped = lab.loss_counters(direction)
        truth = dropped / seen
        # The configured rate is a Bernoulli probability: 4 standard errors around it.
        spread = 4 * math.sqrt(percent / 100 * (1 - percent / 100) / seen)
        print(f"loss {direction}: nft dropped {dropped}/{seen} = {truth:.2%}, irtt {seen_loss:.2%}")
        assert abs(truth - percent / 100) <= spread
        assert abs(seen_loss - truth) <= 0.01


@pytest.mark.quiet_machine  # under a loaded machine irtt paired 465 of 500 round trips
def test_relay_adds_the_delay_and_jitter_it_logs(lab: Lab, tmp_path):
    # A relay that does not add what it logs fails every trial; irtt's own wake-ups on a busy
    # machine moved its median RTT by 0.66-0.95 ms in single CI runs (2026-12-07): a failed
    # trial is run once more in a fresh directory, and the second must hold.
    try:
        _relay_trial(lab, tmp_path / "first")
    except AssertionError as first:
        print(f"first trial failed ({first}); once more")
        _relay_trial(lab, tmp_path / "second")


def _relay_trial(lab: Lab, tmp_path) -> None:
    tmp_path.mkdir()
    irtt = Irtt(lab, str(tmp_path))
    try:
        _measure_relay(lab, irtt, tmp_path)
    finally:
        irtt.stop()  # a second trial's server takes the same port (it exited 1 in CI when this one still held it)


def _measure_relay(lab: Lab, irtt: Irtt, tmp_path) -> None:
    relay = Relay(
        lab, 4101, f"{MONITOR_ADDR}:{IRTT_PORT}",
        up=DelayProfile(20, 5, "uniform"), down=DelayProfile(20, 3, "normal"),
        log_path=str(tmp_path / "relay.jsonl"),
    )  # fmt: skip
    # The path without the relay is measured at the same time as through it, so that both see
    # the same machine (a base taken before, under another load, once differed by 1 ms).
    direct = irtt.start_client(f"{MONITOR_ADDR}:{IRTT_PORT}", 10)
    through = parse_irtt(irtt.run(target=relay.address, duration_s=10))
    base = parse_irtt(Irtt.finish(*direct))
    log = relay.stop()

    def test_packet(p):
        return p.length == 172  # irtt's test packets; its handshake packets are shorter

    up, down = log.truth("up", test_packet), log.truth("down", test_packet)
    print(f"relay scheduling: {log.config.get('scheduling')}; up {up}; down {down}")
    # The relay releases on time (typically within tens of µs). Its tail is the machine's: a
    # shared VM stalls every process now and then for a few ms, which is why ground truth is
    # the hold the relay actually applied, never the one it meant to apply.
    for truth in (up, down):
        assert truth.sched_error_p50_us < 100
    # Added RTT per round trip: a probe's hold up plus its echo's hold down, paired by seqno.
    added_ns = log.added_rtts_ns(irtt_packet_id)
    assert len(added_ns) >= 490
    added = statistics.median(added_ns) / 1e6
    expected = base.rtt_median_ms + added
    print(f"irtt median RTT: base {base.rtt_median_ms:.3f} ms, through relay {through.rtt_median_ms:.3f} ms, "
          f"ground truth {expected:.3f} ms")  # fmt: skip
    assert abs(through.rtt_median_ms - expected) <= 0.5
    # Jitter per direction: irtt's one-way delays (one clock in the lab) against the relay's holds.
    # A packet's one-way delay is its hold plus its time on the path outside the relay, so the
    # two RFC 3550 values can differ by at most the same running average taken over the path's
    # own delay changes (|J_a - J_b| <= EWMA of ||D_a| - |D_b|| <= EWMA of |D_path|). That path is
    # tens of µs, but a shared VM stalls a process for a few ms now and then, and one stall among
    # the last 16 packets moves a final value by ~0.5 ms: the bound is measured, not assumed.
    for name, truth, seen, ipdv, one_way in (
        ("up", up, through.jitter_up_ms, through.ipdv_up_mean_ms, through.one_way_up),
        ("down", down, through.jitter_down_ms, through.ipdv_down_mean_ms, through.one_way_down),
    ):
        holds = {irtt_packet_id(p): p.hold_ns for p in log.sent(name, test_packet)}
        path_ns = [delay - holds[seqno] for _, seqno, delay in one_way if seqno in holds]
        assert len(path_ns) >= 490
        path_jitter = rfc3550_jitter(path_ns) / 1e6
        print(f"jitter {name}: relay {truth.jitter_ms:.3f} ms, irtt {seen:.3f} ms, path outside the relay "
              f"{path_jitter:.3f} ms; mean |D|: relay {truth.mean_abs_d_ms:.3f} ms, irtt {ipdv:.3f} ms")  # fmt: skip
        assert abs(seen - truth.jitter_ms) <= path_jitter + 0.05
        # The same bound holds for the steady-state figure, mean |D| over the whole run.
        delays = [delay for _, seqno, delay in one_way if seqno in holds]
        path_mean_d = mean_abs_difference(path_ns) / 1e6
        assert abs(mean_abs_difference(delays) / 1e6 - truth.mean_abs_d_ms) <= path_mean_d + 0.05
        # And the path outside the relay is small next to the jitter under test.
        assert statistics.median(abs(b - a) for a, b in zip(path_ns, path_ns[1:])) < 100_000


@pytest.mark.quiet_machine
@pytest.mark.parametrize(("queue", "latency_ms"), [("shallow", 10), ("deep", 300)])
def test_loaded_latency_physics(lab: Lab, tmp_path, queue, latency_ms):
    """What is physically true under load, seen by irtt under iperf3 load.

    Two irtt streams run at once: how closely they agree on the loaded median RTT is the
    sampling tolerance the accuracy test allows the product against irtt.
    """
    lab.shape("down", Tbf(20_000, latency_ms))
    lab.shape("up", Tbf(8_000, latency_ms))
    iperf = Iperf(lab, str(tmp_path))
    irtt = Irtt(lab, str(tmp_path))
    poller = LinkPoller(lab)
    poller.start(sys.executable)
    first = irtt.start_client(f"{MONITOR_ADDR}:{IRTT_PORT}", 10)
    second = irtt.start_client(f"{MONITOR_ADDR}:{IRTT_PORT}", 10)
    time.sleep(1.5)
    iperf.start("down", 3).communicate()
    time.sleep(0.5)
    iperf.start("up", 3).communicate()
    results = [parse_irtt(Irtt.finish(*first)), parse_irtt(Irtt.finish(*second))]
    series = poller.stop()
    down_spans = busy_intervals(series["r0"], 10e6)
    up_spans = busy_intervals(series["r1"], 4e6)
    assert len(down_spans) == 1 and len(up_spans) == 1, (down_spans, up_spans)
    print(f"congestion control: {lab.congestion_control}")
    physical = {}
    for name, (start, end) in (("down", down_spans[0]), ("up", up_spans[0])):
        window = (start + 1_000_000_000, end)  # after a second of ramp-up, as the product does
        increases = []
        for result in results:
            idle = median_rtt_between(result, 0, 1.4)
            loaded = median_rtt_wall(result, *window)
            increases.append(loaded - idle)
        print(f"{queue} queue ({latency_ms} ms), load {name}: RTT increase {increases[0]:.1f} / {increases[1]:.1f} ms")
        assert abs(increases[0] - increases[1]) <= max(5, 0.15 * max(increases))
        physical[name] = min(increases)
    if queue == "shallow":
        assert max(physical.values()) < 20
    else:
        # The upload (8 Mbit/s) fills a 300 ms queue with cubic and with BBR alike; how deep
        # the download queue gets depends on the congestion control, so it is only reported.
        assert physical["up"] > 50
