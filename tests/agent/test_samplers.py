"""Background and live samples against a real monitor on loopback.

Ground truth: loopback has no loss and sub-millisecond RTT; the relay test drops chosen
probes and echoes itself and keeps the list; the traffic meter's arithmetic is checked on
scripted counters through the psutil facade seam.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.client import MonitorClient, monitor_url
from agents.daemon.samplers import LIVE_STREAM, LiveSampler, Sampler
from agents.daemon.traffic import MachineMeter
from agents.probes.machine import LinkReading, LinuxLinkProbe
from agents.probes.machine.system import CpuTimes, Memory, NetIo
from sessionready import schema, typed, wire
from tests.conftest import Monitor, start_monitor
from tests.machine.fakes import DATA, Counters, FakeLinkProbe, FakeRun, FakeSystem, RecordedTree


def client_for(monitor: Monitor, token: str | None = None) -> MonitorClient:
    return MonitorClient(monitor_url(monitor.url), token or monitor.token())


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


def valid(sample: schema.Sample) -> schema.Sample:
    """What the spool will send must decode as the wire schema strictly."""
    return typed.decode(schema.Sample, typed.encode(sample))


# --- background: network ------------------------------------------------------------------


def test_network_sample_on_loopback_is_clean(shared_monitor: Monitor) -> None:
    async def go() -> schema.Sample:
        async with client_for(shared_monitor) as client:
            return await Sampler(client, False).network_sample("background", "s-42", 1.0)

    sample = valid(run(go()))
    network = sample.network
    assert network is not None and network.problem is None
    assert 45 <= network.packets_sent <= 51  # 50 packets/s for 1 s
    assert network.packets_received == network.packets_sent
    assert network.loss_up == 0 and network.loss_down == 0
    assert network.rtt_p50_ms is not None and 0 < network.rtt_p50_ms < 20
    assert network.rtt_p95_ms is not None and network.rtt_p95_ms >= network.rtt_p50_ms
    assert network.jitter_up_ms is not None and network.jitter_down_ms is not None
    assert network.mos == pytest.approx(4.4, abs=0.05)
    assert sample.session_id == "s-42" and sample.machine is not None


def test_monitor_stopped_gives_a_problem_not_an_exception(tmp_path: Path) -> None:
    monitor = start_monitor(tmp_path / "monitor")
    token = monitor.token()
    monitor.stop()

    async def go() -> schema.Sample:
        async with client_for(monitor, token) as client:
            return await Sampler(client, False).network_sample("background", None, 0.5)

    sample = valid(run(go()))
    assert sample.network is not None and sample.network.problem == "monitor_unreachable"
    assert sample.network.rtt_p50_ms is None and sample.network.mos is None
    assert sample.machine is not None  # the machine is still measured


def test_refused_token_gives_no_probe_key(shared_monitor: Monitor) -> None:
    async def go() -> schema.Sample:
        async with client_for(shared_monitor, "not-a-token") as client:
            return await Sampler(client, False).network_sample("background", None, 0.5)

    network = run(go()).network
    assert network is not None and network.problem == "no_probe_key" and network.packets_sent == 0


def test_udp_blocked_when_the_reflector_never_answers(tmp_path: Path) -> None:
    # The monitor tells the agent to probe a port where nothing answers.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        monitor = start_monitor(tmp_path / "monitor", "--advertise-udp", f"127.0.0.1:{silent.getsockname()[1]}")
        try:

            async def go() -> schema.Sample:
                async with client_for(monitor) as client:
                    return await Sampler(client, False).network_sample("background", None, 0.5)

            network = run(go()).network
        finally:
            monitor.stop()
    assert network is not None and network.problem == "udp_blocked"
    assert network.packets_sent > 0 and network.packets_received == 0 and network.loss_up is None


# --- background: machine and traffic ---------------------------------------------------------


def test_machine_sample_on_this_machine_is_in_range(shared_monitor: Monitor) -> None:
    async def go() -> list[schema.Sample]:
        async with client_for(shared_monitor) as client:
            sampler = Sampler(client, False)
            first = await sampler.machine_sample("background", None)
            await asyncio.sleep(0.3)
            return [first, await sampler.machine_sample("background", None)]

    first, second = (valid(s) for s in run(go()))
    for sample in (first, second):
        machine = sample.machine
        assert machine is not None and sample.network is None and sample.room is None
        assert machine.cpu_pct is not None and 0 <= machine.cpu_pct <= 100
        assert machine.memory_available_pct is not None and 0 < machine.memory_available_pct <= 100
        assert machine.link_type in ("wired", "wifi", "cellular", "other", "unknown")
        if sample.traffic_mbps is not None:  # None only without a default route
            assert (sample.traffic_mbps.up or 0) >= 0 and (sample.traffic_mbps.down or 0) >= 0
    assert first.interval_s == pytest.approx(0.25, abs=0.1)  # the first call's short window
    assert second.interval_s == pytest.approx(0.3, abs=0.15)  # since the previous call


def scripted(*readings: tuple[float, int, int, float, float]) -> FakeSystem:
    """(monotonic s, bytes sent, bytes received, CPU busy s, CPU total s) per reading."""

    class Script(FakeSystem):
        def __init__(self) -> None:
            super().__init__(Counters(), Counters(), memory=Memory(4 << 30, 16 << 30))
            self.index = {"at_s": 0, "net": 0, "cpu": 0}

        def _pick(self, name: str) -> tuple[float, int, int, float, float]:
            i = self.index[name]
            self.index[name] = i + 1
            return readings[min(i, len(readings) - 1)]

        def monotonic_s(self) -> float:
            return self._pick("at_s")[0]

        def net_io(self):  # noqa: ANN201
            _, sent, received, _, _ = self._pick("net")
            return {"eth0": NetIo(sent, received), "wlan0": NetIo(sent, received), "lo": NetIo(10**12, 10**12)}

        def cpu_times(self) -> CpuTimes:
            _, _, _, busy, total = self._pick("cpu")
            return CpuTimes(busy, total)

    return Script()


def test_traffic_is_the_byte_delta_of_the_default_route_interface_over_elapsed_time() -> None:
    # 2.5 MB sent and 5 MB received in 2 s: 10 and 20 Mbit/s; CPU 3 of 8 core-seconds busy.
    system = scripted((100.0, 1_000, 2_000, 10.0, 50.0), (102.0, 2_501_000, 5_002_000, 13.0, 58.0), (106.0, 2_501_000, 5_002_000, 13.0, 66.0))
    meter = MachineMeter(system, FakeLinkProbe("eth0", LinkReading("wired")), first_window_s=0)
    first = run(meter.read())
    assert first.traffic_mbps == schema.Throughput(down=20.0, up=10.0)
    assert first.interval_s == 2.0 and first.machine.cpu_pct == 37.5
    assert first.machine.memory_available_pct == 25.0 and first.machine.link_type == "wired"
    second = run(meter.read())  # since the previous call: nothing moved, CPU idle
    assert second.traffic_mbps == schema.Throughput(down=0.0, up=0.0) and second.interval_s == 4.0
    assert second.machine.cpu_pct == 0.0


def test_traffic_after_the_default_route_moved_is_unknown_for_that_interval() -> None:
    class Moving(FakeLinkProbe):
        names = iter(["eth0", "wlan0", "wlan0"])

        def default_interface(self) -> str | None:
            return next(self.names)

    system = scripted((0.0, 0, 0, 0.0, 1.0), (1.0, 10**6, 10**6, 0.0, 2.0), (2.0, 10**6, 10**6, 0.0, 3.0))
    meter = MachineMeter(system, Moving(None), first_window_s=0)
    assert run(meter.read()).traffic_mbps is None  # eth0 before, wlan0 after: no common counter
    assert run(meter.read()).traffic_mbps == schema.Throughput(down=0.0, up=0.0)


def test_wifi_signal_without_a_subprocess_on_linux() -> None:
    tree = RecordedTree(DATA / "linux" / "wifi-laptop")
    commands = FakeRun({})
    probe = LinuxLinkProbe(commands, tree.read, tree.exists, wifi_rate=False)
    interface = probe.default_interface()
    assert interface is not None
    reading = probe.link_info(interface)
    assert reading.type == "wifi" and reading.wifi is not None and reading.wifi.signal_dbm is not None
    assert commands.calls == []  # no iw
    LinuxLinkProbe(commands, tree.read, tree.exists).link_info(interface)
    assert commands.calls == [("iw", "dev", interface, "link")]  # the check still asks iw for the rate


# --- live mode -----------------------------------------------------------------------------


@pytest.mark.slow
def test_live_windows_follow_the_schedule_and_hold_a_full_interval_of_probes(shared_monitor: Monitor) -> None:
    async def go() -> tuple[list[schema.Sample], list[float], float]:
        async with client_for(shared_monitor) as client:
            async with LiveSampler(client, False, interval_s=2.0) as live:
                samples, ends = [], []
                for _ in range(5):
                    samples.append(await live.next_sample("s-live"))
                    ends.append(time.monotonic())
                return samples, ends, live.schedule_start

    samples, ends, t0 = run(go())
    rate = 1000 / LIVE_STREAM.interval_ms
    for k, (sample, end) in enumerate(zip(samples, ends), start=1):
        valid(sample)
        assert abs(end - (t0 + 2.0 * k)) <= 0.3, f"window {k} ended {end - t0:.3f} s after t0"
        network = sample.network
        assert network is not None and network.problem is None
        assert abs(network.packets_sent - rate * 2.0) <= 1
        assert network.packets_received == network.packets_sent and network.loss_up == 0 and network.loss_down == 0
        assert network.rtt_p50_ms is not None and 0 < network.rtt_p50_ms < 20
        assert network.mos == pytest.approx(4.4, abs=0.05)
        assert sample.session_id == "s-live" and sample.machine is not None and sample.room is None
    assert [s.interval_s for s in samples[1:]] == [2.0] * 4


@pytest.mark.slow
def test_live_probe_key_is_renewed_without_a_gap(tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text("[monitor]\nprobe_key_ttl_s = 10\n")
    monitor = start_monitor(tmp_path / "monitor", "--config", str(config))
    try:

        async def go() -> list[schema.Sample]:
            async with client_for(monitor) as client:
                async with LiveSampler(client, False, interval_s=2.0) as live:
                    return [await live.next_sample("s-renew") for _ in range(7)]  # 15 s: keys for 10 s

        samples = run(go())
    finally:
        monitor.stop()
    for sample in samples:
        network = sample.network
        assert network is not None and network.problem is None
        assert abs(network.packets_sent - 20) <= 1 and network.packets_received == network.packets_sent


class LossyRelay:
    """A UDP relay between the agent and the reflector that drops chosen probes (on the way up)
    and chosen echoes (on the way down), by sequence number, and logs what it dropped. Echoes of
    odd sequence numbers are held ``hold_odd_ms`` before they go on, probes of odd sequence
    numbers half that; ``held`` logs, per echo it forwarded and in that order, (seq, ms from the
    reflector's send stamp in the echo to the relay's own send, both on this machine's wall
    clock): the downstream transit up to the last hop, whatever the hold and this busy relay's
    own wake-ups added. ``passed_up`` logs the same for probes, from the agent's send stamp."""

    def __init__(self, drop_up: set[int], drop_down: set[int], hold_odd_ms: float = 0.0) -> None:
        self.drop_up, self.drop_down = drop_up, drop_down
        self.dropped_up: list[int] = []
        self.dropped_down: list[int] = []
        self.hold_odd_ms = hold_odd_ms
        self.held: list[tuple[int, float]] = []
        self.passed_up: list[tuple[int, float]] = []  # (seq, ms from the probe's send stamp to the relay's send)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.reflector: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self._stop = False
        self._threads = [threading.Thread(target=self._up, daemon=True), threading.Thread(target=self._down, daemon=True)]

    def start(self, reflector_port: int) -> None:
        self.reflector = ("127.0.0.1", reflector_port)
        for thread in self._threads:
            thread.start()

    def _up(self) -> None:
        self.front.settimeout(0.2)
        while not self._stop:
            try:
                data, self.client = self.front.recvfrom(2048)
            except TimeoutError:
                continue
            header = wire.parse_header(data)
            if header.kind == wire.PROBE and header.seq in self.drop_up:
                self.dropped_up.append(header.seq)
                continue
            if header.kind == wire.PROBE and header.seq % 2 and self.hold_odd_ms:
                time.sleep(self.hold_odd_ms / 1000 / 2)  # up: half the hold, so the directions differ
            # Stamped just before the send: after it, this thread may wait for the GIL.
            passed_ns = time.time_ns()
            self.back.sendto(data, self.reflector)
            if header.kind == wire.PROBE:
                self.passed_up.append((header.seq, (passed_ns - header.sent_ns) / 1e6))

    def _down(self) -> None:
        self.back.settimeout(0.2)
        while not self._stop:
            try:
                data, _ = self.back.recvfrom(2048)
            except TimeoutError:
                continue
            header = wire.parse_header(data)
            if header.kind == wire.ECHO and header.seq in self.drop_down:
                self.dropped_down.append(header.seq)
                continue
            if header.kind == wire.ECHO and header.seq % 2 and self.hold_odd_ms:
                time.sleep(self.hold_odd_ms / 1000)  # probes are 100 ms apart: one hold never holds up the next
            if self.client is not None:
                passed_ns = time.time_ns()
                self.front.sendto(data, self.client)
                if header.kind == wire.ECHO:
                    self.held.append((header.seq, (passed_ns - wire.read_echo(data)[1]) / 1e6))

    def close(self) -> None:
        self._stop = True
        for thread in self._threads:
            thread.join(timeout=2)
        self.front.close()
        self.back.close()


