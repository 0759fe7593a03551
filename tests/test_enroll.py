"""One-time enrollment codes: ``monitor enroll ...``, ``POST /api/v1/enroll`` and ``sessionready enroll``,
against real monitor processes on loopback."""

from __future__ import annotations

import json
import socket
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agents.config import load_agent_config
from monitor.http.enroll import create_code as create_code_in_store
from monitor.http.enroll import hash_code, normalise_code
from monitor.openapi import openapi_document
from monitor.store.core import SQLiteStore, TokenInfo
from tests.conftest import Monitor, agent_env, run_cli

INVALID_CODE = {"error": {"code": "invalid_code", "message": "the enrollment code is not valid; ask for a new one"}}


def create_code(monitor: Monitor, role: str = "client", participant: str = "c-enroll") -> tuple[str, str]:
    """(code id, code) from the admin command, which prints the code as its last line."""
    result = run_cli("monitor", "enroll", "create", "--role", role, "--participant", participant, "--data-dir", str(monitor.data_dir))
    assert result.returncode == 0, result.stderr
    return result.stdout.split("enrollment code ")[1].split(" ")[0], result.stdout.strip().splitlines()[-1]


def redeem(monitor: Monitor, code: str) -> tuple[int, dict]:
    return monitor.json("POST", "/api/v1/enroll", None, {"code": code})


def tokens(monitor: Monitor) -> list[TokenInfo]:
    store = SQLiteStore(monitor.data_dir / "sessionready.sqlite3")
    try:
        return store.list_tokens()
    finally:
        store.close()


def enroll(monitor_url: str, code: str, *args: str, env: dict[str, str]):  # noqa: ANN201
    return run_cli("enroll", "--monitor", monitor_url, code, *args, env=env)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_enroll_then_check_needs_neither_monitor_nor_token(monitor: Monitor, tmp_path: Path) -> None:
    _, code = create_code(monitor, "client", "c-enrolled")
    config = tmp_path / "agent-config" / "agent.toml"
    env = agent_env(tmp_path, config)
    typed = code.lower().replace("-", "")  # as a person might type it
    result = enroll(monitor.url, typed, env=env)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1 and str(config) in result.stdout
    assert "needs no --monitor or --token" in result.stdout

    token_file = config.parent / "agent.token"
    assert mode(config.parent) == 0o700 and mode(token_file) == 0o600
    loaded = load_agent_config(config)
    assert loaded.url == monitor.url and loaded.monitor.token_file == str(token_file)
    token = loaded.token()
    assert token not in config.read_text(), "the token lives in its own file"
    status, me = monitor.json("GET", "/api/v1/whoami", token)
    assert status == 200 and me["role"] == "client" and me["participant_id"] == "c-enrolled"

    checked = run_cli("check", "--no-throughput", "--no-audio", "--udp-seconds", "1", "--json", env=env, timeout=60)
    assert checked.returncode in (0, 1, 2), checked.stderr
    report = json.loads(checked.stdout)
    assert report["submitted"] is True
    status, stored = monitor.json("GET", f"/api/v1/checks/{report['check_id']}", token)
    assert status == 200 and stored["participant_id"] == "c-enrolled" and stored["agent_id"] == me["agent_id"]

    # A code works once.
    assert redeem(monitor, code) == (401, INVALID_CODE)


def test_enroll_is_public_and_documented() -> None:
    operation = openapi_document()["paths"]["/api/v1/enroll"]["post"]
    assert operation["security"] == []
    assert {"201", "400", "401", "429"} <= set(operation["responses"])


def test_concurrent_redemptions_of_one_code_give_one_token(monitor: Monitor) -> None:
    _, code = create_code(monitor, "therapist", "t-race")
    before = len(tokens(monitor))
    start = threading.Barrier(10)

    def attempt(_: int) -> tuple[int, dict]:
        start.wait()
        return redeem(monitor, code)

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(attempt, range(10)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] + [401] * 9
    winner = next(body for status, body in answers if status == 201)
    assert set(winner) == {"token", "agent_id", "role", "participant_id"}
    assert winner["role"] == "therapist" and winner["participant_id"] == "t-race"
    assert all(body == INVALID_CODE for status, body in answers if status == 401)
    assert len(tokens(monitor)) == before + 1


def test_expired_revoked_and_unknown_codes_get_one_answer_and_create_nothing(monitor: Monitor) -> None:
    """Expiry is tested through the store's clock, the seam the store offers for time: the
    code is created by the same function the admin command uses, by a store whose clock says
    it is 73 hours ago, with the default lifetime of 72 hours. The running monitor then sees
    an expired code. (The public interface counts lifetimes in whole hours, so waiting for a
    code to expire is not an option, and a hidden short lifetime would be a back door.)"""
    store = SQLiteStore(monitor.data_dir / "sessionready.sqlite3", clock=lambda: time.time() - 73 * 3600)
    try:
        _, expired = create_code_in_store(store, "client", "c-expired", 72)
    finally:
        store.close()
    revoked_id, revoked = create_code(monitor, "client", "c-revoked")
    assert run_cli("monitor", "enroll", "revoke", revoked_id, "--data-dir", str(monitor.data_dir)).returncode == 0
    before = tokens(monitor)

    for code in (expired, revoked, "AAAA-BBBB-CCCC-DDDD", "not a code at all"):
        assert redeem(monitor, code) == (401, INVALID_CODE), code
    assert tokens(monitor) == before

    listing = run_cli("monitor", "enroll", "list", "--data-dir", str(monitor.data_dir)).stdout
    states = {line.split()[0]: line.split()[-1] for line in listing.splitlines()[1:]}
    assert sorted(states.values()) == ["expired", "revoked"] and states[revoked_id] == "revoked"
    assert expired not in listing and revoked not in listing
    again = run_cli("monitor", "enroll", "revoke", revoked_id, "--data-dir", str(monitor.data_dir))
    assert again.returncode == 3 and "no unused enrollment code" in again.stderr


