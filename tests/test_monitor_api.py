"""The monitor's HTTP API, driven over real HTTP against a real monitor process."""

from __future__ import annotations

import copy
import gzip
import json
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import SESSIONREADY, Monitor, run_cli, start_monitor

REPORT = json.loads((Path(__file__).parent / "data" / "report.json").read_text())


def new_report(**changes: object) -> dict:
    report = copy.deepcopy(REPORT)
    report["check_id"] = uuid.uuid4().hex
    report.update(changes)
    return report


def count_checks(monitor: Monitor, token: str) -> int:
    status, body = monitor.json("GET", "/api/v1/whoami", token)
    assert status == 200
    status, body = monitor.json("GET", f"/api/v1/agents/{body['agent_id']}/checks?limit=500", token)
    assert status == 200
    return len(body["checks"])


def test_health_and_openapi_need_no_token(shared_monitor: Monitor) -> None:
    assert shared_monitor.json("GET", "/healthz") == (200, {"status": "ok"})
    status, document = shared_monitor.json("GET", "/api/v1/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.")
    assert "/api/v1/checks" in document["paths"]
    assert document["components"]["schemas"]["CheckReport"]["additionalProperties"] is False


@pytest.mark.parametrize("path,method", [("/api/v1/checks", "POST"), ("/api/v1/whoami", "GET"), ("/metrics", "GET"), ("/api/v1/probe/session", "POST")])
def test_everything_else_needs_a_token(shared_monitor: Monitor, path: str, method: str) -> None:
    status, body = shared_monitor.json(method, path, None, {} if method == "POST" else None)
    assert status == 401 and body["error"]["code"] == "unauthenticated"
    status, body = shared_monitor.json(method, path, "sr1_0000_notatoken", {} if method == "POST" else None)
    assert status == 401 and body["error"]["code"] == "invalid_token"


def test_roles_are_enforced(shared_monitor: Monitor) -> None:
    metrics = shared_monitor.token("metrics", "prom")
    client = shared_monitor.token("client", "c-roles")
    status, body = shared_monitor.json("POST", "/api/v1/checks", metrics, new_report())
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, _ = shared_monitor.request("GET", "/metrics", client)
    assert status == 403


def test_post_read_back_and_retry_is_idempotent(shared_monitor: Monitor) -> None:
    token = shared_monitor.token("client", "c-post")
    report = new_report(session_id="s-2026-11-25-01")
    status, body = shared_monitor.json("POST", "/api/v1/checks", token, report)
    assert status == 201 and body == {"check_id": report["check_id"], "stored": True, "duplicate": False}
    status, body = shared_monitor.json("POST", "/api/v1/checks", token, report)
    assert status == 200 and body["duplicate"] is True
    status, body = shared_monitor.json("GET", f"/api/v1/checks/{report['check_id']}", token)
    assert status == 200 and body["report"] == report and body["participant_id"] == "c-post"
    assert count_checks(shared_monitor, token) == 1


def test_another_participant_cannot_read_a_check(shared_monitor: Monitor) -> None:
    owner = shared_monitor.token("client", "c-owner")
    other = shared_monitor.token("client", "c-other")
    report = new_report()
    assert shared_monitor.json("POST", "/api/v1/checks", owner, report)[0] == 201
    status, body = shared_monitor.json("GET", f"/api/v1/checks/{report['check_id']}", other)
    assert status == 404 and body["error"]["code"] == "not_found"
    _, me = shared_monitor.json("GET", "/api/v1/whoami", owner)
    status, _ = shared_monitor.json("GET", f"/api/v1/agents/{me['agent_id']}/checks", other)
    assert status == 404


BAD_BODIES = [
    (b"{not json", "invalid_json", None),
    (json.dumps({**new_report(), "client_name": "x"}).encode(), "invalid_field", "client_name"),
    (json.dumps(new_report(verdict="great")).encode(), "invalid_field", "verdict"),
    (json.dumps({**new_report(), "network": {**REPORT["network"], "loss": {**REPORT["network"]["loss"], "up": 3}}}).encode(), "invalid_field", "network.loss.up"),
    (json.dumps({**new_report(), "duration_s": "10"}).encode(), "invalid_field", "duration_s"),
    (json.dumps(new_report(reasons=[{"code": "made_up", "severity": "info", "message": "m", "fix": "f"}])).encode(), "invalid_field", "reasons[0].code"),
    (json.dumps([1, 2]).encode(), "invalid_field", None),
]