@pytest.fixture
def relay_monitor(tmp_path: Path) -> Iterator[tuple[Monitor, LossyRelay]]:
    # Window 2 (probes 20..39 at 10/s): 4 lost upstream, 2 echoes lost downstream; window 3:
    # a run of 3 mixing both directions (2 up, 1 down) -- the split comes from the echoes' counts.
    # Odd echoes are held 30 ms, odd probes 15 ms: the transits zigzag, |D| about 30 ms down and
    # 15 ms up (0 across a lost packet).
    relay = LossyRelay(drop_up={22, 25, 31, 38, 45, 47}, drop_down={27, 34, 46}, hold_odd_ms=30.0)
    monitor = start_monitor(tmp_path / "monitor", "--advertise-udp", f"127.0.0.1:{relay.port}")
    relay.start(monitor.udp_port)
    yield monitor, relay
    monitor.stop()
    relay.close()


@pytest.mark.slow
def test_live_loss_is_split_by_direction_as_the_relay_dropped_it(relay_monitor: tuple[Monitor, LossyRelay]) -> None:
    monitor, relay = relay_monitor

    async def go() -> list[schema.Sample]:
        async with client_for(monitor) as client:
            async with LiveSampler(client, False, interval_s=2.0) as live:
                return [await live.next_sample("s-loss") for _ in range(4)]

    samples = run(go())
    networks = [s.network for s in samples]
    assert all(n is not None and n.problem is None for n in networks)
    sent = sum(n.packets_sent for n in networks)  # type: ignore[union-attr]
    assert 78 <= sent <= 82
    lost_up = sum(n.loss_up * n.packets_sent for n in networks)  # type: ignore[union-attr, operator]
    lost_down = sum(n.loss_down * (n.packets_sent - n.loss_up * n.packets_sent) for n in networks)  # type: ignore[union-attr, operator]
    assert sorted(relay.dropped_up) == [22, 25, 31, 38, 45, 47]
    assert lost_up == pytest.approx(6, abs=0.01)
    assert lost_down == pytest.approx(3, abs=0.01)
    # Per window, as the relay dropped them (probe k*20..k*20+19 is window k+1).
    window2, window3 = networks[1], networks[2]
    assert window2 is not None and window2.loss_up * window2.packets_sent == pytest.approx(4, abs=0.01)  # type: ignore[operator]
    assert window3 is not None and window3.loss_up * window3.packets_sent == pytest.approx(2, abs=0.01)  # type: ignore[operator]
    assert all(math.isfinite(n.mos) and n.mos < 4.4 for n in networks[1:3])  # type: ignore[union-attr, arg-type]
    # Jitter judged (mean |D|) per window and direction against the relay's own logs of the
    # transits up to its sends: the |D| of each packet it passed (of the probes whose echo came
    # back: the ones the agent can time) against the one it passed before, for the window's
    # probes (the first window's first packet has none before it). Only the last hop is not in
    # the logs. Window k holds the probes after those of the windows before it (seq ranges from
    # the counts sent: a busy sender may put 19 or 21 in one).
    ends = list(itertools.accumulate(n.packets_sent for n in networks))  # type: ignore[union-attr]

    def mean_abs_d_per_window(log: list[tuple[int, float]]) -> list[float]:
        log = [(seq, ms) for seq, ms in log if seq not in relay.drop_down]
        d = [(seq, abs(ms - before)) for (_, before), (seq, ms) in zip(log, log[1:])]
        return [statistics.fmean(v for seq, v in d if low <= seq < high) for low, high in zip([0, *ends], ends)]

    for k, (network, down, up) in enumerate(zip(networks, mean_abs_d_per_window(relay.held), mean_abs_d_per_window(relay.passed_up))):
        assert network.jitter_mean_down_ms == pytest.approx(down, abs=1.0), (k, network, down)  # type: ignore[union-attr]
        assert network.jitter_mean_up_ms == pytest.approx(up, abs=1.0), (k, network, up)  # type: ignore[union-attr]
    # The relay's zigzags were there and told the directions apart (about 30 and 15 ms where no
    # packet was lost, less where a loss put two even or two odd packets side by side).
    down, up = statistics.fmean(mean_abs_d_per_window(relay.held)), statistics.fmean(mean_abs_d_per_window(relay.passed_up))
    assert down > up + 5 and up > 5, (down, up)


def test_live_without_a_monitor_gives_windows_with_a_problem(tmp_path: Path) -> None:
    monitor = start_monitor(tmp_path / "monitor")
    token = monitor.token()
    monitor.stop()

    async def go() -> list[schema.Sample]:
        async with client_for(monitor, token) as client:
            async with LiveSampler(client, False, interval_s=1.0) as live:
                return [await live.next_sample("s-down") for _ in range(2)]

    for sample in run(go()):
        valid(sample)
        assert sample.network is not None and sample.network.problem == "monitor_unreachable"
        assert sample.network.packets_sent == 0 and sample.machine is not None
