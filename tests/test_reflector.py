"""The UDP reflector: answers valid keys only, never amplifies, survives fuzzing."""

from __future__ import annotations

import os
import socket
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.reflector import Reflector
from sessionready import wire
from tests.conftest import wait_for

SECRET = b"s" * 32
NOW = 1_900_000_000.0


def reflector() -> Reflector:
    return Reflector(SECRET, wall_clock_s=lambda: NOW, clock_ns=lambda: 5_000)


def probe(key: bytes, seq: int, size: int = wire.VOICE_PACKET_BYTES) -> bytes:
    return bytes(wire.build_packet(wire.PROBE, key, seq, 123_456, size))


def test_echo_is_the_same_size_and_carries_timestamps() -> None:
    r = reflector()
    key = wire.issue_key(SECRET, int(NOW) + 60)
    echo = r.answer(probe(key, 0), recv_ns=4_000)
    assert echo is not None and len(echo) == wire.VOICE_PACKET_BYTES
    header = wire.parse_header(echo)
    assert (header.kind, header.seq, header.sent_ns, header.key) == (wire.ECHO, 0, 123_456, key)
    assert wire.read_echo(echo) == (4_000, 5_000, 1)
    assert r.counters.answered == 1


def test_flow_totals_count_duplicates_and_reordering() -> None:
    r = reflector()
    key = wire.issue_key(SECRET, int(NOW) + 60)
    for seq in (0, 1, 3, 2, 3, 5):
        r.answer(probe(key, seq), 0)
    request = bytes(wire.build_packet(wire.STATS_REQUEST, key, 0, 0, wire.MIN_PACKET_BYTES))
    reply = r.answer(request, 0)
    assert reply is not None and len(reply) == len(request)
    assert wire.read_stats(reply) == (5, 1, 1, 5)  # distinct, duplicates, reordered, highest


def test_flows_are_separate() -> None:
    r = reflector()
    a, b = wire.issue_key(SECRET, int(NOW) + 60), wire.issue_key(SECRET, int(NOW) + 60)
    r.answer(probe(a, 0), 0)
    echo = r.answer(probe(b, 0), 0)
    assert echo is not None and wire.read_echo(echo)[2] == 1


def test_bad_expired_and_foreign_keys_are_dropped_and_counted() -> None:
    r = reflector()
    expired = wire.issue_key(SECRET, int(NOW) - 1)
    foreign = wire.issue_key(b"other secret", int(NOW) + 60)
    forged = bytearray(wire.issue_key(SECRET, int(NOW) + 60))
    forged[0:4] = (int(NOW) + 10_000).to_bytes(4, "big")  # extend the expiry without the MAC
    for key in (expired, foreign, bytes(forged), os.urandom(32)):
        assert r.answer(probe(key, 0), 0) is None
    assert r.counters.dropped_bad_key == 4
    assert r.counters.answered == 0


def test_malformed_datagrams_are_dropped_and_counted() -> None:
    r = reflector()
    key = wire.issue_key(SECRET, int(NOW) + 60)
    valid = probe(key, 0)
    cases = [b"", b"SRP1", valid[:40], b"XXXX" + valid[4:], valid + bytes(wire.MAX_PACKET_BYTES), bytes(wire.build_packet(wire.ECHO, key, 0, 0, 100))]
    for datagram in cases:
        assert r.answer(datagram, 0) is None
    assert r.counters.dropped_malformed == len(cases)


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=0, max_size=2000))
def test_fuzz_random_datagrams_never_raise_nor_amplify(datagram: bytes) -> None:
    r = reflector()
    reply = r.answer(datagram, 0)
    assert reply is None or len(reply) <= len(datagram)


@settings(max_examples=200, deadline=None)
@given(st.integers(wire.MIN_PACKET_BYTES, wire.MAX_PACKET_BYTES), st.integers(0, wire.MAX_SEQ - 1), st.binary(max_size=64))
def test_fuzz_valid_keys_with_any_size_and_tail(size: int, seq: int, tail: bytes) -> None:
    r = reflector()
    key = wire.issue_key(SECRET, int(NOW) + 60)
    packet = bytearray(probe(key, seq, size))
    packet[-len(tail) or len(packet):] = tail[: len(packet) - wire.HEADER.size] if tail else b""
    reply = r.answer(bytes(packet), 0)
    assert reply is None or len(reply) == len(packet)


def test_flow_table_is_bounded() -> None:
    r = Reflector(SECRET, max_flows=16, wall_clock_s=lambda: NOW)
    for _ in range(100):
        r.answer(probe(wire.issue_key(SECRET, int(NOW) + 60), 0), 0)
    assert r.active_flows <= 16


def _key_from(monitor, token: str) -> tuple[bytes, int]:  # noqa: ANN001
    status, body = monitor.json("POST", "/api/v1/probe/session", token)
    assert status == 200, body
    return bytes.fromhex(body["key"]), body["udp"]["port"]