# Ids by position: the bodies hold random check ids, and xdist needs every worker to collect
# the same node ids.
@pytest.mark.parametrize("body,code,field", BAD_BODIES, ids=[f"{n}-{code}-{field}" for n, (_, code, field) in enumerate(BAD_BODIES)])
def test_bad_reports_get_400_naming_the_field_and_change_nothing(shared_monitor: Monitor, body: bytes, code: str, field: str | None) -> None:
    token = shared_monitor.token("client", "c-bad")
    before = count_checks(shared_monitor, token)
    status, raw = shared_monitor.request("POST", "/api/v1/checks", token, body)
    error = json.loads(raw)["error"]
    assert status == 400 and error["code"] == code
    assert error.get("field") == field
    assert count_checks(shared_monitor, token) == before


def test_oversized_body_is_413_and_changes_nothing(shared_monitor: Monitor) -> None:
    token = shared_monitor.token("client", "c-big")
    report = new_report()
    report["network"] = {**report["network"], "udp_error": "x" * 2_000_000}
    status, raw = shared_monitor.request("POST", "/api/v1/checks", token, json.dumps(report).encode())
    assert status == 413 and json.loads(raw)["error"]["code"] == "too_large"
    assert count_checks(shared_monitor, token) == 0


def test_bad_path_parameters(shared_monitor: Monitor) -> None:
    token = shared_monitor.token("client", "c-params")
    assert shared_monitor.json("GET", "/api/v1/checks/xyz", token)[0] == 400
    assert shared_monitor.json("GET", "/api/v1/agents/abc/checks?limit=0", token)[0] == 400
    assert shared_monitor.json("GET", "/api/v1/probe/download?bytes=-1", token)[0] == 400
    assert shared_monitor.json("GET", "/api/v1/probe/download?bytes=abc", token)[0] == 400
    assert shared_monitor.json("GET", "/api/v1/nothing", token)[0] == 404
    assert shared_monitor.json("DELETE", "/api/v1/checks", token)[0] == 405


def test_download_returns_exactly_the_bytes_asked_for(shared_monitor: Monitor) -> None:
    token = shared_monitor.token("client", "c-dl")
    status, body = shared_monitor.request("GET", "/api/v1/probe/download?bytes=1000000", token)
    assert status == 200 and len(body) == 1_000_000
    assert len(set(body[:4096])) > 200, "incompressible bytes, not zeros"


def test_upload_sink_counts_bytes(shared_monitor: Monitor) -> None:
    token = shared_monitor.token("client", "c-ul")
    status, raw = shared_monitor.request("POST", "/api/v1/probe/upload", token, b"x" * 300_000, {"Content-Type": "application/octet-stream"})
    assert status == 200 and json.loads(raw)["received_bytes"] == 300_000


def test_an_upload_cut_off_by_the_client_is_no_error(shared_monitor: Monitor) -> None:
    """The check aborts its upload streams at their deadline (a reset, not a close): the
    monitor must take that as the client leaving, not log an internal error."""
    token = shared_monitor.token("client", "c-cut")
    host, port = shared_monitor.url.removeprefix("http://").rsplit(":", 1)
    for _ in range(3):
        with socket.create_connection((host, int(port))) as sock:
            head = f"POST /api/v1/probe/upload HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\nContent-Length: 50000000\r\n\r\n"
            sock.sendall(head.encode() + b"x" * 200_000)
            time.sleep(0.2)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    status, raw = shared_monitor.request("POST", "/api/v1/probe/upload", token, b"x" * 1000, {"Content-Type": "application/octet-stream"})
    assert status == 200, raw  # still serving
    time.sleep(0.3)
    assert "unhandled error" not in shared_monitor.logs() and "Traceback" not in shared_monitor.logs()


def test_revoked_token_stops_working_at_once(shared_monitor: Monitor) -> None:
    result = run_cli("monitor", "token", "create", "--role", "client", "--participant", "c-rev", "--data-dir", str(shared_monitor.data_dir))
    token = result.stdout.strip().splitlines()[-1]
    token_id = result.stdout.split(" token ")[1].split(" ")[0]
    assert shared_monitor.json("GET", "/api/v1/whoami", token)[0] == 200
    revoked = run_cli("monitor", "token", "revoke", token_id, "--data-dir", str(shared_monitor.data_dir))
    assert revoked.returncode == 0
    assert shared_monitor.json("GET", "/api/v1/whoami", token)[0] == 401
    again = run_cli("monitor", "token", "revoke", token_id, "--data-dir", str(shared_monitor.data_dir))
    assert again.returncode == 3 and "no active token" in again.stderr
    listing = run_cli("monitor", "token", "list", "--data-dir", str(shared_monitor.data_dir))
    assert token_id in listing.stdout and "revoked" in listing.stdout and token not in listing.stdout


def test_token_is_printed_once_and_only_its_hash_is_stored(shared_monitor: Monitor) -> None:
    token = shared_monitor.token("therapist", "t-1")
    database = (shared_monitor.data_dir / "sessionready.sqlite3").read_bytes()
    wal = shared_monitor.data_dir / "sessionready.sqlite3-wal"
    assert token.encode() not in database + (wal.read_bytes() if wal.exists() else b"")


