"""The room in the whole check: levels and reasons reach the report and the monitor, the
microphone stays closed when it must, and no audio reaches anything the check writes or sends."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SESSIONREADY, Monitor, run_cli, start_monitor

from . import reference
from .conftest import SINK, Pulse, Sounds, stop
from .test_privacy import AudioFinder, signal_file, snapshot  # noqa: F401 - signal_file is a fixture

pytestmark = [pytest.mark.audio, pytest.mark.slow]
QUICK = ("--udp-seconds", "2", "--load-seconds", "2", "--no-prompt")


@pytest.fixture(scope="module")
def room_monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitor]:
    running = start_monitor(tmp_path_factory.mktemp("room") / "monitor")
    yield running
    running.stop()


def check(monitor: Monitor, *args: str, env: dict[str, str] | None = None) -> tuple[dict, subprocess.CompletedProcess]:
    token = monitor.token("client", "c-room")
    result = run_cli("check", "--monitor", monitor.url, "--json", *QUICK, *args, env={"SESSIONREADY_TOKEN": token, **(env or {})}, timeout=90)
    assert result.returncode in (0, 1, 2), result.stderr
    return json.loads(result.stdout), result


def looping(pulse: Pulse, path: Path) -> subprocess.Popen:
    """Play a file over and over (paplay once per loop) for as long as the check runs."""
    return subprocess.Popen(
        ["sh", "-c", f"while true; do paplay -d {SINK} --latency-msec=50 '{path}'; done"],
        env=pulse.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def stop_loop(player: subprocess.Popen) -> None:
    os.killpg(player.pid, 15)
    stop(player)


def test_room_noise_is_measured_judged_and_stored(pulse: Pulse, sounds: Sounds, room_monitor: Monitor) -> None:
    path = sounds.pink(-40)
    samples, rate = reference.read_wav(path)
    truth = reference.laeq_db(samples, rate)
    player = looping(pulse, path)
    try:
        report, _ = check(room_monitor)
    finally:
        stop_loop(player)
    room = report["room"]
    assert room["available"] is True and room["mode"] == "passive" and room["calibrated"] is False
    assert room["laeq_dbfs"] == pytest.approx(truth, abs=1.0)
    codes = {reason["code"]: reason["severity"] for reason in report["reasons"]}
    assert codes.get("noisy_room") == "warning", report["reasons"]  # -44 dBFS(A) floor > -50
    status, stored = room_monitor.json("GET", f"/api/v1/checks/{report['check_id']}", room_monitor.token("client", "c-room"))
    assert status == 200 and stored["report"]["room"] == room


def test_voices_in_the_background_say_others_may_hear(pulse: Pulse, sounds: Sounds, room_monitor: Monitor) -> None:
    player = looping(pulse, sounds.path("talk.wav"))
    try:
        report, _ = check(room_monitor)
    finally:
        stop_loop(player)
    assert report["room"]["voice_ratio"] > 0.3
    reason = next(r for r in report["reasons"] if r["code"] == "voices_in_background")
    assert "private room" in reason["fix"] and "headphones" in reason["fix"]


def test_no_audio_and_a_config_that_forbids_the_microphone(pulse: Pulse, room_monitor: Monitor, tmp_path: Path) -> None:
    report, _ = check(room_monitor, "--no-audio")
    assert report["room"] is None
    config = tmp_path / "agent.toml"
    config.write_text("[room]\nmicrophone = false\n")
    before = pulse.pactl("list", "short", "source-outputs")
    report, _ = check(room_monitor, "--config", str(config))
    assert report["room"]["available"] is False and report["room"]["problem"] == "not_allowed"
    assert not any(r["code"] in ("no_microphone", "microphone_silent") for r in report["reasons"])
    assert pulse.pactl("list", "short", "source-outputs") == before


def test_no_audio_sample_reaches_output_store_or_logs(pulse: Pulse, signal_file: Path, tmp_path: Path) -> None:  # noqa: F811
    samples, _ = reference.read_wav(signal_file)
    finder = AudioFinder(np.rint(samples * 32768).astype(np.int16))
    # Positive control: the path from the player to the microphone is bit-exact, so the
    # played samples are what the check hears, and what the search would find if it leaked.
    recording = tmp_path / "control.raw"
    recorder = subprocess.Popen(
        ["parecord", "-d", f"{SINK}.monitor", "--raw", "--format=s16le", "--rate=16000", "--channels=1", str(recording)],
        env=pulse.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    home, temp, work = tmp_path / "home", tmp_path / "tmp", tmp_path / "work"
    for folder in (home, temp, work):
        folder.mkdir()
    monitor = start_monitor(tmp_path / "monitor")
    player = looping(pulse, signal_file)
    try:
        before = snapshot(home, temp, work)
        token = monitor.token("client", "c-privacy")
        result = subprocess.run(
            [*SESSIONREADY, "check", "--monitor", monitor.url, "--json", *QUICK],
            cwd=work, env={**os.environ, "HOME": str(home), "TMPDIR": str(temp), "XDG_CACHE_HOME": str(home / ".cache"),
                           "SESSIONREADY_TOKEN": token},
            capture_output=True, timeout=90, check=False,
        )  # fmt: skip
        after = snapshot(home, temp, work)
    finally:
        stop_loop(player)
        stop(recorder)
        monitor.stop()
    assert finder.in_bytes(recording.read_bytes()), "control: the signal should be in a real recording"
    report = json.loads(result.stdout)
    assert report["room"]["available"] is True
    assert after == before, "the check wrote files"
    assert not finder.in_bytes(result.stdout + result.stderr)
    # Samples written as numbers would need a list of them: the report has no list of more
    # than two numbers (a confidence interval). (Searching its text for any three numbers of
    # the signal would match the report's own small integers: 0, 1, 2 occur in any signal.)
    assert longest_number_list(report) <= 2
    # The store: every value in every table. (The raw database file is not searched: its page
    # structure of small integers and zero runs matches the signal's encodings by chance.)
    with sqlite3.connect(monitor.data_dir / "sessionready.sqlite3") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):  # noqa: S608 - names from sqlite_master
                for value in row:
                    if isinstance(value, str):
                        assert not finder.in_bytes(value.encode()), table
                        if value.startswith("{"):
                            assert longest_number_list(json.loads(value)) <= 2, table
    assert not finder.in_bytes(monitor.logs().encode())


def longest_number_list(value: object) -> int:
    if isinstance(value, dict):
        return max((longest_number_list(v) for v in value.values()), default=0)
    if isinstance(value, list):
        numbers = sum(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value)
        return max([numbers] + [longest_number_list(item) for item in value])
    return 0