def test_live_reflector_survives_garbage_and_keeps_answering(monitor) -> None:  # noqa: ANN001
    token = monitor.token()
    key, port = _key_from(monitor, token)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    target = ("127.0.0.1", port)
    valid = probe(key, 0)
    garbage = [os.urandom(n) for n in (0, 1, 51, 100, 172, 1400)]
    garbage += [valid[:60], valid + os.urandom(1400), probe(os.urandom(32), 1), probe(wire.issue_key(b"x" * 32, int(time.time()) + 60), 2)]
    for _ in range(50):
        for datagram in garbage:
            sock.sendto(datagram, target)
        time.sleep(0.002)  # paced, so the kernel's receive buffer does not drop any
    for seq in range(20):  # replays and valid probes interleaved
        sock.sendto(probe(key, seq), target)
        sock.sendto(probe(key, seq), target)
    answers = []
    try:
        while True:
            answers.append(sock.recv(4096))
    except TimeoutError:
        pass
    assert len(answers) == 40, "every valid probe (replays included) gets exactly one echo"
    assert all(len(a) == wire.VOICE_PACKET_BYTES for a in answers)
    metrics_token = monitor.token("metrics", "prometheus")
    _status, text = monitor.request("GET", "/metrics", metrics_token)
    lines = dict(line.rsplit(" ", 1) for line in text.decode().splitlines() if line.startswith("sessionready_reflector_packets_total"))
    assert float(lines['sessionready_reflector_packets_total{result="answered"}']) == 40
    assert float(lines['sessionready_reflector_packets_total{result="dropped_bad_key"}']) == 100
    assert float(lines['sessionready_reflector_packets_total{result="dropped_malformed"}']) >= 350
    # and a real check still works afterwards
    assert monitor.process.poll() is None


def test_a_flow_answers_only_the_socket_that_started_it() -> None:
    r = reflector()
    key = wire.issue_key(SECRET, int(NOW) + 60, wire.address_tag("10.0.0.1"))
    assert r.answer(probe(key, 0), 0, ("10.0.0.1", 4000)) is not None
    assert r.answer(probe(key, 1), 20_000_000, ("10.0.0.1", 53)) is None, "same address, another port"
    assert r.answer(probe(key, 2), 40_000_000, ("10.0.0.1", 4000)) is not None
    assert r.counters.dropped_wrong_source == 1


def test_a_key_answers_only_the_address_it_was_issued_to() -> None:
    """Issue 12 (Low): a key must not make the reflector echo to a spoofed source address."""
    r = reflector()
    key = wire.issue_key(SECRET, int(NOW) + 60, wire.address_tag("198.51.100.7"))
    assert r.answer(probe(key, 0), 0, ("192.0.2.99", 4000)) is None, "a spoofed source gets nothing"
    assert r.counters.dropped_bad_key == 1
    assert r.answer(probe(key, 1), 0, ("::ffff:198.51.100.7", 4000, 0, 0)) is not None, "a dual-stack socket's view of it"
    unbound = wire.issue_key(SECRET, int(NOW) + 60)
    assert r.answer(probe(unbound, 0), 0, ("198.51.100.7", 4000)) is None, "an unbound key is no master key"
    assert Reflector(SECRET, bind_keys=False, wall_clock_s=lambda: NOW).answer(probe(unbound, 0), 0, ("192.0.2.99", 1)) is not None


def test_address_tags_are_canonical() -> None:
    assert wire.address_tag("::ffff:192.0.2.1") == wire.address_tag("192.0.2.1") == bytes([192, 0, 2, 1])
    assert wire.address_tag("fe80::1%eth0") == wire.address_tag("fe80::1")
    assert len(wire.address_tag("2001:db8::1")) == 16


def test_a_flow_is_answered_at_most_100_packets_per_second() -> None:
    r = reflector()
    key = wire.issue_key(SECRET, int(NOW) + 60, wire.address_tag("10.0.0.1"))
    sender = ("10.0.0.1", 4000)
    # 1000 packets within 0.1 s: the burst allowance (100) and 0.1 s of refill (10) pass.
    answered = sum(r.answer(probe(key, seq), seq * 100_000, sender) is not None for seq in range(1000))
    assert 100 <= answered <= 115
    assert r.counters.dropped_rate_limited == 1000 - answered
    # A real stream (50 packets/s) is never limited.
    steady = reflector()
    answered = sum(steady.answer(probe(key, seq), seq * 20_000_000, sender) is not None for seq in range(500))
    assert answered == 500


def test_live_reflector_echoes_only_to_the_address_that_asked_for_the_key(monitor) -> None:  # noqa: ANN001
    """The attack: a key fetched over HTTP from 127.0.0.1, its probes sent from another address
    (as a spoofed source would be). Another loopback address, 127.0.0.2, stands in for it."""
    key, port = _key_from(monitor, monitor.token())  # HTTP from 127.0.0.1
    metrics_token = monitor.token("metrics", "prometheus")
    spoofed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spoofed.bind(("127.0.0.2", 0))
    genuine = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    genuine.bind(("127.0.0.1", 0))
    try:
        for seq in range(5):
            spoofed.sendto(probe(key, seq), ("127.0.0.1", port))

        def dropped() -> bool:
            _status, text = monitor.request("GET", "/metrics", metrics_token)
            lines = dict(line.rsplit(" ", 1) for line in text.decode().splitlines() if line.startswith("sessionready_reflector_packets_total"))
            return float(lines['sessionready_reflector_packets_total{result="dropped_bad_key"}']) >= 5

        wait_for(dropped, 30, "the reflector to drop the five probes from 127.0.0.2")
        spoofed.setblocking(False)
        try:
            unexpected = spoofed.recv(4096)
        except BlockingIOError:
            unexpected = b""
        assert unexpected == b"", "no echo to the other address"
        genuine.settimeout(30)
        genuine.sendto(probe(key, 5), ("127.0.0.1", port))
        echo = genuine.recv(4096)
        assert wire.parse_header(echo).kind == wire.ECHO and wire.read_echo(echo)[2] == 1, "the requester's own probes are echoed"
    finally:
        spoofed.close()
        genuine.close()
