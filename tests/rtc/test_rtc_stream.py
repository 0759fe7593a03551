"""The WebRTC probe stream (docs/browser-check.md section 3): records, bounds, and a Python aiortc
client acting as the page against the monitor on loopback.

Expected numbers are worked by hand from the contract (comments give the arithmetic). Loss and
RTT against ground truth nobody here computed (nftables counters, irtt) are in
tests/lab/test_rtc_loss.py.
"""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

import pytest

pytest.importorskip("aiortc", reason="the monitor extra (aiortc) is not installed")

from aiohttp import web

from monitor import keys
from monitor.app import create_app
from monitor.config import MonitorConfig, load_config
from monitor.http.check_links import link_settings
from monitor.rtc.records import (
    ECHO_HEAD,
    MAX_PROBES,
    RtcRefused,
    RtcStreams,
    StreamRecords,
    network_of,
)
from sessionready.config import ConfigError
from tests.conftest import Monitor, start_monitor

from .page_client import Refused, open_stream, run_stream

PROBE = struct.Struct("!BBHId")


def probe(seq: int, sent_ms: float, length: int = 172) -> bytes:
    return PROBE.pack(1, 0, 0, seq, sent_ms) + bytes(length - PROBE.size)


class Clock:
    """Monitor clock in ns, moved by the test."""

    def __init__(self, ns: int = 1_000_000_000) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns


# --- records: the echo ------------------------------------------------------------------------


def test_echo_layout_and_length() -> None:
    records = StreamRecords("a" * 32, "link1")
    clock = Clock(5_000_000_000)  # 5000 ms on the monitor's clock
    message = probe(7, 1234.5) + b"\x00" * 0
    echo = records.answer(message, 4_999_000_000, clock)
    assert echo is not None and len(echo) == len(message) == 172
    kind, _f, _r, seq, sent_ms, recv_ms, send_ms, distinct = ECHO_HEAD.unpack_from(echo)
    assert (kind, seq, sent_ms, recv_ms, send_ms, distinct) == (2, 7, 1234.5, 4999.0, 5000.0, 1)
    assert echo[ECHO_HEAD.size :] == message[ECHO_HEAD.size :]  # the probe's own padding


def test_echo_never_larger_than_probe_and_bad_probes_dropped() -> None:
    records = StreamRecords("a" * 32, "link1")
    clock = Clock()
    assert records.answer(probe(0, 1.0, ECHO_HEAD.size), clock(), clock) is not None  # 36 bytes: just fits
    assert records.answer(probe(1, 1.0)[: ECHO_HEAD.size - 1], clock(), clock) is None  # cannot carry an echo
    assert records.answer(probe(2, 1.0, 1201), clock(), clock) is None  # above MAX_PROBE_BYTES
    assert records.answer(b"\x02" + probe(3, 1.0)[1:], clock(), clock) is None  # an echo is not a probe
    assert records.answer(probe(MAX_PROBES, 1.0), clock(), clock) is None  # beyond 65,536 probes
    assert records.answer(PROBE.pack(1, 0, 0, 4, float("nan")) + bytes(156), clock(), clock) is None
    assert (records.distinct, records.ignored) == (1, 5)


def test_duplicates_and_reordering_counted() -> None:
    records = StreamRecords("a" * 32, "link1")
    clock = Clock()
    for seq in (0, 2, 1, 2):
        clock.ns += 20_000_000
        records.answer(probe(seq, seq * 20.0), clock(), clock)
    # 0, 2 in order; 1 after 2: reordered; the second 2: a duplicate (echoed, not recounted).
    assert (records.distinct, records.duplicates, records.reordered) == (3, 1, 1)


def test_rate_limited_like_the_reflector() -> None:
    records = StreamRecords("a" * 32, "link1")
    clock = Clock()
    answered = sum(records.answer(probe(seq, float(seq)), clock(), clock) is not None for seq in range(150))
    # All at one instant: the burst allowance (100) is answered, the rest dropped.
    assert answered == 100
    clock.ns += 1_000_000_000  # one second refills 100
    assert records.answer(probe(200, 200.0), clock(), clock) is not None


