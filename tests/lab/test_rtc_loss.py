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

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .netlab import MONITOR_ADDR, Lab, LabError, wait_for
from .reference import Irtt, parse_irtt

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MONITOR_PORT = 4000
RTC_PORTS = range(21500, 21510)
# UDP length (header included) of a 172-byte probe or echo, with room for an SCTP SACK chunk a
# browser bundles with its data; nothing else in the flow falls in this band (see docstring).
PROBE_UDP_LENGTH = (230, 320)


def report(scenario: str, **values) -> None:
    """Print the numbers; also append them to $SESSIONREADY_LAB_REPORT if set (as test_accuracy does)."""
    line = json.dumps({"scenario": scenario, **values}, default=str)
    print(line)
    path = os.environ.get("SESSIONREADY_LAB_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


class RtcLabMonitor:
    """The monitor app in the lab's monitor namespace, and a client token to start streams."""

    def __init__(self, lab: Lab, product_cli: str, workdir: Path) -> None:
        self.lab = lab
        data = workdir / "monitor-data"
        data.mkdir(parents=True, exist_ok=True)
        config = workdir / "monitor.toml"
        config.write_text(f'[monitor]\ndata_dir = "{data}"\nrtc_port_min = {RTC_PORTS.start}\nrtc_port_max = {RTC_PORTS.stop - 1}\n')
        self.token = self._token(product_cli, data, "client", "p1")
        self.staff = self._token(product_cli, data, "it", "it-lab")
        self.url = f"http://{MONITOR_ADDR}:{MONITOR_PORT}"
        self.log = workdir / "rtc-monitor.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = lab.start(lab.monitor, [sys.executable, str(ROOT / "tests/lab/rtc_monitor.py"), str(config), MONITOR_ADDR, str(MONITOR_PORT)],
                              log_path=str(self.log), env=env)  # fmt: skip
        wait_for(lambda: "ready" in self.log.read_text(errors="replace") or self._exited(), timeout=30, what="the rtc monitor")

    def _token(self, product_cli: str, data: Path, role: str, participant: str) -> str:
        created = self.lab.monitor.run([product_cli, "monitor", "token", "create", "--role", role, "--participant", participant, "--data-dir", str(data)])
        return created.stdout.strip().splitlines()[-1]

    def api(self, method: str, path: str, payload: dict, token: str | None = None) -> dict:
        """A JSON request from the client namespace (the lab's addresses exist only in there)."""
        script = (
            "import sys, urllib.request\n"
            f"r = urllib.request.Request('{self.url}{path}', data=sys.stdin.buffer.read(), method='{method}',\n"
            f"    headers={{'Authorization': 'Bearer {token or self.staff}', 'Content-Type': 'application/json'}})\n"
            "sys.stdout.write(urllib.request.urlopen(r, timeout=30).read().decode())\n"
        )
        done = subprocess.run(self.lab.client.cmd([sys.executable, "-c", script]), input=json.dumps(payload), capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise LabError(f"{method} {path} failed: {done.stderr[-2000:]}")
        return json.loads(done.stdout)

    def check_link(self, participant: str) -> dict:
        """A check link for a newly registered client: what a browser check runs with."""
        self.api("POST", "/api/v1/participants", {"participant_id": participant, "role": "client"})
        return self.api("POST", "/api/v1/check-links", {"participant_id": participant})

    def _exited(self) -> bool:
        if self.proc.poll() is not None:
            raise LabError(f"rtc monitor exited:\n{self.log.read_text(errors='replace')[-3000:]}")
        return False

    def run_page(self, seconds: float) -> dict:
        """The Python page in the client namespace; the whole stream is its idle phase."""
        args = [sys.executable, str(ROOT / "tests/rtc/page_client.py"), self.url, f"Bearer {self.token}",
                "--seconds", str(seconds), "--phases", f"idle=0:{seconds + 1}"]  # fmt: skip
        proc = self.lab.client.run(args, check=False, timeout=seconds + 60)
        if proc.returncode != 0:
            raise LabError(f"page client failed: {proc.stderr[-3000:]}\nmonitor log:\n{self.log.read_text(errors='replace')[-2000:]}")
        return json.loads(proc.stdout)

    def run_chromium(self, secret: str, seconds: float) -> dict:
        """Headless Chromium in the client namespace, running rtc.js from the monitor."""
        args = [sys.executable, str(ROOT / "tests/rtc/chromium_page.py"), f"{self.url}/c/test/rtc.html", secret, str(seconds)]
        proc = self.lab.client.run(args, check=False, timeout=seconds + 120)
        if proc.returncode != 0:
            raise LabError(f"chromium page failed: {proc.stderr[-3000:]}\nmonitor log:\n{self.log.read_text(errors='replace')[-2000:]}")
        return json.loads(proc.stdout)

    def network_for(self, page: dict, owner: str | None = None) -> dict:
        """What the monitor computes from its records and the page's (posted from the client side)."""
        return self.api("POST", "/test/network-for", {"owner": owner, **{key: page[key] for key in ("rtc_id", "sent", "echoes", "phases")}}, self.token)


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