def test_token_create_rejects_names_and_bad_roles(tmp_path: Path) -> None:
    bad = run_cli("monitor", "token", "create", "--role", "client", "--participant", "Jane Doe", "--data-dir", str(tmp_path))
    assert bad.returncode == 3 and "pseudonymous" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("monitor", "token", "create", "--role", "root", "--participant", "x", "--data-dir", str(tmp_path))
    assert bad.returncode == 3 and "invalid choice" in bad.stderr


def test_probe_sessions_are_limited_per_token_with_retry_after(tmp_path: Path) -> None:
    """A token hammering POST /probe/session gets its burst, then 429 with Retry-After."""
    config = tmp_path / "monitor.toml"
    config.write_text("[monitor]\nprobe_session_burst = 3\nprobe_sessions_per_hour = 1\n")
    running = start_monitor(tmp_path / "data", "--config", str(config))
    try:
        token, other = running.token(), running.token("client", "p2")
        answers = [running.request("POST", "/api/v1/probe/session", token, b"") for _ in range(5)]
        assert [status for status, _ in answers] == [200, 200, 200, 429, 429]
        assert json.loads(answers[-1][1])["error"]["code"] == "rate_limited"
        retry = _retry_after(running, "POST", "/api/v1/probe/session", token)
        assert 1 <= retry <= 3600, "one session an hour: at most an hour's wait"
        assert running.json("POST", "/api/v1/probe/session", other)[0] == 200, "the limit is per token"
    finally:
        running.stop()


def test_throughput_is_limited_by_bytes_not_by_requests(tmp_path: Path) -> None:
    """Many small transfers are fine; a token that has moved its bytes gets 429 with Retry-After."""
    config = tmp_path / "monitor.toml"
    config.write_text(f"[monitor]\nprobe_bytes_per_hour = {4 << 20}\n")
    running = start_monitor(tmp_path / "data", "--config", str(config))
    try:
        token = running.token()
        small = [running.request("GET", "/api/v1/probe/download?bytes=1000", token)[0] for _ in range(200)]
        assert small == [200] * 200, "200 requests of 1 kB cost 0.2 MB: far more requests than the old 120 a minute"
        status, body = running.request("POST", "/api/v1/probe/upload", token, bytes(5 << 20), {"Content-Type": "application/octet-stream"})
        assert status == 200 and json.loads(body)["received_bytes"] == 5 << 20, "a transfer that starts in budget finishes"
        retry = _retry_after(running, "GET", "/api/v1/probe/download?bytes=1000", token)
        assert 1 <= retry <= 3600
        assert _retry_after(running, "POST", "/api/v1/probe/upload", token) >= 1, "uploads share the budget"
        assert running.request("GET", "/api/v1/probe/download?bytes=1000", running.token("client", "p2"))[0] == 200
    finally:
        running.stop()


