"""The browser check's WebRTC probe stream in the network lab, against ground truth.

The monitor (the real ``create_app``, served by rtc_monitor.py in the monitor namespace) answers
a page in the client namespace. nftables drops probes at random at each receiver's input, at a
different rate per direction; the kernel's counters of probes seen and dropped are the truth
for loss, irtt on the same path the truth for RTT (docs/browser-check.md section 3; issue 14):

* each direction's loss within 1 percentage point of what the kernel dropped (>= 500 probes);
* median RTT within max(2 ms, 10 %) of irtt's median on the same path.

The loss rules match only UDP datagrams as long as a probe or an echo inside DTLS and SCTP
(``PROBE_UDP_LENGTH``, found in the lab: 172-byte messages travel in 245-byte UDP datagrams
between two aiortc stacks; SCTP acknowledgements, ICE checks and the DTLS handshake are far
shorter or longer), so the counters count exactly the probe stream's packets, and the
connection set-up is never what a random drop hits.

The page is first the Python stand-in tests/rtc/page_client.py (aiortc), then headless Chromium
running monitor/static/check/rtc.js from the monitor, with a real check link, both in the client
namespace.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .netlab import Lab
from .product import PROBE_UDP_LENGTH, RTC_PORTS, RtcLabMonitor, report
from .reference import Irtt, parse_irtt

pytestmark = [pytest.mark.lab, pytest.mark.slow]

@pytest.mark.quiet_machine
def test_rtc_loss_and_rtt_against_kernel_and_irtt(lab: Lab, product_cli: str, tmp_path: Path) -> None:
    up_percent, down_percent = 3.0, 8.0
    seconds = 15.0  # 750 probes at 50/s
    monitor = RtcLabMonitor(lab, product_cli, tmp_path)
    lab.add_loss("up", up_percent, list(RTC_PORTS), udp_length=PROBE_UDP_LENGTH)
    lab.add_loss("down", down_percent, list(RTC_PORTS), udp_length=PROBE_UDP_LENGTH)

    page = monitor.run_page(seconds)
    seen_up, dropped_up = lab.loss_counters("up")
    seen_down, dropped_down = lab.loss_counters("down")
    answer = monitor.network_for(page)
    net = answer["network"]
    assert net is not None, answer

    # irtt on the same path right after (its port has no loss rule): the RTT yardstick.
    irtt = Irtt(lab, str(tmp_path))
    reference = parse_irtt(irtt.run(duration_s=5))

    truth_up = dropped_up / seen_up
    truth_down = dropped_down / seen_down
    report(
        "rtc: loss per direction and RTT",
        product={"packets": net["packets"], "loss": net["loss"], "rtt_ms": net["rtt_ms"], "jitter_ms": net["jitter_ms"]},
        truth={"up": {"seen": seen_up, "dropped": dropped_up, "ratio": round(truth_up, 4)},
               "down": {"seen": seen_down, "dropped": dropped_down, "ratio": round(truth_down, 4)},
               "irtt_rtt_ms": {"min": reference.rtt_min_ms, "p50": reference.rtt_median_ms, "p95": reference.rtt_p95_ms}},
        monitor=answer["monitor"],
        page={"sent": page["sent"], "echoes": len(page["echoes"]), "bad_echo_lengths": page["bad_echo_lengths"]},
    )  # fmt: skip

    packets = net["packets"]
    assert packets["sent"] >= 500, packets
    # Every probe the page sent crossed the monitor's input hook (no other loss on the path), and
    # every echo the monitor sent crossed the client's: the counters count the same packets.
    assert seen_up == packets["sent"], (seen_up, packets)
    assert seen_down == packets["reflected"], (seen_down, packets)
    assert page["bad_echo_lengths"] == 0
    assert abs(net["loss"]["up"] - truth_up) <= 0.01, (net["loss"], truth_up)
    assert abs(net["loss"]["down"] - truth_down) <= 0.01, (net["loss"], truth_down)
    tolerance = max(2.0, 0.10 * reference.rtt_median_ms)
    assert abs(net["rtt_ms"]["p50"] - reference.rtt_median_ms) <= tolerance, (net["rtt_ms"], reference.rtt_median_ms)


@pytest.mark.quiet_machine
def test_rtc_js_in_chromium_loss_and_rtt_against_kernel_and_irtt(lab: Lab, product_cli: str, tmp_path: Path) -> None:
    up_percent, down_percent = 3.0, 8.0
    seconds = 15.0
    monitor = RtcLabMonitor(lab, product_cli, tmp_path)
    link = monitor.check_link("c-lab")
    lab.add_loss("up", up_percent, list(RTC_PORTS), udp_length=PROBE_UDP_LENGTH)
    lab.add_loss("down", down_percent, list(RTC_PORTS), udp_length=PROBE_UDP_LENGTH)

    outcome = monitor.run_chromium(link["secret"], seconds)
    assert "rtc" in outcome, outcome
    page = outcome["rtc"]
    seen_up, dropped_up = lab.loss_counters("up")
    seen_down, dropped_down = lab.loss_counters("down")
    answer = monitor.network_for(page, owner=link["link_id"])
    net = answer["network"]
    assert net is not None, answer
    # Another link's id gets nothing.
    assert monitor.network_for(page, owner="0" * 12)["network"] is None

    irtt = Irtt(lab, str(tmp_path))
    reference = parse_irtt(irtt.run(duration_s=5))
    truth_up, truth_down = dropped_up / seen_up, dropped_down / seen_down
    report(
        "rtc.js in chromium: loss per direction and RTT",
        product={"packets": net["packets"], "loss": net["loss"], "rtt_ms": net["rtt_ms"], "jitter_ms": net["jitter_ms"]},
        truth={"up": {"seen": seen_up, "dropped": dropped_up, "ratio": round(truth_up, 4)},
               "down": {"seen": seen_down, "dropped": dropped_down, "ratio": round(truth_down, 4)},
               "irtt_rtt_ms": {"min": reference.rtt_min_ms, "p50": reference.rtt_median_ms, "p95": reference.rtt_p95_ms}},
        monitor=answer["monitor"],
        page={"sent": page["sent"], "echoes": len(page["echoes"]), "phases": page["phases"]},
        console_errors=outcome["console_errors"],
    )  # fmt: skip

    assert net["packets"]["sent"] >= 500, net["packets"]
    assert outcome["console_errors"] == []
    assert abs(net["loss"]["up"] - truth_up) <= 0.01, (net["loss"], truth_up)
    assert abs(net["loss"]["down"] - truth_down) <= 0.01, (net["loss"], truth_down)
    tolerance = max(2.0, 0.10 * reference.rtt_median_ms)
    assert abs(net["rtt_ms"]["p50"] - reference.rtt_median_ms) <= tolerance, (net["rtt_ms"], reference.rtt_median_ms)
