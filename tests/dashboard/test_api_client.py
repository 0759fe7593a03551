"""The dashboard's monitor client keeps connections alive and reuses them (issue 19), across the
threads Flask serves requests in, with TLS verified as before and the same sentences for every
failure. Connections are counted where they are accepted: a TCP proxy of the test's own in
front of a real HTTPS monitor (trustme's private CA)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import trustme

from benchmarks.dashboard_connections import CountingProxy
from dashboard.api import ApiFailure, LoggedOut, MonitorApi
from tests.conftest import Monitor, new_token, start_monitor


@pytest.fixture(scope="module")
def tls_monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Monitor, Path, trustme.CA]]:
    base = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path, ca_path = base / "cert.pem", base / "key.pem", base / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(cert_path)
    cert.private_key_pem.write_to_path(key_path)
    ca.cert_pem.write_to_path(ca_path)
    config = base / "monitor.toml"
    config.write_text(f'[monitor]\ntls_cert = "{cert_path}"\ntls_key = "{key_path}"\n')
    monitor = start_monitor(base / "data", "--config", str(config))
    try:
        yield monitor, ca_path, ca
    finally:
        monitor.stop()


@pytest.fixture
def proxy(tls_monitor: tuple[Monitor, Path, trustme.CA]) -> Iterator[CountingProxy]:
    host, port = tls_monitor[0].url.removeprefix("https://").rsplit(":", 1)
    running = CountingProxy((host, int(port)))
    yield running
    running.close()


def test_calls_reuse_kept_alive_connections_across_threads(tls_monitor: tuple[Monitor, Path, trustme.CA], proxy: CountingProxy) -> None:
    monitor, ca_path, _ = tls_monitor
    token = new_token(monitor, "it", "it-pool")
    api = MonitorApi(f"https://127.0.0.1:{proxy.port}", ca_file=str(ca_path), timeout_s=5)
    for _ in range(10):
        assert isinstance(api.agents(token), list)
    assert proxy.accepted == 1  # ten calls, one connection (urllib opened ten)

    with ThreadPoolExecutor(4) as pool:  # as Flask's threads call it at once
        answers = list(pool.map(lambda _: isinstance(api.participants(token), list), range(40)))
    assert all(answers)
    assert 1 <= proxy.accepted <= 4  # at most one per thread calling at the same time

    proxy.drop_all()  # the monitor (or a proxy) closed the idle connections meanwhile
    time.sleep(0.2)
    before = proxy.accepted
    assert isinstance(api.agents(token), list)  # a dropped connection is noticed and replaced
    assert proxy.accepted == before + 1


def test_tls_is_verified_as_before(tls_monitor: tuple[Monitor, Path, trustme.CA], tmp_path: Path) -> None:
    monitor, ca_path, ca = tls_monitor
    token = new_token(monitor, "it", "it-tls")
    assert isinstance(MonitorApi(monitor.url, ca_file=str(ca_path), timeout_s=5).agents(token), list)
    with pytest.raises(ApiFailure) as untrusted:  # the system CAs do not know the private one
        MonitorApi(monitor.url, timeout_s=5).agents(token)
    assert (untrusted.value.code, untrusted.value.sentence) == ("tls", "The monitor's certificate could not be verified; ask IT to check the dashboard's ca_file.")
    port = monitor.url.rsplit(":", 1)[1]
    with pytest.raises(ApiFailure) as wrong_name:  # the certificate names 127.0.0.1, not localhost
        MonitorApi(f"https://localhost:{port}", ca_file=str(ca_path), timeout_s=5).agents(token)
    assert wrong_name.value.code == "tls"


def test_failures_keep_their_sentences_and_the_timeout_holds(tls_monitor: tuple[Monitor, Path, trustme.CA]) -> None:
    monitor, ca_path, _ = tls_monitor
    api = MonitorApi(monitor.url, ca_file=str(ca_path), timeout_s=5)
    with pytest.raises(LoggedOut):
        api.agents("not-a-token")
    therapist = new_token(monitor, "therapist", "t-sentences")
    with pytest.raises(ApiFailure) as forbidden:
        api.agents(therapist)
    assert (forbidden.value.status, forbidden.value.sentence) == (403, "The monitor does not let your account see this.")
    with pytest.raises(ApiFailure) as missing:
        api.check(therapist, "0" * 32)
    assert (missing.value.status, missing.value.sentence) == (404, "Not found: it does not exist, or it is not one of yours.")
    with pytest.raises(ApiFailure) as wrong:
        api.login("nobody", "wrong password")
    assert (wrong.value.status, wrong.value.sentence) == (401, "Wrong username or password.")

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        started = time.monotonic()
        with pytest.raises(ApiFailure) as slow:
            MonitorApi(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.5).agents("t")
        waited = time.monotonic() - started
    assert (slow.value.code, slow.value.sentence) == ("unreachable", "The monitor is not reachable right now; try again shortly.")
    assert 0.45 <= waited < 5, waited