def _retry_after(running: Monitor, method: str, path: str, token: str) -> int:
    """Expects a 429 JSON error for the request and returns its Retry-After, in seconds."""
    request = urllib.request.Request(f"{running.url}{path}", data=b"" if method == "POST" else None, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    try:
        urllib.request.urlopen(request, timeout=30).close()
    except urllib.error.HTTPError as error:
        assert error.code == 429, error.read()
        assert json.loads(error.read())["error"]["code"] == "rate_limited"
        return int(error.headers["Retry-After"])
    raise AssertionError(f"{method} {path} was not refused")


def test_logs_are_json_and_never_hold_a_token(monitor: Monitor) -> None:
    token = monitor.token()
    monitor.json("POST", "/api/v1/checks", token, new_report())
    monitor.json("GET", "/api/v1/whoami", "sr1_bad_token_value")
    assert monitor.stop() == 0, "SIGTERM is a clean exit"
    logs = monitor.logs()
    assert token not in logs and "sr1_bad_token_value" not in logs
    entries = [json.loads(line) for line in logs.splitlines() if line.strip()]
    assert any(e.get("path") == "/api/v1/checks" and e.get("status") == 201 for e in entries)
    assert any(e.get("message") == "stopping on signal" for e in entries)


def test_sigterm_stops_promptly(monitor: Monitor) -> None:
    started = time.monotonic()
    monitor.process.send_signal(signal.SIGTERM)
    assert monitor.process.wait(timeout=15) == 0
    assert time.monotonic() - started < 15


def test_bad_config_is_one_sentence(tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text("[monitor]\nport = 8470\nprot = 1\n")
    result = run_cli("monitor", "--config", str(config))
    assert result.returncode == 3
    assert "'monitor.prot'" in result.stderr and "unknown" in result.stderr and "Traceback" not in result.stderr
    config.write_text("[monitor]\nport = 99999\n")
    result = run_cli("monitor", "--config", str(config))
    assert result.returncode == 3 and "monitor.port" in result.stderr
    result = run_cli("monitor", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 3 and "does not exist" in result.stderr


def test_port_in_use_is_one_sentence(shared_monitor: Monitor) -> None:
    port = shared_monitor.url.rsplit(":", 1)[1]
    result = run_cli("monitor", "--port", port, "--data-dir", str(shared_monitor.data_dir.parent / "other"), timeout=30)
    assert result.returncode == 3 and "cannot start" in result.stderr and "Traceback" not in result.stderr


def test_a_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    from monitor.store.core import open_store

    store = open_store(tmp_path)
    for _ in range(1500):  # about 130 KB of listing: more than a pipe holds, so writing blocks
        store.create_token("client", "c-pipe")
    store.close()
    listing = subprocess.Popen(
        [*SESSIONREADY, "monitor", "token", "list", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert listing.stdout is not None
    listing.stdout.readline()
    listing.stdout.close()  # what `| head -1` does
    _, stderr = listing.communicate(timeout=30)
    assert b"Traceback" not in stderr and listing.returncode == 0


HOSTILE_BODIES = [
    (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),  # deeper than the parser goes
    (b"1" * 5000, "invalid_json"),  # beyond Python's integer digit limit
    (json.dumps(new_report()).encode("utf-16"), "invalid_json"),  # not UTF-8
    (json.dumps(new_report(schema_version=1.0)).encode(), "invalid_field"),
    (json.dumps(new_report(started_at="2026-W05-6T09:00:00+00:00")).encode(), "invalid_field"),
]


@pytest.mark.parametrize("body,code", HOSTILE_BODIES, ids=[f"{n}-{code}" for n, (_, code) in enumerate(HOSTILE_BODIES)])
def test_hostile_bodies_are_400_not_500(shared_monitor: Monitor, body: bytes, code: str) -> None:
    token = shared_monitor.token("client", "c-hostile")
    status, raw = shared_monitor.request("POST", "/api/v1/checks", token, body)
    assert status == 400 and json.loads(raw)["error"]["code"] == code
    status, raw = shared_monitor.request("POST", "/api/v1/enroll", None, body)
    assert status in (400, 429) and "Traceback" not in raw.decode(errors="replace")
    assert "Traceback" not in shared_monitor.logs()


def test_non_ascii_digit_limit_is_400(shared_monitor: Monitor) -> None:
    token = shared_monitor.token("client", "c-digits")
    assert shared_monitor.json("GET", "/api/v1/agents/x/checks?limit=%C2%B2", token)[0] == 400


def test_compressed_bodies_are_refused_unread(shared_monitor: Monitor) -> None:
    token = shared_monitor.token("client", "c-gzip")
    body = gzip.compress(b"0" * 10_000_000)  # 10 MB of zeros in a few kB
    for auth in (token, None):
        status, raw = shared_monitor.request("POST", "/api/v1/checks", auth, body, {"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert status == 415 and json.loads(raw)["error"]["code"] == "unsupported_encoding"


def test_another_agents_check_id_is_a_conflict_not_a_silent_drop(shared_monitor: Monitor) -> None:
    first, second = shared_monitor.token("client", "c-first"), shared_monitor.token("client", "c-second")
    report = new_report()
    assert shared_monitor.json("POST", "/api/v1/checks", first, report)[0] == 201
    status, body = shared_monitor.json("POST", "/api/v1/checks", second, report)
    assert status == 409 and body["error"]["field"] == "check_id"
    assert shared_monitor.json("POST", "/api/v1/checks", first, report) == (200, {"check_id": report["check_id"], "stored": False, "duplicate": True})


def test_a_malformed_header_carrying_a_token_is_not_logged(shared_monitor: Monitor) -> None:
    host, port = shared_monitor.url.split("//")[1].split(":")
    secret = "sr1_bbbbbbbbbbbb_NEVERLOGTHISSECRETVALUE"
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\x7f\r\n\r\n".encode("latin-1"))
        answer = sock.recv(65536)
    # aiohttp answers a malformed request itself (text/plain, echoing the bad line to the
    # sender, which already has it); what matters is that the log does not keep it.
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer
    time.sleep(0.3)
    assert secret not in shared_monitor.logs()


def test_the_data_directory_is_private(shared_monitor: Monitor) -> None:
    assert shared_monitor.data_dir.stat().st_mode & 0o777 == 0o700


def test_advertise_udp_needs_a_real_port(tmp_path: Path) -> None:
    for value in ("example.org:99999", "example.org:0"):
        result = run_cli("monitor", "--advertise-udp", value, "--data-dir", str(tmp_path))
        assert result.returncode == 3 and "advertise_udp" in result.stderr and "Traceback" not in result.stderr
