"""The quality model's camera figures (a browser check): a jerky or small picture gives one
warning, ``camera_low_quality``, whose message names what is low; each line on its boundary;
a black picture, a camera that did not open, and figures not measured give none of it
(docs/quality-model.md, "What the camera must deliver"). The page in Chromium with camera
files of known frame rate and size: tests/browser_check/test_camera.py."""

from __future__ import annotations

import dataclasses

import pytest

from sessionready import schema
from sessionready.facts import device_facts
from sessionready.quality import DeviceFacts, NetworkFacts, Thresholds, assess

# A clean, fast link: on its own it gives no reason at all (tests/test_quality.py's clean case).
CLEAN = NetworkFacts(
    rtt_p50_ms=20.0, rtt_p95_ms=25.0, jitter_up_ms=2.0, jitter_down_ms=2.0, loss_up_ratio=0.0, loss_down_ratio=0.0,
    loss_up_ci95=(0.0, 0.005), loss_down_ci95=(0.0, 0.005), packets_sent=1000, packets_received=1000,
    throughput_down_mbps=100.0, throughput_up_mbps=20.0, loaded_latency_down_ms=5.0, loaded_latency_up_ms=5.0,
)  # fmt: skip
HD = DeviceFacts(
    camera="ok", camera_black=False, microphone="ok", microphone_signal=True, speaker="heard",
    camera_width=1280, camera_height=720, camera_fps=30.0,
)  # fmt: skip


def camera(**change: object) -> list[tuple[str, str, str]]:
    devices = dataclasses.replace(HD, **change)
    return [(r.code, r.severity, r.message) for r in assess(CLEAN, devices=devices).reasons]


def test_a_good_camera_adds_nothing() -> None:
    assert camera() == []
    # A phone held upright: 720 lines on its shorter side.
    assert camera(camera_width=720, camera_height=1280) == []


@pytest.mark.parametrize(
    ("fps", "flagged"),
    [(30.0, False), (15.0, False), (14.9, False), (14.0, False), (13.9, True), (10.0, True), (5.0, True), (0.0, True)],
)
def test_frame_rate_line(fps: float, flagged: bool) -> None:
    """Strictly below 14 frames a second: a 15 frames/s camera measured at 14.9 is not flagged,
    one exactly on the line neither; 10 and 5 are."""
    found = camera(camera_fps=fps)
    if not flagged:
        assert found == []
        return
    assert [(code, severity) for code, severity, _ in found] == [("camera_low_quality", "warning")]
    assert f"only {fps:.0f} pictures a second" in found[0][2]
    assert assess(CLEAN, devices=dataclasses.replace(HD, camera_fps=fps)).verdict == "at_risk"


@pytest.mark.parametrize(
    ("size", "flagged"),
    [((640, 360), False), ((480, 360), False), ((360, 640), False), ((640, 359), True), ((352, 288), True), ((320, 240), True)],
)
def test_resolution_line(size: tuple[int, int], flagged: bool) -> None:
    """The shorter side strictly below 360 lines: 640x360 passes, 640x359 and CIF do not."""
    found = camera(camera_width=size[0], camera_height=size[1])
    if not flagged:
        assert found == []
        return
    assert [(code, severity) for code, severity, _ in found] == [("camera_low_quality", "warning")]
    assert found[0][2] == f"Your camera's picture is small ({size[0]}×{size[1]}): the other person would see your face blurred."


def test_both_low_is_one_reason_naming_both() -> None:
    found = camera(camera_width=320, camera_height=240, camera_fps=5.0)
    assert len(found) == 1
    assert found[0][2].startswith("Your camera sends only 5 pictures a second, and small ones (320×240)")


def test_black_or_closed_camera_or_nothing_measured_gives_no_quality_reason() -> None:
    # A black picture is the stronger finding: one reason, camera_black.
    assert [code for code, _, _ in camera(camera_black=True, camera_fps=5.0, camera_width=320, camera_height=240)] == ["camera_black"]
    # Not opened: the state's own reason, never a verdict on figures it could not have.
    assert [code for code, _, _ in camera(camera="denied", camera_black=None, camera_fps=5.0)] == ["camera_not_allowed"]
    # Not measured is not a finding.
    assert camera(camera_fps=None, camera_width=None, camera_height=None) == []
    assert camera(camera_width=320, camera_height=None) == []


def test_thresholds_are_configurable_and_validated() -> None:
    strict = Thresholds(camera_fps_warning_below=20.0, camera_lines_warning_below=480.0)
    devices = dataclasses.replace(HD, camera_fps=15.0, camera_width=640, camera_height=480)
    assert [r.code for r in assess(CLEAN, strict, devices=devices).reasons] == ["camera_low_quality"]
    assert Thresholds.from_mapping({"camera_fps_warning_below": 10}).camera_fps_warning_below == 10
    with pytest.raises(ValueError, match="camera_fps_warning_below"):
        Thresholds.from_mapping({"camera_fps_warning_below": -1})
    with pytest.raises(ValueError, match="camera_lines_warning_below"):
        Thresholds.from_mapping({"camera_lines_warning_below": "high"})


def test_device_facts_are_validated() -> None:
    with pytest.raises(ValueError, match="camera_width"):
        dataclasses.replace(HD, camera_width=0)
    with pytest.raises(ValueError, match="camera_fps"):
        dataclasses.replace(HD, camera_fps=-1.0)


def test_the_reports_camera_reaches_the_model() -> None:
    devices = schema.Devices(
        camera=schema.Camera(state="ok", width=320, height=240, fps=5.0, black=False),
        microphone=schema.Microphone(state="ok", signal=True),
        speaker=schema.Speaker(state="heard"),
    )
    facts = device_facts(devices)
    assert (facts.camera_width, facts.camera_height, facts.camera_fps) == (320, 240, 5.0)