# --- records: the analysis --------------------------------------------------------------------


def _stream(sent: int, lost_up: set[int], lost_down: set[int], rtt_ms: float = 10.0) -> tuple[StreamRecords, list[tuple[int, float]]]:
    """A stream of ``sent`` probes 20 ms apart; the monitor holds each 0.5 ms."""
    records = StreamRecords("a" * 32, "link1")
    echoes = []
    for seq in range(sent):
        sent_ms = 1000.0 + 20 * seq
        if seq in lost_up:
            continue
        recv_ns = 50_000_000_000 + seq * 20_000_000
        records.answer(probe(seq, sent_ms), recv_ns, lambda r=recv_ns: r + 500_000)
        if seq not in lost_down:
            echoes.append((seq, sent_ms + rtt_ms + 0.5))
    return records, echoes


def test_loss_split_by_direction_from_both_records() -> None:
    records, echoes = _stream(10, lost_up={3, 7}, lost_down={5})
    net = network_of(records, 10, echoes, {"idle": (1000.0, 1200.0), "download": None, "upload": None}, ramp_s=1.0)
    # Up: 10 sent, 8 reached the monitor: 2/10. Down: 8 echoed, 7 came back: 1/8.
    assert net.loss is not None and (net.loss.up, net.loss.down) == (0.2, 0.125)
    assert (net.packets.sent, net.packets.received, net.packets.reflected) == (10, 7, 8)
    # RTT = arrival - sent - hold = (sent + 10.5) - sent - 0.5 = 10 ms for every echo.
    assert net.rtt_ms is not None and (net.rtt_ms.min, net.rtt_ms.p50, net.rtt_ms.p95) == (10.0, 10.0, 10.0)
    # Constant transit both ways: RFC 3550 jitter 0.
    assert net.jitter_ms is not None and (net.jitter_ms.up, net.jitter_ms.down) == (0.0, 0.0)


def test_phase_of_a_lost_probe_follows_its_neighbours() -> None:
    # 20 probes at 1000 + 20 k ms; idle [1000, 1200) holds seqs 0..9, download [1200, 1400) 10..19.
    # Seq 0 (the very first) and seq 10 (the first of download) are lost upstream: their send
    # times are extrapolated / interpolated from their neighbours, which puts 0 in idle, 10 in
    # download. Idle: 10 sent, 9 reflected: loss up 1/10.
    records, echoes = _stream(20, lost_up={0, 10}, lost_down=set())
    phases = {"idle": (1000.0, 1200.0), "download": (1200.0, 1400.0), "upload": None}
    net = network_of(records, 20, echoes, phases, ramp_s=0.0)
    assert net.packets.sent == 10 and net.loss is not None and net.loss.up == 0.1
    # Same RTT under load as idle: no increase; no upload phase: unknown.
    assert (net.loaded_latency_ms.down, net.loaded_latency_ms.up) == (0.0, None)


def test_delay_under_load_skips_the_ramp() -> None:
    records = StreamRecords("a" * 32, "link1")
    echoes = []
    # idle 0..49 (1 s) at 10 ms; download 50..149 (2 s): 30 ms in its first second, 60 ms after.
    for seq in range(150):
        sent_ms = 20.0 * seq
        rtt = 10.0 if seq < 50 else (30.0 if seq < 100 else 60.0)
        recv_ns = 10**9 + seq * 20_000_000
        records.answer(probe(seq, sent_ms), recv_ns, lambda r=recv_ns: r)
        echoes.append((seq, sent_ms + rtt))
    phases = {"idle": (0.0, 1000.0), "download": (1000.0, 3000.0), "upload": None}
    net = network_of(records, 150, echoes, phases, ramp_s=1.0)
    # With the 1 s ramp left out only the 60 ms probes count: 60 - 10 = 50 ms.
    assert net.loaded_latency_ms.down == 50.0


