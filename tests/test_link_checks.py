"""Browser checks submitted through a check link, against a real monitor: decoded strictly
(bad bodies are 400 and store nothing), judged by the same quality model, stored as a check of
the link's client that the session's therapist reads and the risk engine uses like a CLI check;
a link reads only its own checks and runs at most 12 an hour (docs/browser-check.md section 4).
The network part's seam to the WebRTC probe stream (``app[keys.RTC].network_for``) is tested
here with a stand-in; a stream that did not run is stored as ``rtc_failed``."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from monitor import keys
from monitor.auth import LinkPrincipal
from monitor.config import MonitorConfig
from monitor.http import check_links
from sessionready import quality, schema
from sessionready.browser_check import BrowserCheck
from sessionready.typed import decode, rfc3339
from tests.conftest import Monitor, new_token, start_monitor, wait_for

RTC_ID = "0123456789abcdef0123456789abcdef"
BODY: dict[str, Any] = {
    "schema_version": 1,
    "started_at": "2026-12-07T09:00:00Z",
    "duration_s": 14.2,
    "browser": {"family": "chrome", "major": 131},
    "rtc": {
        "rtc_id": RTC_ID,
        "sent": 4,
        "echoes": [[0, 1234.5], [1, 1254.9], [3, 1296.0]],
        "phases": {"idle": [1000.0, 6000.0], "download": [6000.0, 11000.0], "upload": [11000.0, 16000.0]},
    },
    "rtc_error": None,
    "throughput": {"down_mbps": 95.1, "up_mbps": 21.7, "error": None},
    "devices": {
        "camera": {"state": "ok", "width": 1280, "height": 720, "fps": 30.0, "black": False},
        "microphone": {"state": "ok", "signal": True},
        "speaker": {"state": "heard"},
    },
    "room": {
        "available": True, "problem": None, "mode": "interactive", "laeq_dbfs": -48.1, "l90_dbfs": -55.0, "l10_dbfs": -45.2,
        "lmax_dbfs": -30.3, "voice_ratio": 0.02, "snr_db": 24.0, "speech_detected": True, "silent": False, "clipping_ratio": 0.0,
    },
    "device": {"cores": 8, "memory_gb": 8.0, "battery_pct": 64.0, "battery_charging": False, "connection_type": "wifi", "compute_pressure": None},
}


def body(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BODY)
    data.update(changes)
    return data


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitor]:
    """A monitor that assesses sessions every second, so a check shows in a risk at once."""
    folder = tmp_path_factory.mktemp("links")
    config = folder / "monitor.toml"
    config.write_text("[monitor]\nrisk_interval_s = 1.0\n")
    running = start_monitor(folder / "monitor", "--config", str(config))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def setting(monitor: Monitor) -> dict[str, str]:
    staff = new_token(monitor, "it", "it-checks")
    start = rfc3339(time.time() + 1800)
    status, made = monitor.json("POST", "/api/v1/sessions", staff, {"therapist_id": "bc-t", "client_id": "bc-c", "start": start, "planned_duration_s": 3000})
    assert status == 201, made
    session_id = made["session"]["session_id"]
    links = {}
    for name, extra in (("session", {"session_id": session_id}), ("other", {}), ("busy", {}), ("devices", {"session_id": session_id})):
        status, link = monitor.json("POST", "/api/v1/check-links", staff, {"participant_id": "bc-c", **extra})
        assert status == 201, link
        links[name] = link["secret"]
    return {"staff": staff, "session_id": session_id, "therapist": monitor.login("bc-therapist", "therapist", "bc-t"), **links}


def submit(monitor: Monitor, secret: str, payload: object) -> tuple[int, dict]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, answer = monitor.request("POST", "/api/v1/link/checks", None, raw, headers={"Authorization": f"Link {secret}"})
    return status, json.loads(answer) if answer else {}


def own_checks(monitor: Monitor, secret: str) -> list[dict]:
    status, raw = monitor.request("GET", "/api/v1/link/checks", None, headers={"Authorization": f"Link {secret}"})
    assert status == 200
    return json.loads(raw)["checks"]


def test_a_browser_check_is_judged_stored_and_read_like_a_cli_check(monitor: Monitor, setting: dict[str, str]) -> None:
    status, answer = submit(monitor, setting["session"], BODY)
    assert status == 201, answer
    report = answer["report"]
    check_id = answer["check_id"]
    assert report["check_id"] == check_id and report["session_id"] == setting["session_id"]
    assert (report["source"], report["browser"], report["agent"]["os"]) == ("browser", "chrome 131", "other")
    # This monitor's probe stream never saw RTC_ID: the stream did not run, honestly so.
    network = report["network"]
    assert network["udp_error"] == "rtc_failed" and network["rtt_ms"] is None and network["loss"] is None
    assert network["packets"] == {"sent": 4, "received": 0, "reflected": None}
    assert network["throughput_mbps"] == {"down": 95.1, "up": 21.7}, "the page's own throughput"
    # The same model as every check: no stream is "udp_blocked", critical, in the model's words.
    assert report["verdict"] == "not_ready"
    blocked = next(r for r in report["reasons"] if r["code"] == "udp_blocked")
    assert blocked["severity"] == "critical" and "could not run" in blocked["message"] and blocked["fix"]
    machine = report["machine"]
    assert (machine["battery_pct"], machine["battery_charging"], machine["link"]["type"]) == (64.0, False, "wifi")
    assert machine["cpu_pct"] is None and machine["memory_available_pct"] is None, "not measured in a browser, never guessed"
    assert report["room"]["laeq_dbfs"] == -48.1 and report["room"]["calibrated"] is False
    assert report["devices"] == BODY["devices"]
    assert report["settings"]["packet_interval_ms"] == 20.0 and report["targets"] == [] and report["speedtest"] is None
    # Adaptive, as the CLI's report says it: load_seconds is each throughput phase's maximum.
    assert report["settings"]["adaptive"] and report["settings"]["load_seconds"] == 6.0

    assert own_checks(monitor, setting["session"])[0]["check_id"] == check_id, "newest first"
    # The session's therapist reads it like any check of their client...
    status, stored = monitor.json("GET", f"/api/v1/checks/{check_id}", setting["therapist"])
    assert status == 200 and stored["participant_id"] == "bc-c" and stored["report"]["session_id"] == setting["session_id"]
    assert stored["report"] == report
    # ...and the risk engine takes it as the client's latest check.
    def client_check() -> object:
        _, detail = monitor.json("GET", f"/api/v1/sessions/{setting['session_id']}", setting["therapist"])
        client = (detail.get("risk") or {}).get("client") or {}
        return client if client.get("check_id") == check_id else None

    client = wait_for(client_check, 30, "the browser check in the session's risk", poll_s=0.3)
    assert client["state"] == "not_ready"  # type: ignore[index]


def test_browser_checks_add_no_per_link_series_to_metrics(monitor: Monitor, setting: dict[str, str]) -> None:
    # A link is not an agent: a series per link would grow with every link ever made.
    status, answer = submit(monitor, setting["other"], body(rtc=None, rtc_error="rtc_unsupported"))
    assert status == 201, answer
    metrics = monitor.request("GET", "/metrics", new_token(monitor, "metrics", "prom"))[1].decode()
    assert "sessionready_check" in metrics and answer["check_id"] not in metrics
    link_ids = {row["link_id"] for row in monitor.json("GET", "/api/v1/check-links", new_token(monitor, "it", "it-m"))[1]["links"]}
    assert link_ids and not any(link_id in metrics for link_id in link_ids)


def test_a_stream_that_could_not_run_keeps_its_reason(monitor: Monitor, setting: dict[str, str]) -> None:
    status, answer = submit(monitor, setting["other"], body(rtc=None, rtc_error="rtc_blocked", room=None, device=None))
    assert status == 201, answer
    report = answer["report"]
    assert report["network"]["udp_error"] == "rtc_blocked" and report["network"]["packets"]["sent"] == 0
    assert report["session_id"] is None and report["room"] is None and report["machine"] is None


BAD_BODIES = [
    (b"{not json", None),
    (b"\xff\xfe", None),
    (body(colour="red"), "colour"),
    (body(schema_version=2), "schema_version"),
    (body(browser={"family": "chrome", "major": 0}), "browser.major"),
    (body(browser={"family": "netscape", "major": 4}), "browser.family"),
    (body(browser={"family": "chrome", "major": None}), "browser.major"),
    (body(started_at="yesterday"), "started_at"),
    (body(rtc=None, rtc_error=None), "rtc_error"),
    (body(rtc_error="rtc_failed"), "rtc_error"),
    (body(rtc_error="rtc_exploded", rtc=None), "rtc_error"),
    (body(rtc={**BODY["rtc"], "rtc_id": "not-hex"}), "rtc.rtc_id"),
    (body(rtc={**BODY["rtc"], "echoes": [[4, 1.0]]}), "rtc.echoes[0][0]"),
    (body(rtc={**BODY["rtc"], "echoes": [[0, -1.0]]}), "rtc.echoes[0][1]"),
    (body(rtc={**BODY["rtc"], "echoes": [[0, "soon"]]}), "rtc.echoes[0][1]"),
    (body(rtc={**BODY["rtc"], "phases": {**BODY["rtc"]["phases"], "idle": [6000.0, 1000.0]}}), "rtc.phases.idle"),
    (body(throughput={"down_mbps": float("nan"), "up_mbps": 1.0, "error": None}), None),
    (body(throughput={"down_mbps": 1.0, "up_mbps": 1.0, "error": "<script>"}), "throughput.error"),
    (body(devices={**BODY["devices"], "camera": {"state": "on"}}), "devices.camera.state"),
    (body(room={**BODY["room"], "available": False}), "room.problem"),
    (body(device={**BODY["device"], "battery_pct": 101.0}), "device.battery_pct"),
    (body(device={**BODY["device"], "connection_type": "carrier-pigeon"}), "device.connection_type"),
    ([BODY], ""),
]


def test_bad_posted_json_is_400_and_stores_nothing(monitor: Monitor, setting: dict[str, str]) -> None:
    before = own_checks(monitor, setting["other"])
    for payload, field in BAD_BODIES:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()  # NaN goes out as JSON's NaN: not JSON
        status, answer = submit(monitor, setting["other"], raw)
        assert status == 400, (field, answer)
        if field:
            assert answer["error"].get("field") == field, (field, answer)
    assert own_checks(monitor, setting["other"]) == before


def test_a_link_reads_only_its_own_checks(monitor: Monitor, setting: dict[str, str]) -> None:
    assert submit(monitor, setting["session"], body(rtc=None, rtc_error="rtc_unsupported"))[0] == 201  # its own, whatever ran before
    assert submit(monitor, setting["other"], body(rtc=None, rtc_error="rtc_unsupported"))[0] == 201
    # A browser whose user agent names no version: checked all the same, as "other".
    status, answer = submit(monitor, setting["other"], body(rtc=None, rtc_error="rtc_unsupported", browser={"family": "other", "major": None}))
    assert status == 201 and answer["report"]["browser"] == "other", answer
    mine = {c["check_id"] for c in own_checks(monitor, setting["other"])}
    theirs = {c["check_id"] for c in own_checks(monitor, setting["session"])}
    assert mine and theirs and not mine & theirs, "two links of one client: each sees its own"
    secret = setting["other"]
    for check_id in theirs:
        status, _ = monitor.request("GET", f"/api/v1/checks/{check_id}", None, headers={"Authorization": f"Link {secret}"})
        assert status == 401
    status, _ = monitor.request("GET", "/api/v1/sessions", None, headers={"Authorization": f"Link {secret}"})
    assert status == 401
    received = [c["received_at"] for c in own_checks(monitor, secret)]
    assert len(received) == len(mine) and received == sorted(received, reverse=True), "newest first"


def test_a_link_runs_at_most_12_checks_an_hour(monitor: Monitor, setting: dict[str, str]) -> None:
    quick = body(rtc=None, rtc_error="rtc_unsupported", room=None)
    answers = [submit(monitor, setting["busy"], quick)[0] for _ in range(12)]
    assert answers == [201] * 12
    status, raw = monitor.request("POST", "/api/v1/link/checks", None, json.dumps(quick).encode(), headers={"Authorization": f"Link {setting['busy']}"})
    assert status == 429 and json.loads(raw)["error"]["code"] == "rate_limited"
    assert len(own_checks(monitor, setting["busy"])) == 12


def test_device_reasons_are_the_monitors_stored_and_reach_the_therapist(monitor: Monitor, setting: dict[str, str]) -> None:
    # Camera permission denied, no microphone found (the page's room then says no_device), the
    # tone not heard: three reasons, each in the model's words, and no second word on the
    # microphone from the room (docs/quality-model.md, "The devices").
    devices = {"camera": {"state": "denied"}, "microphone": {"state": "absent"}, "speaker": {"state": "not_heard"}}
    room = {**BODY["room"], **dict.fromkeys(("laeq_dbfs", "l90_dbfs", "l10_dbfs", "lmax_dbfs", "voice_ratio", "snr_db", "speech_detected", "clipping_ratio"))}
    room.update(available=False, problem="no_device")
    status, answer = submit(monitor, setting["devices"], body(devices=devices, room=room))
    assert status == 201, answer
    report = answer["report"]
    by_code = {r["code"]: r for r in report["reasons"]}
    assert {code: r["severity"] for code, r in by_code.items() if code != "udp_blocked"} == {
        "microphone_not_found": "critical", "speaker_not_heard": "warning", "camera_not_allowed": "info",
    }  # fmt: skip
    assert "no_microphone" not in by_code
    assert by_code["camera_not_allowed"]["message"] == "You did not allow this page to use your camera, so it was not checked."
    assert by_code["camera_not_allowed"]["fix"] == quality.fix_text("camera_not_allowed", "info")
    assert by_code["microphone_not_found"]["fix"].endswith(quality.CRITICAL_FALLBACK)
    assert report["verdict"] == "not_ready"
    stored = own_checks(monitor, setting["devices"])[0]
    assert stored["check_id"] == answer["check_id"] and stored["report"] == report
    assert stored["report"]["devices"] == {
        "camera": {"state": "denied", "width": None, "height": None, "fps": None, "black": None},
        "microphone": {"state": "absent", "signal": None},
        "speaker": {"state": "not_heard"},
    }

    def client_reasons() -> object:
        _, detail = monitor.json("GET", f"/api/v1/sessions/{setting['session_id']}", setting["therapist"])
        risk = detail.get("risk") or {}
        if ((risk.get("client") or {}).get("check_id")) != answer["check_id"]:
            return None
        return {r["cause"]: r for r in risk["reasons"] if r["end"] == "client"}

    reasons = wait_for(client_reasons, 30, "the browser check's device reasons in the session's risk", poll_s=0.3)
    assert {"microphone_not_found", "speaker_not_heard"} <= set(reasons)  # type: ignore[arg-type]
    words = reasons["microphone_not_found"]  # type: ignore[index]
    assert words["severity"] == "critical" and words["message"] == "The client's device has no microphone the browser could find."
    assert words["action"].startswith("Ask the client to plug in a headset")


class FakeStreams:
    """A stand-in for app[keys.RTC] at its seam: records how it was asked, answers a network."""

    def __init__(self, network: schema.Network | None) -> None:
        self.network = network
        self.asked: list[tuple] = []
        self.closed: list[str] = []

    def network_for(self, rtc_id: str, link_id: str, sent: int, echoes: list[tuple[int, float]], phases: dict) -> schema.Network | None:
        self.asked.append((rtc_id, link_id, sent, echoes, phases))
        return self.network

    def phases_for(self, rtc_id: str, link_id: str, spans: dict, failed=()) -> tuple[schema.PhaseRun, ...] | None:
        # How the monitor's rule ended the idle phase: at its maximum, loss up unsettled.
        return (schema.PhaseRun("idle", 5.0, "max_length", 2.0, 5.0, (schema.Unsettled("loss_up", 0.008, 0.046),)),) if self.network else None

    def close(self, rtc_id: str) -> None:
        self.closed.append(rtc_id)


def _stream_network() -> schema.Network:
    return schema.Network(
        path="monitor",
        rtt_ms=schema.RttMs(18.0, 20.0, 31.0),
        jitter_ms=schema.DirectionMs(1.5, 2.5),
        loss=schema.Loss(0.0, 0.25, (0.0, 0.49), (0.05, 0.7)),
        packets=schema.Packets(4, 3, 4),
        reordered=schema.Counts(0, 0),
        duplicates=schema.Counts(0, 0),
        throughput_mbps=schema.Throughput(None, None),
        loaded_latency_ms=schema.LoadedLatency(8.0, 12.0),
        udp_error=None,
        throughput_error=None,
    )


@pytest.mark.parametrize("known", [True, False])
def test_the_network_comes_from_the_links_own_stream_through_the_seam(known: bool) -> None:
    app = web.Application()
    streams = FakeStreams(_stream_network() if known else None)
    app[keys.RTC] = streams  # type: ignore[assignment]
    link = LinkPrincipal("0123456789ab", "c-1", None, time.time() + 3600)
    posted = decode(BrowserCheck, BODY)
    network, runs = asyncio.run(check_links._network(app, link, posted))
    phases = {"idle": (1000.0, 6000.0), "download": (6000.0, 11000.0), "upload": (11000.0, 16000.0)}
    assert streams.asked == [(RTC_ID, "0123456789ab", 4, [(0, 1234.5), (1, 1254.9), (3, 1296.0)], phases)]
    # The link's own stream ends with its check; an id that is not this link's ends nothing
    # (one link's holder must not end another link's running stream).
    assert streams.closed == ([RTC_ID] if known else [])
    if known:
        assert network.rtt_ms == schema.RttMs(18.0, 20.0, 31.0) and network.loss is not None and network.loss.down == 0.25
        assert network.loaded_latency_ms == schema.LoadedLatency(8.0, 12.0)
        assert network.throughput_mbps == schema.Throughput(95.1, 21.7), "throughput is the page's"
        assert runs is not None and runs[0].stopped == "max_length", "the phases are the stream's, asked before it is closed"
        # The stored check says so: the borderline reason from the unsettled interval.
        app[keys.CONFIG] = MonitorConfig()
        report = asyncio.run(check_links._report(app, link, posted))
        assert report.phases == runs
        borderline = [r for r in report.reasons if r.code == "borderline"]
        assert len(borderline) == 1 and "loss on your upload 0.8–4.6 %" in borderline[0].message and report.verdict != "ready"
    else:  # unknown, or another link's stream: nothing of it is used
        assert network.udp_error == "rtc_failed" and network.rtt_ms is None and network.packets.sent == 4 and runs is None


@pytest.mark.slow
def test_a_real_probe_stream_gives_the_checks_network(monitor: Monitor, setting: dict[str, str]) -> None:
    """Needs the WebRTC part (monitor/rtc/, POST /api/v1/link/rtc): the page's stream, run by the
    Python stand-in for rtc.js, then the check posted with its records, end to end."""
    from tests.rtc.page_client import run_stream

    secret = setting["other"]
    phases = {"idle": (0.0, 1.0), "download": (1.0, 2.0), "upload": (2.0, 3.0)}
    records = asyncio.run(run_stream(monitor.url, f"Link {secret}", seconds=3.0, phases=phases))
    assert records["sent"] >= 100 and records["bad_echo_lengths"] == 0
    rtc = {"rtc_id": records["rtc_id"], "sent": records["sent"], "echoes": records["echoes"], "phases": records["phases"]}
    status, answer = submit(monitor, secret, body(rtc=rtc))
    assert status == 201, answer
    network = answer["report"]["network"]
    # Loopback: every probe and every echo arrives, within milliseconds. The packets, loss and
    # jitter are the idle phase's (1 s: about 50 probes), as the CLI's are its idle stream's.
    assert network["udp_error"] is None and 40 <= network["packets"]["sent"] < records["sent"]
    assert network["loss"]["up"] == 0.0 and network["loss"]["down"] == 0.0
    assert 0 < network["rtt_ms"]["p50"] < 50 and network["jitter_ms"]["up"] is not None
    assert network["throughput_mbps"] == {"down": 95.1, "up": 21.7}
    assert "udp_blocked" not in {r["code"] for r in answer["report"]["reasons"]}
    # The stream ended with its check: its id now opens nothing, and another link cannot use it.
    status, again = submit(monitor, setting["session"], body(rtc=rtc))
    assert status == 201 and again["report"]["network"]["udp_error"] == "rtc_failed"
