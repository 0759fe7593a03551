"""The browser check's throughput and delay under load in the network lab, against ground truth.

Headless Chromium in the client namespace runs the page's own network code (network.js, which
check.js runs: rtc.js and throughput.js) with a real check link's settings (the defaults:
adaptive phases, ended by the monitor's rule): the idle probe stream, then download, then
upload, each phase marked on the stream; it submits the result through the link, and the
monitor (the real ``create_app`` in the monitor namespace) computes delay under load from its
own records of the probe stream, as for any browser check (docs/browser-check.md sections 3-5).
The link between them is shaped with tbf on the router, with a deep queue (300 ms: bufferbloat).
Every phase must have been ended by the monitor's rule ("settled" or "max_length"), none by the
page's own backstop.

Ground truth, measured on the same link in the same test:

* throughput: iperf3, 4 parallel TCP streams (the page's number of streams), 4 s after 1 s left
  out, each direction; the page must read within 15 % of it (the issue's tolerance), and never
  more than TCP goodput can be through the shaper: 1448 payload bytes per 1514-byte frame, 0.956 x
  the tbf rate (../shared/TESTING.md: a reading above it is a bug whatever iperf3 says). On this
  deep queue iperf3's own upload reads above that ceiling (the bytes still queued when its sender
  stops are received after the end and counted over the nominal 4 s): the ceiling, not iperf3,
  bounds the page from above;
* delay under load per direction: irtt running for the whole check on the same path, its
  median RTT over exactly the monitor's windows (the page's phases on the wall clock:
  ``performance.timeOrigin`` + the page's clock; the load phases without their first
  ``ramp_seconds``) minus its median over the idle phase. The browser's figure must be within
  max(5 ms, 15 %) of irtt's, the lab's tolerance for two streams sampling one queue (as
  test_accuracy.py's for the CLI; test_lab_sanity checks that two irtt streams agree to it), and
  the queue must show: irtt > 60 ms means the browser > 50 ms (the CLI's rule).

The run is short: iperf3 2 x 5 s, then one browser check (adaptive phases: at most 10 + 6 + 6 s),
about 35 s in all with Chromium's start. Measured numbers: docs/browser-check.md, "Throughput and delay under
load against the lab".
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from .netlab import MONITOR_ADDR, Lab, LinkPoller, Tbf, rate_between
from .product import RtcLabMonitor, report
from .reference import IRTT_PORT, Iperf, Irtt, median_rtt_wall, parse_irtt

pytestmark = [pytest.mark.lab, pytest.mark.slow]

# TCP payload per frame through tbf on a veth: 1500 - 20 (IP) - 20 (TCP) - 12 (timestamps) bytes
# of every 1500 + 14 (Ethernet) the shaper counts.
GOODPUT_PER_RATE = 1448 / 1514


def within(value: float | None, truth: float, abs_tol: float, rel_tol: float) -> bool:
    return value is not None and abs(value - truth) <= max(abs_tol, rel_tol * abs(truth))


@pytest.mark.quiet_machine
def test_page_throughput_and_delay_under_load_against_iperf3_and_irtt(lab: Lab, product_cli: str, tmp_path: Path) -> None:
    down_kbit, up_kbit, latency_ms = 20_000, 8_000, 300
    lab.shape("down", Tbf(down_kbit, latency_ms))
    lab.shape("up", Tbf(up_kbit, latency_ms))
    iperf = Iperf(lab, str(tmp_path))
    iperf_mbps = {"down": iperf.run("down", seconds=4, streams=4).mbps, "up": iperf.run("up", seconds=4, streams=4).mbps}

    monitor = RtcLabMonitor(lab, product_cli, tmp_path)
    link = monitor.check_link("c-lab")
    irtt = Irtt(lab, str(tmp_path))
    poller = LinkPoller(lab)
    poller.start(sys.executable)
    irtt_proc, irtt_out = irtt.start_client(f"{MONITOR_ADDR}:{IRTT_PORT}", 120)
    try:
        outcome = monitor.run_network(link["secret"])
    finally:
        irtt_proc.send_signal(signal.SIGINT)  # irtt stops and writes its results
    reference = parse_irtt(Irtt.finish(irtt_proc, irtt_out))
    series = poller.stop()
    assert "check" in outcome, outcome
    stored = outcome["check"]["report"]
    net = stored["network"]
    settings = stored["settings"]

    # The monitor's windows on the wall clock, in ns: a probe belongs to the phase its send
    # time falls in; the load phases leave out their first ramp_seconds.
    wall = {name: (round(span[0] * 1e6), round(span[1] * 1e6)) for name, span in outcome["phases_wall_ms"].items()}
    ramp_ns = round(settings["ramp_seconds"] * 1e9)
    idle_irtt = median_rtt_wall(reference, *wall["idle"])
    irtt_loaded = {
        direction: median_rtt_wall(reference, wall[phase][0] + ramp_ns, wall[phase][1]) - idle_irtt
        for direction, phase in (("down", "download"), ("up", "upload"))
    }
    # What the router forwarded in the same windows (frames, a few % above goodput): tells a
    # measurement error from a load that did not fill the link.
    router_mbps = {
        direction: rate_between(series[device], wall[phase][0] + ramp_ns, wall[phase][1])
        for direction, phase, device in (("down", "download", "r0"), ("up", "upload", "r1"))
    }
    page_mbps = {"down": net["throughput_mbps"]["down"], "up": net["throughput_mbps"]["up"]}
    ceiling = {"down": down_kbit / 1000 * GOODPUT_PER_RATE, "up": up_kbit / 1000 * GOODPUT_PER_RATE}
    report(
        f"browser check: throughput and delay under load, 20/8 Mbit/s, deep queue ({latency_ms} ms)",
        congestion_control=lab.congestion_control,
        page={"throughput_mbps": page_mbps, "loaded_latency_ms": net["loaded_latency_ms"], "rtt_ms": net["rtt_ms"],
              "throughput_error": net.get("throughput_error"), "probes": net["packets"],
              "requests": {d: {k: outcome["throughput"][d][k] for k in ("bytes", "seconds", "window_s", "error", "endedBy")} for d in ("down", "up")}},
        iperf3_mbps={k: round(v, 3) for k, v in iperf_mbps.items()},
        goodput_ceiling_mbps={k: round(v, 3) for k, v in ceiling.items()},
        router_link_mbps_in_window={k: v and round(v / 1e6, 3) for k, v in router_mbps.items()},
        irtt={"idle_rtt_ms": round(idle_irtt, 3), "loaded_latency_ms": {k: round(v, 2) for k, v in irtt_loaded.items()}},
        phases_s={name: round((end - start) / 1e9, 3) for name, (start, end) in wall.items()},
        phases_stopped={p["name"]: (p["stopped"], p["seconds"], [u["figure"] for u in p["unsettled"]]) for p in stored["phases"]},
        console_errors=outcome["console_errors"],
    )  # fmt: skip

    assert outcome["console_errors"] == []
    # Each phase ended by the monitor's rule and told on the echoes (the page's backstop is the
    # longest length + 2 s); its span on the page also holds the streams' end (an upload's last
    # requests finish, 3 s at most).
    for phase in stored["phases"]:
        assert phase["stopped"] in ("settled", "max_length") and (phase["min_s"], phase["max_s"]) != (None, None), phase
        assert phase["min_s"] <= phase["seconds"] <= phase["max_s"] + 3.0, phase
    assert {d: outcome["throughput"][d]["endedBy"] for d in ("down", "up")} == {"down": "monitor", "up": "monitor"}, outcome["throughput"]
    assert [p["name"] for p in stored["phases"]] == ["idle", "download", "upload"]
    assert net["throughput_error"] is None, net
    failures = []
    for direction in ("down", "up"):
        value = page_mbps[direction]
        if not within(value, iperf_mbps[direction], 0, 0.15):
            failures.append(f"throughput {direction} {value} Mbit/s, iperf3 {iperf_mbps[direction]:.2f} Mbit/s")
        if value is not None and value > ceiling[direction]:
            failures.append(f"throughput {direction} {value} Mbit/s above TCP goodput through the shaper ({ceiling[direction]:.2f})")
        loaded, truth = net["loaded_latency_ms"][direction], irtt_loaded[direction]
        if not within(loaded, truth, 5.0, 0.15):
            failures.append(f"delay under load {direction} {loaded} ms, irtt over the same window {truth:.1f} ms")
        if truth > 60 and not (loaded is not None and loaded > 50):
            failures.append(f"delay under load {direction} {loaded} ms on a deep, full queue (irtt {truth:.1f} ms)")
    # Lab sanity: the page's upload fills the deep upstream queue (it does with BBR and cubic).
    assert irtt_loaded["up"] > 60, f"the deep queue did not fill: irtt saw {irtt_loaded}"
    assert not failures, "; ".join(failures)