def test_a_probe_sent_just_after_a_mark_rounded_up_stays_in_its_phase() -> None:
    # The page posts its phase marks rounded to the microsecond but each probe's send time
    # unrounded. Marked at 1000.0006 ms (posted as 1000.001), the first probe sent 0.2 us later
    # at 1000.0008 ms is in the idle phase: all 10 probes count (CI counted 749 of 750).
    records = StreamRecords("a" * 32, "link1")
    echoes = []
    for seq in range(10):
        sent_ms = 1000.0008 + 20 * seq
        recv_ns = 50_000_000_000 + seq * 20_000_000
        records.answer(probe(seq, sent_ms), recv_ns, lambda r=recv_ns: r)
        echoes.append((seq, sent_ms + 10.0))
    net = network_of(records, 10, echoes, {"idle": (round(1000.0006, 3), 1200.0), "download": None, "upload": None}, ramp_s=0.0)
    assert net.packets.sent == 10 and net.loss is not None and net.loss.up == 0.0


def test_echo_the_monitor_never_sent_is_ignored() -> None:
    records, echoes = _stream(10, lost_up={4}, lost_down=set())
    forged = [*echoes, (4, 1100.0)]  # the page claims an echo of a probe that never arrived
    net = network_of(records, 10, forged, {"idle": None}, ramp_s=1.0)
    assert net.packets.received == 9 and net.loss is not None and net.loss.up == 0.1


# --- the registry: bounds ---------------------------------------------------------------------


class FakePeer:
    def __init__(self) -> None:
        self.answer_sdp = "v=0"
        self.closed = False

    async def close(self) -> None:
        self.closed = True


def test_registry_bounds_and_lifetime() -> None:
    async def scenario() -> None:
        peers: list[FakePeer] = []

        async def open_peer(records, offer, reached, ended):
            peers.append(FakePeer())
            return peers[-1]

        streams = RtcStreams(open_peer, max_peers=4, max_seconds=0.3, ramp_s=1.0)
        ids = [(await streams.start("link1", "offer"))[0] for _ in range(3)]
        with pytest.raises(RtcRefused) as per_link:
            await streams.start("link1", "offer")
        assert per_link.value.status == 429
        await streams.start("link2", "offer")
        with pytest.raises(RtcRefused) as full:
            await streams.start("link3", "offer")
        assert (full.value.status, full.value.code) == (503, "rtc_busy")
        # Another link's id, or an unknown one: None, as if the stream did not exist.
        assert streams.network_for(ids[0], "link2", 0, [], {}) is None
        assert streams.network_for("f" * 32, "link1", 0, [], {}) is None
        assert streams.network_for(ids[0], "link1", 0, [], {}) is not None
        streams.close(ids[0])
        assert streams.network_for(ids[0], "link1", 0, [], {}) is None
        await asyncio.sleep(0.01)
        assert peers[0].closed and not peers[1].closed
        await asyncio.sleep(0.5)  # past max_seconds: every stream ended, its peer closed
        assert len(streams) == 0 and all(p.closed for p in peers)
        await streams.start("link3", "offer")
        await streams.aclose()
        assert peers[-1].closed and len(streams) == 0

    asyncio.run(scenario())


def test_port_range_config() -> None:
    assert MonitorConfig().rtc_port_min == 20000
    with pytest.raises(ConfigError, match="rtc_port_min"):
        MonitorConfig(rtc_port_min=30000, rtc_port_max=29999)
    with pytest.raises(ConfigError, match="rtc_port_min"):
        MonitorConfig(rtc_port_min=0, rtc_port_max=29999)
    with pytest.raises(ConfigError, match="rtc_advertise_ip"):
        MonitorConfig(rtc_advertise_ip="1.2.3")