def test_malformed_requests_get_400_naming_the_field(monitor: Monitor) -> None:
    cases = [
        (b"{not json", "invalid_json", None),
        (b"{}", "invalid_field", "code"),
        (json.dumps({"code": 12345678}).encode(), "invalid_field", "code"),
        (json.dumps({"code": "AAAA-BBBB-CCCC-DDDD", "role": "therapist"}).encode(), "invalid_field", "role"),
    ]
    for body, code, field in cases:
        status, raw = monitor.request("POST", "/api/v1/enroll", None, body)
        error = json.loads(raw)["error"]
        assert (status, error["code"], error.get("field")) == (400, code, field)
    assert tokens(monitor) == []


def test_attempts_are_limited_per_address(monitor: Monitor) -> None:
    statuses = [redeem(monitor, "AAAA-BBBB-CCCC-DDDD")[0] for _ in range(11)]
    assert statuses == [401] * 10 + [429]
    _, good = create_code(monitor)
    status, body = redeem(monitor, good)
    assert status == 429 and body["error"]["code"] == "rate_limited", "the limit comes before the code is looked at"


def test_code_and_token_are_never_logged_and_only_hashes_are_stored(monitor: Monitor, tmp_path: Path) -> None:
    _, code = create_code(monitor, "client", "c-secret")
    config = tmp_path / "cfg" / "agent.toml"
    assert enroll(monitor.url, code, "--config", str(config), env=agent_env(tmp_path, None)).returncode == 0
    token = load_agent_config(config).token()
    assert monitor.json("GET", "/api/v1/whoami", token)[0] == 200
    listing = run_cli("monitor", "enroll", "list", "--data-dir", str(monitor.data_dir)).stdout
    assert monitor.stop() == 0

    normalised = normalise_code(code)
    assert normalised is not None
    secrets = (code, normalised, code.lower(), token)
    logs = monitor.logs()
    assert '"enrolled"' in logs and not any(s in logs for s in secrets)
    assert not any(s in listing for s in secrets)
    stored = b"".join(p.read_bytes() for p in monitor.data_dir.glob("sessionready.sqlite3*"))
    assert not any(s.encode() in stored for s in secrets)
    assert hash_code(normalised).encode() in stored, "the code's hash is what the store keeps"


def test_existing_files_are_kept_unless_forced(monitor: Monitor, tmp_path: Path) -> None:
    env = agent_env(tmp_path, None)  # the platform default: $XDG_CONFIG_HOME/sessionready/agent.toml
    config = tmp_path / "xdg" / "sessionready" / "agent.toml"
    token_file = config.with_suffix(".token")
    _, first = create_code(monitor, "client", "c-force")
    assert enroll(monitor.url, first, env=env).returncode == 0
    assert mode(config.parent) == 0o700
    first_token = token_file.read_text()

    _, second = create_code(monitor, "client", "c-force")
    refused = enroll(monitor.url, second, env=env)
    assert refused.returncode == 3 and "already exists" in refused.stderr and "--force" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert token_file.read_text() == first_token

    # The refusal came before the code was used: the same code still works, with --force.
    forced = enroll(monitor.url, second, "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    new_token = load_agent_config(config).token()
    assert new_token != first_token.strip() and mode(token_file) == 0o600 and mode(config) == 0o600
    assert monitor.json("GET", "/api/v1/whoami", new_token)[0] == 200
    assert sorted(p.name for p in config.parent.iterdir()) == ["agent.token", "agent.toml"], "no temporary files left"


def test_failures_are_one_sentence_and_write_nothing(monitor: Monitor, tmp_path: Path) -> None:
    config = tmp_path / "cfg" / "agent.toml"
    env = agent_env(tmp_path, config)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    cases = [
        ("http://192.0.2.1:8470", "clear text"),
        (f"http://127.0.0.1:{closed_port}", "cannot reach the monitor"),
        ("ftp://127.0.0.1", "not an http(s) URL"),
        (monitor.url, "did not accept the code"),
    ]
    for url, sentence in cases:
        result = enroll(url, "AAAA-BBBB-CCCC-DDDD", env=env)
        assert result.returncode == 3 and sentence in result.stderr, (url, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert result.stdout == "" and not config.exists() and not config.with_suffix(".token").exists()


def test_an_invalid_ca_file_is_one_sentence(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    result = run_cli("enroll", "--monitor", "https://127.0.0.1:1", "--ca-file", str(junk), "--config", str(tmp_path / "agent.toml"), "ABCD-EFGH-JKMN-PQRS")
    assert result.returncode == 3 and "cannot use the CA file" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "agent.toml").exists()
