"""The page's phases ended by the monitor's stopping rule (docs/browser-check.md section 3;
the rule is sessionready/settle.py, the CLI's), in Chromium against a real monitor.

* A clean path (loopback): the idle phase stops once every figure is settled, which for loss
  means 0 lost of n with a Wilson upper bound at or below 1 %: n >= 381, 7.62 s at 50 probes/s
  (docs/quality-model.md, "Adaptive length"), well before the 10 s maximum. The download and
  upload (Gbit/s on loopback: every window far above the best tier's need, no queue) are settled
  at their 2 s minimum, told by the monitor from the byte counts the probes carry (the upload's
  once its answered requests cover 1 s past the ramp). The same run plays a 640x480, 30
  frames/s camera file: its size and rate reported, no camera reason.
* A path losing one probe in 50 on the way up (2 %, between the 1 % and 3 % lines), made in
  the page's own browser by a script that swallows every 50th probe the page hands its data
  channel (the page counts it as sent, the monitor never sees it): the rule cannot settle, the
  phase runs to its maximum (4 s here) and the verdict carries the ``borderline`` reason.

The stored check's ``phases`` say how long the idle phase ran and why it stopped. The camera's
and the rule's numbers are checked against ground truth from outside the product: the file's
header, and the count of probes the script swallowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_check.conftest import (
    chrome,
    make_link,
    make_pink,
    start_page_monitor,
    write_y4m,
)
from tests.browser_check.test_camera import allow_camera_only, fps_tolerance
from tests.browser_check.test_page import run_check
from tests.conftest import Monitor

# The idle phase's length is real time (the rule is asked as the probes arrive), and the
# camera's frame rate too (tests/browser_check/test_camera.py).
pytestmark = pytest.mark.quiet_machine

# Every 50th probe the page sends (kind 1, or 3 with a load sample) never leaves the browser;
# the page does not know.
SWALLOW_EVERY_50TH_PROBE = """
window.__probes = 0; window.__swallowed = [];
const send = RTCDataChannel.prototype.send;
RTCDataChannel.prototype.send = function (data) {
  if (data instanceof ArrayBuffer && data.byteLength >= 8 && [1, 3].includes(new DataView(data).getUint8(0))) {
    const view = new DataView(data);
    const seq = view.getUint32(4);
    window.__probes += 1;
    if (seq % 50 === 25) { window.__swallowed.push([seq, view.getUint8(1)]); return; }
  }
  return send.call(this, data);
};
"""


@pytest.fixture
def adaptive_monitor(tmp_path: Path) -> Iterator[Monitor]:
    running = start_page_monitor(tmp_path / "adaptive", phases="link_adaptive = true\nlink_udp_min_seconds = 2\nlink_udp_max_seconds = 10\n")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def short_max_monitor(tmp_path: Path) -> Iterator[Monitor]:
    running = start_page_monitor(tmp_path / "short", phases="link_adaptive = true\nlink_udp_min_seconds = 2\nlink_udp_max_seconds = 4\n")
    try:
        yield running
    finally:
        running.stop()


def test_a_clean_path_stops_once_settled_and_a_good_camera_says_nothing(adaptive_monitor: Monitor, tmp_path: Path) -> None:
    link = make_link(adaptive_monitor)
    video = write_y4m(tmp_path / "normal.y4m", 640, 480, 30)
    driver = chrome(make_pink(tmp_path / "pink.wav", -40.0, seconds=2), fake_ui=False, video_file=video)
    try:
        allow_camera_only(driver, link.origin)
        report = run_check(driver, link)
    finally:
        driver.quit()
    idle, *loads = report["phases"]
    print("phases:", report["phases"], "camera:", report["devices"]["camera"], "packets:", report["network"]["packets"])
    assert report["settings"]["adaptive"] is True
    assert (idle["name"], idle["stopped"], idle["min_s"], idle["max_s"], idle["unsettled"]) == ("idle", "settled", 2.0, 10.0, [])
    # 381 probes and their receipts back, the rule asked every 0.2 s, the word back with the
    # next echo: from 7.62 s; well under the 10 s maximum (a loaded machine may add a little).
    assert 7.6 <= idle["seconds"] <= 9.0, idle
    assert report["network"]["packets"]["sent"] >= 381 and report["network"]["loss"]["up_ci95"][1] <= 0.01
    # Settled at the 2 s minimum by the monitor's rule; the page's span adds the word's way back
    # and the streams' end (the upload's last POSTs finish): far from the 6 s maximum.
    assert [(p["name"], p["stopped"], p["min_s"], p["max_s"], p["unsettled"]) for p in loads] == [
        ("download", "settled", 2.0, 6.0, []), ("upload", "settled", 2.0, 6.0, []),
    ]  # fmt: skip
    assert all(2.0 <= p["seconds"] <= 4.0 for p in loads), loads
    assert report["network"]["throughput_mbps"]["down"] > 100 and report["network"]["throughput_mbps"]["up"] > 100, report["network"]
    assert "borderline" not in {r["code"] for r in report["reasons"]}
    # The camera file: 640x480 at 30 frames/s, reported as such; not black, not low.
    camera = report["devices"]["camera"]
    assert camera["state"] == "ok" and camera["black"] is False and (camera["width"], camera["height"]) == (640, 480)
    assert abs(camera["fps"] - 30) <= fps_tolerance(30), camera
    assert not {"camera_black", "camera_low_quality"} & {r["code"] for r in report["reasons"]}


def test_loss_near_a_line_runs_to_the_maximum_and_says_borderline(short_max_monitor: Monitor, tmp_path: Path) -> None:
    link = make_link(short_max_monitor)
    driver = chrome(make_pink(tmp_path / "pink.wav", -40.0, seconds=2), fake_ui=False)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": SWALLOW_EVERY_50TH_PROBE})
        allow_camera_only(driver, link.origin)
        report = run_check(driver, link)
        swallowed = driver.execute_script("return window.__swallowed;")
        reasons_text = driver.find_element("id", "reasons").text
        verdict = driver.find_element("id", "verdict-title").text
    finally:
        driver.quit()
    idle = report["phases"][0]
    network = report["network"]
    print("idle:", idle, "packets:", network["packets"], "loss:", network["loss"], "swallowed:", swallowed)
    assert (idle["name"], idle["stopped"], idle["min_s"], idle["max_s"]) == ("idle", "max_length", 2.0, 4.0)
    assert 4.0 <= idle["seconds"] <= 5.0, idle
    # Ground truth: the probes swallowed while the page was in its idle phase (phase byte 1).
    lost_idle = sum(1 for _, phase in swallowed if phase == 1)
    assert lost_idle >= 3 and network["loss"]["up"] == pytest.approx(lost_idle / network["packets"]["sent"], abs=1e-4), (swallowed, network)
    unsettled = {u["figure"]: u for u in idle["unsettled"]}
    assert unsettled["loss_up"]["low"] < 0.01 and unsettled["loss_up"]["high"] > 0.03, unsettled  # both lines inside
    by_code = {r["code"]: r for r in report["reasons"]}
    assert by_code["borderline"]["severity"] == "warning" and "loss on your upload" in by_code["borderline"]["message"]
    assert report["verdict"] != "ready" and verdict.split(" ", 1)[1] != "Ready"
    assert by_code["borderline"]["message"] in reasons_text