def test_the_browser_checks_phase_lengths_are_configured_within_bounds(tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text("[monitor]\nlink_adaptive = false\nlink_udp_seconds = 2\nlink_load_seconds = 1.5\n")
    settings = link_settings(load_config(config))
    assert (settings.udp_seconds, settings.load_seconds, settings.ramp_seconds) == (2.0, 1.5, 0.75)
    assert (settings.load_min_seconds, settings.load_max_seconds) == (None, None)
    # Adaptive (the default): the ramp keeps half of the shortest load phase, as the CLI's does.
    config.write_text("[monitor]\nlink_load_min_seconds = 1.5\nlink_load_max_seconds = 5\n")
    settings = link_settings(load_config(config))
    assert (settings.load_min_seconds, settings.load_max_seconds, settings.ramp_seconds) == (1.5, 5.0, 0.75)
    assert link_settings(MonitorConfig()).ramp_seconds == 1.0
    for key, value in (("link_udp_seconds", 0.5), ("link_load_seconds", 61), ("link_load_max_seconds", 61), ("link_load_min_seconds", 0.5)):
        config.write_text(f"[monitor]\n{key} = {value}\n")
        with pytest.raises(ConfigError, match=key):
            load_config(config)
    config.write_text("[monitor]\nlink_load_min_seconds = 5\nlink_load_max_seconds = 4\n")
    with pytest.raises(ConfigError, match="link_load_min_seconds"):
        load_config(config)


def test_sample_config_documents_every_rtc_key() -> None:
    sample = Path(__file__).parents[2] / "monitor" / "monitor.sample.toml"
    text = sample.read_text()
    for key in ("rtc_port_min", "rtc_port_max", "rtc_advertise_ip", "rtc_max_seconds", "rtc_max_peers", "link_udp_seconds", "link_load_seconds", "link_load_min_seconds", "link_load_max_seconds"):
        assert f"# {key} = " in text or f"{key} = " in text, key
    load_config(sample)


# --- the monitor on loopback: a real process ----------------------------------------------------


@pytest.fixture
def rtc_monitor(tmp_path: Path):
    config = tmp_path / "monitor.toml"
    # A narrow range: every candidate must come from it; two peers at most.
    config.write_text("[monitor]\nrtc_port_min = 21400\nrtc_port_max = 21409\nrtc_max_peers = 2\n")
    running = start_monitor(tmp_path / "monitor", "--config", str(config))
    yield running
    running.stop()


def _candidate_ports(sdp: str) -> list[int]:
    return [int(line.split()[5]) for line in sdp.splitlines() if line.startswith("a=candidate:")]


def _link(monitor: Monitor, participant: str) -> dict:
    """A check link for a newly registered client: only a link's holder starts a stream."""
    staff = monitor.token("it", f"it-{participant}")
    assert monitor.json("POST", "/api/v1/participants", staff, {"participant_id": participant, "role": "client"})[0] == 201
    status, link = monitor.json("POST", "/api/v1/check-links", staff, {"participant_id": participant})
    assert status == 201, link
    return link


@pytest.mark.slow
def test_stream_against_monitor_process(rtc_monitor: Monitor) -> None:
    link = _link(rtc_monitor, "c-p1")
    result = asyncio.run(run_stream(rtc_monitor.url, f"Link {link['secret']}", seconds=3.0))
    # 3 s at 50/s: about 150 probes; on loopback every one comes back, exactly as long as it went.
    assert result["sent"] >= 100
    assert len({seq for seq, _ in result["echoes"]}) == result["sent"]
    assert result["bad_echo_lengths"] == 0
    ports = _candidate_ports(result["answer_sdp"])
    assert ports and all(21400 <= p <= 21409 for p in ports), ports
    # The monitor's hold time is what it says: it answers at once.
    assert max(result["monitor_hold_ms"]) < 50


@pytest.mark.slow
def test_refusals_over_http(rtc_monitor: Monitor) -> None:
    client = f"Link {_link(rtc_monitor, 'c-p1')['secret']}"
    other = f"Link {_link(rtc_monitor, 'c-p2')['secret']}"
    therapist = rtc_monitor.token("therapist", "t1")
    agent = rtc_monitor.token("client", "c-p1")
    status, body = rtc_monitor.json("POST", "/api/v1/link/rtc", None, {"type": "offer", "sdp": "v=0"})
    assert status == 401
    for token in (therapist, agent):  # an agent's token, a client's included, is not a link
        status, body = rtc_monitor.json("POST", "/api/v1/link/rtc", token, {"type": "offer", "sdp": "v=0"})
        assert status == 403, body

    def offer(sdp_body: dict) -> tuple[int, dict]:
        status, raw = rtc_monitor.request("POST", "/api/v1/link/rtc", None, json.dumps(sdp_body).encode(), headers={"Authorization": client})
        return status, json.loads(raw)

    status, body = offer({"type": "offer", "sdp": "v=0\r\nnot sdp"})
    assert status == 400 and body["error"]["code"] == "invalid_offer", body
    status, body = offer({"type": "answer", "sdp": "v=0"})
    assert status == 400

    async def three_peers() -> tuple[int, dict]:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            first = await open_stream(session, rtc_monitor.url, client)
            second = await open_stream(session, rtc_monitor.url, other)
            try:
                await open_stream(session, rtc_monitor.url, other)
            except Refused as refused:
                return refused.status, refused.body
            finally:
                await first[0].close()
                await second[0].close()
            return 201, {}

    status, body = asyncio.run(three_peers())
    # rtc_max_peers = 2: the third is refused, in words the page can show.
    assert status == 503 and body["error"]["code"] == "rtc_busy" and "2 probe streams" in body["error"]["message"], body


# --- network_for on a monitor app served on loopback ---------------------------------------------


@pytest.mark.slow
def test_network_for_after_a_loopback_stream(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    data = tmp_path / "data"
    data.mkdir()
    assert run_cli("monitor", "sessions", "add-participant", "c-p1", "--role", "client", "--data-dir", str(data)).returncode == 0
    created = run_cli("monitor", "link", "create", "--participant", "c-p1", "--data-dir", str(data))
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1].rsplit("/", 1)[1]

    async def scenario() -> None:
        app = create_app(MonitorConfig(data_dir=str(data), port=0, rtc_port_min=21410, rtc_port_max=21420))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            result = await run_stream(f"http://127.0.0.1:{port}", f"Link {secret}", seconds=3.0, phases={"idle": (0, 1.5), "download": (1.5, 3)})
            streams = app[keys.RTC]
            records = streams.records(result["rtc_id"])
            assert records is not None and records.distinct == result["sent"] and records.ignored == 0
            phases = {name: tuple(span) if span else None for name, span in result["phases"].items()}
            echoes = [tuple(e) for e in result["echoes"]]
            owner = records.owner  # the link's id
            net = streams.network_for(result["rtc_id"], owner, result["sent"], echoes, phases)
            assert net is not None
            # The idle phase's 1.5 s: about 75 probes, all back on loopback: loss 0 both ways,
            # with the Wilson upper bound of 0 of n = z^2 / (n + z^2): 3.84 / 78.8 = 4.9 % at 75.
            n = net.packets.sent
            assert 60 <= n <= 76 and net.packets.received == n == net.packets.reflected
            assert net.loss is not None and (net.loss.up, net.loss.down) == (0.0, 0.0)
            assert net.loss.up_ci95[1] == pytest.approx(1.959964**2 / (n + 1.959964**2), abs=1e-6)
            assert net.rtt_ms is not None and 0 < net.rtt_ms.min <= net.rtt_ms.p50 <= net.rtt_ms.p95 < 50
            # Download phase 1.5-3 s less the 1 s ramp: 0.5 s of samples; no upload phase.
            assert net.loaded_latency_ms.down is not None and net.loaded_latency_ms.up is None
            assert streams.network_for(result["rtc_id"], "someone-else", result["sent"], echoes, phases) is None
        finally:
            await runner.cleanup()
        # The app's cleanup closed every peer and forgot the streams.
        assert len(app[keys.RTC]) == 0

    asyncio.run(scenario())


def test_candidate_addresses() -> None:
    from monitor.rtc.peer import gather_addresses

    # A specific listening address is the one offered, loopback included.
    assert gather_addresses("127.0.0.1", "127.0.0.1") == ["127.0.0.1"]
    assert gather_addresses("10.0.0.5", "192.0.2.1") == ["10.0.0.5"]
    # A wildcard: the address the page reached, IPv4 seen through a dual-stack socket unwrapped.
    assert gather_addresses("0.0.0.0", "192.0.2.7") == ["192.0.2.7"]
    assert gather_addresses("::", "::ffff:192.0.2.7") == ["192.0.2.7"]
    assert gather_addresses("::", None) == []


@pytest.mark.parametrize(
    "sdp",
    [
        "",
        "v=0",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
        "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sctp-port:x\r\n",
        "\x00" * 100,
    ],
)
def test_malformed_offers_are_400_not_500(sdp: str, tmp_path: Path) -> None:
    from monitor.rtc.peer import IceSettings, RtcPeer

    async def answer() -> None:
        with pytest.raises(RtcRefused) as refused:
            await RtcPeer.answer(StreamRecords("a" * 32, "link1"), sdp, IceSettings("127.0.0.1", 21440, 21449))
        assert refused.value.status == 400

    asyncio.run(answer())


@pytest.mark.slow
def test_a_check_links_holder_starts_a_stream_and_a_revoked_link_cannot(rtc_monitor: Monitor) -> None:
    staff = rtc_monitor.token("it", "it-1")
    assert rtc_monitor.json("POST", "/api/v1/participants", staff, {"participant_id": "c-rtc", "role": "client"})[0] == 201
    status, link = rtc_monitor.json("POST", "/api/v1/check-links", staff, {"participant_id": "c-rtc"})
    assert status == 201, link
    result = asyncio.run(run_stream(rtc_monitor.url, f"Link {link['secret']}", seconds=1.0))
    assert result["sent"] >= 30 and len(result["echoes"]) == result["sent"]
    assert rtc_monitor.request("DELETE", f"/api/v1/check-links/{link['link_id']}", staff)[0] == 204
    with pytest.raises(Refused) as refused:
        asyncio.run(run_stream(rtc_monitor.url, f"Link {link['secret']}", seconds=1.0))
    assert refused.value.status == 401


def test_advertised_address_is_offered_on_the_same_port() -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection

    from monitor.rtc.peer import IceSettings, RtcPeer

    async def scenario() -> list[tuple[str, int]]:
        page = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        page.createDataChannel("probe", ordered=False, maxRetransmits=0)
        await page.setLocalDescription(await page.createOffer())
        settings = IceSettings("127.0.0.1", 21450, 21459, advertise_ip="192.0.2.10")
        peer = await RtcPeer.answer(StreamRecords("a" * 32, "link1"), page.localDescription.sdp, settings)
        try:
            return [(line.split()[4], int(line.split()[5])) for line in peer.answer_sdp.splitlines() if line.startswith("a=candidate:")]
        finally:
            await peer.close()
            await page.close()

    candidates = asyncio.run(scenario())
    # The bound address, and the NAT's public one with the same port (the range is forwarded 1:1).
    assert [host for host, _ in candidates] == ["127.0.0.1", "192.0.2.10"]
    assert candidates[0][1] == candidates[1][1] and 21450 <= candidates[0][1] <= 21459


def test_nothing_reached_the_monitor() -> None:
    records = StreamRecords("a" * 32, "link1")
    net = network_of(records, 250, [], {"idle": (0.0, 5000.0), "download": None, "upload": None}, ramp_s=1.0)
    # 250 sent, none reflected: all lost upstream; no echo to split the rest, so no loss pair
    # (as the CLI reports a reflector that answered nothing), and the reason in udp_error.
    assert (net.packets.sent, net.packets.received, net.packets.reflected) == (250, 0, 0)
    assert net.loss is None and net.rtt_ms is None and net.udp_error == "no echo came back over the WebRTC data channel"
