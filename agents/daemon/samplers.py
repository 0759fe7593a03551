"""The agent's samples: background (every few minutes) and live (every 2 s in a session).

``Sampler`` makes background samples: machine health and the traffic used since the
previous call, and on request a short UDP burst to the monitor's reflector (no throughput
test). ``LiveSampler`` runs for one live session: one low-rate UDP stream, the machine, and
(only when allowed) the room, cut into windows on a fixed schedule. docs/samples.md gives
rates, bit rates and costs.

Trouble while measuring is data, never an exception: a burst or window that cannot be
measured gives ``SampleNetwork.problem`` (monitor_unreachable, no_probe_key, udp_blocked)
with no numbers; what the OS will not tell is None. Monotonic time for intervals, wall time
only for ``taken_at``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from agents.check import agent_os
from agents.client import MonitorClient, MonitorError, ProbeSession
from agents.daemon.live_room import LiveRoom
from agents.daemon.traffic import MachineMeter, MachineReading
from agents.probes.room.model import AudioSource, RoomSettings
from agents.probes.udp_stream import FlowResult, Probe, StreamSettings, UdpStream, UdpUnavailable
from sessionready import __version__, quality, schema, wire
from sessionready.stats import mean_abs_transit_difference, rfc3550_jitter, wilson_interval

log = logging.getLogger("sessionready.agent")

Kind = Literal["background", "live"]
NetworkProblem = Literal["monitor_unreachable", "no_probe_key", "udp_blocked"]

# Background bursts look like a call's audio (50 packets/s of 172 bytes), as the check's idle
# phase does, so the numbers compare with the pre-session check.
BURST_STREAM = StreamSettings()
# The live stream must not disturb the call: 10 packets/s of the smallest probe the
# reflector answers (72 bytes of UDP payload; 100 bytes on the wire over IPv4, 120 over IPv6):
# 8.0 kbit/s each way over IPv4, 9.6 kbit/s over IPv6.
LIVE_STREAM = StreamSettings(interval_ms=100.0, packet_bytes=wire.MIN_PACKET_BYTES)
# A live probe whose echo is not back this long after it was sent counts as lost: a voice
# packet that late is useless to a call's jitter buffer anyway. Window k holds the probes
# sent during [t0 + (k-1) i - grace, t0 + k i - grace) and is judged at t0 + k i.
ECHO_GRACE_S = 1.0
# RFC 3550 jitter is a running estimate (gain 1/16); each window continues it from the
# previous windows' last packets, so that it does not restart from zero every 2 s:
# 64 packets leave (15/16)^64 = 1.6 % of the start value's weight.
JITTER_HISTORY = 64
KEY_RETRY_S = 5.0  # after a failed key request, wait at least this long before the next


def network_problem(error: MonitorError) -> NetworkProblem:
    """A monitor that answered (401, 403, 429, 5xx) refused a key; no answer: unreachable."""
    return "no_probe_key" if error.status is not None else "monitor_unreachable"


def no_network(problem: NetworkProblem, sent: int = 0) -> schema.SampleNetwork:
    return schema.SampleNetwork(
        packets_sent=sent, packets_received=0, rtt_p50_ms=None, rtt_p95_ms=None, jitter_up_ms=None,
        jitter_down_ms=None, loss_up=None, loss_down=None, mos=None, problem=problem,
    )  # fmt: skip


def sample_network(flow: FlowResult) -> schema.SampleNetwork:
    """The wire form of a burst or a live window, with the E-model MOS the check computes."""
    if not flow.received:
        return no_network("udp_blocked", flow.sent)
    summary = flow.rtt_summary()
    p50, p95 = (summary[1], summary[2]) if summary else (None, None)
    facts = quality.NetworkFacts(
        rtt_p50_ms=p50,
        rtt_p95_ms=p95,
        jitter_up_ms=flow.jitter_up_ms,
        jitter_down_ms=flow.jitter_down_ms,
        jitter_mean_up_ms=flow.jitter_mean_up_ms,
        jitter_mean_down_ms=flow.jitter_mean_down_ms,
        loss_up_ratio=flow.loss_up,
        loss_down_ratio=flow.loss_down,
        loss_up_ci95=flow.loss_up_ci95,
        loss_down_ci95=flow.loss_down_ci95,
        packets_sent=flow.sent,
        packets_received=flow.received,
        throughput_down_mbps=None,
        throughput_up_mbps=None,
        loaded_latency_down_ms=None,
        loaded_latency_up_ms=None,
    )
    mos = quality.assess(facts).mos
    return schema.SampleNetwork(
        packets_sent=flow.sent,
        packets_received=flow.received,
        rtt_p50_ms=_round(p50, 3),
        rtt_p95_ms=_round(p95, 3),
        jitter_up_ms=_round(flow.jitter_up_ms, 3),
        jitter_down_ms=_round(flow.jitter_down_ms, 3),
        loss_up=_round(flow.loss_up, 6),
        loss_down=_round(flow.loss_down, 6),
        mos=_round(mos, 2),
        jitter_mean_up_ms=_round(flow.jitter_mean_up_ms, 3),
        jitter_mean_down_ms=_round(flow.jitter_mean_down_ms, 3),
    )


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def _sample(
    clock: Callable[[], float],
    interval_s: float,
    session_id: str | None,
    network: schema.SampleNetwork | None,
    reading: MachineReading,
    room: schema.SampleRoom | None,
) -> schema.Sample:
    return schema.Sample(
        schema_version=1,
        taken_at=datetime.fromtimestamp(clock(), timezone.utc).isoformat(timespec="milliseconds"),
        interval_s=round(interval_s, 3),
        session_id=session_id,
        agent=schema.Agent(version=__version__, os=agent_os()),
        network=network,
        machine=reading.machine,
        traffic_mbps=reading.traffic_mbps,
        room=room,
    )


class Sampler:
    """Background samples. ``machine`` is the machine meter (a seam: a ``MachineMeter`` over a
    fake psutil facade in tests); ``clock`` gives ``taken_at`` (wall seconds).

    Background samples never open the microphone: the room is heard only during a live
    session (``LiveSampler``); ``room_allowed`` is kept for that decision's record.
    """

    def __init__(
        self,
        client: MonitorClient,
        room_allowed: bool,
        *,
        machine: MachineMeter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.room_allowed = room_allowed
        self._machine = machine if machine is not None else MachineMeter()
        self._clock = clock

    async def machine_sample(self, kind: Kind, session_id: str | None) -> schema.Sample:
        """Machine health, and CPU and traffic since the previous call of this sampler."""
        reading = await self._machine.read()
        return _sample(self._clock, reading.interval_s, session_id, None, reading, None)

    async def network_sample(self, kind: Kind, session_id: str | None, burst_s: float) -> schema.Sample:
        """A ``burst_s`` UDP burst (50 packets/s) to the reflector, then the machine.

        Takes ``burst_s`` plus 0.5..3 s for late echoes and the reflector's totals.
        ``ValueError`` only for a ``burst_s`` outside 0.1..60.
        """
        if not (math.isfinite(burst_s) and 0.1 <= burst_s <= 60):
            raise ValueError(f"burst_s must be within 0.1..60 s, got {burst_s}")
        network = await self.burst(burst_s)
        reading = await self._machine.read()
        return _sample(self._clock, reading.interval_s, session_id, network, reading, None)

    async def burst(self, burst_s: float) -> schema.SampleNetwork:
        try:
            key = await self._client.probe_session()
        except MonitorError as error:
            return no_network(network_problem(error))
        try:
            async with UdpStream(key.udp_host, key.udp_port, BURST_STREAM) as stream:
                stream.start_flow("burst", key.key)
                await asyncio.sleep(burst_s)
                flows = await stream.finish()
        except UdpUnavailable:
            return no_network("udp_blocked")
        return sample_network(flows[0])


@dataclass
class _Cursor:
    """Where the windows stand in one flow (one probe key)."""

    key: bytes
    next_seq: int = 0  # first probe not yet in a window
    anchor_seq: int = -1  # last echoed probe before next_seq (-1: none)...
    anchor_reflected: int = 0  # ...and the reflector's distinct count when it echoed it


class LiveWindows:
    """Cuts a running ``UdpStream`` into windows: RTT, loss per direction, jitter per window
    (RFC 3550's J, continued across windows, and the window's mean |D|, the figure judged).

    Loss is split by direction without waiting for the reflector's totals: every echo says
    how many distinct probes the reflector had received so far, so for a run of missing echoes
    between two echoed probes p and q, the probes that reached the reflector are the
    difference of the two counts, and the rest were lost on the way up. A run with no echo
    after it yet counts as lost upstream (as the check does without totals).
    """

    def __init__(self, stream: UdpStream) -> None:
        self._stream = stream
        self._cursors: list[_Cursor] = []
        self._up: deque[tuple[int, int]] = deque(maxlen=JITTER_HISTORY)
        self._down: deque[tuple[int, int]] = deque(maxlen=JITTER_HISTORY)

    def add_flow(self, key: bytes) -> None:
        """The stream now sends on ``key`` (call right after ``stream.start_flow``)."""
        self._cursors.append(_Cursor(key))

    def take(self, until_ns: int) -> FlowResult:
        """The probes sent before ``until_ns`` (the stream's wall clock) not yet taken."""
        sent = received = 0
        up_lost = 0.0
        rtts: list[tuple[float, float]] = []
        up_pairs: list[tuple[int, int]] = []
        down_pairs: list[tuple[int, int]] = []
        first_sent_ns: int | None = None
        for cursor in list(self._cursors):
            probes = self._stream.probes(cursor.key, cursor.next_seq)
            window = [p for p in probes if p.sent_ns < until_ns]
            if window:
                first_sent_ns = window[0].sent_ns if first_sent_ns is None else first_sent_ns
                sent += len(window)
                up_lost += _upstream_lost(window, probes[len(window) :], cursor)
                for probe in window:
                    if probe.echo_ns is None or probe.reflector_recv_ns is None or probe.reflector_send_ns is None:
                        continue
                    received += 1
                    rtt_ns = (probe.echo_ns - probe.sent_ns) - (probe.reflector_send_ns - probe.reflector_recv_ns)
                    if rtt_ns >= 0:  # negative: the wall clock stepped mid-packet
                        rtts.append(((probe.sent_ns - first_sent_ns) / 1e9, rtt_ns / 1e6))
                    up_pairs.append((probe.sent_ns, probe.reflector_recv_ns))
                    down_pairs.append((probe.reflector_send_ns, probe.echo_ns))
                cursor.next_seq = window[-1].seq + 1
            elif cursor is not self._cursors[-1] and not probes:
                # An old key's flow whose probes are all in windows: free its memory.
                self._stream.forget_flow(cursor.key)
                self._cursors.remove(cursor)
        # Jitter continues from the previous windows' packets, in arrival order per direction.
        # The mean |D| (the figure judged) is the window's own: its packets' |D|, the first
        # taken against the packet that arrived before it (in the previous window).
        up_pairs.sort(key=lambda pair: pair[1])
        down_pairs.sort(key=lambda pair: pair[1])
        jitter_up = rfc3550_jitter([*self._up, *up_pairs]) if len(up_pairs) >= 2 else None
        jitter_down = rfc3550_jitter([*self._down, *down_pairs]) if len(down_pairs) >= 2 else None
        mean_up = mean_abs_transit_difference([*list(self._up)[-1:], *up_pairs]) if len(up_pairs) >= 2 else None
        mean_down = mean_abs_transit_difference([*list(self._down)[-1:], *down_pairs]) if len(down_pairs) >= 2 else None
        self._up.extend(up_pairs)
        self._down.extend(down_pairs)

        lost = sent - received
        up = min(float(lost), max(0.0, up_lost))
        reflected = sent - up
        loss_up = up / sent if sent else None
        loss_down = max(0.0, lost - up) / reflected if sent and reflected > 0 else None
        up_int, reflected_int = round(up), round(reflected)
        return FlowResult(
            name="live",
            sent=sent,
            received=received,
            reflected=reflected_int if sent else None,
            rtt_samples=tuple(rtts),
            jitter_up_ms=None if jitter_up is None else jitter_up / 1e6,
            jitter_down_ms=None if jitter_down is None else jitter_down / 1e6,
            loss_up=loss_up,
            loss_down=loss_down,
            loss_up_ci95=wilson_interval(up_int, sent) if sent else None,
            loss_down_ci95=wilson_interval(min(reflected_int, max(0, reflected_int - received)), reflected_int) if reflected_int > 0 else None,
            reordered_up=0,
            reordered_down=0,
            duplicates_up=0,
            duplicates_down=0,
            jitter_mean_up_ms=None if mean_up is None else mean_up / 1e6,
            jitter_mean_down_ms=None if mean_down is None else mean_down / 1e6,
        )


def _upstream_lost(window: list[Probe], later: list[Probe], cursor: _Cursor) -> float:
    """Probes of ``window`` lost on the way to the reflector (a share of each run of missing
    echoes); moves the cursor's anchor to the window's last echoed probe."""
    lost = 0.0
    run: list[Probe] = []
    for probe in [*window, *later]:
        if probe.reflected_so_far is None:
            if probe.seq < window[-1].seq + 1:
                run.append(probe)
            continue
        if run:
            lost += _run_share(run, cursor, probe)
            run = []
        if probe.seq <= window[-1].seq:
            cursor.anchor_seq, cursor.anchor_reflected = probe.seq, probe.reflected_so_far
        else:
            break
    if run:
        lost += len(run)  # no echo after them yet: the reflector's count cannot split them
    return lost


def _run_share(run: list[Probe], cursor: _Cursor, after: Probe) -> float:
    between = after.seq - cursor.anchor_seq - 1  # all missing, whether in this window or not
    reached = (after.reflected_so_far or 0) - cursor.anchor_reflected - 1
    lost_up = min(between, max(0, between - reached))
    return lost_up * len(run) / between if between > 0 else 0.0


class LiveSampler:
    """One live session: ``async with LiveSampler(...) as live``, then ``await
    live.next_sample(session_id)`` in a loop; each returns the next ``interval_s`` window.

    Windows never drift: window k ends at t0 + k * interval_s on the monotonic clock, where
    t0 is ``ECHO_GRACE_S`` after the stream started (so every window holds a full interval
    of probes). A caller that falls more than a window behind skips to the current window
    rather than returning a burst of stale ones. The probe key is renewed in the background
    halfway through its lifetime; the stream switches keys between two packets, without a
    gap. Without a key (monitor unreachable, refused) the windows carry ``problem``.

    With several monitors, the stream goes to the reflector of the monitor that issued its key.
    When the client moves to another monitor, a key is asked of that one at once and the
    stream moves to its reflector; a window whose probes went to a monitor the client found
    down carries ``monitor_unreachable`` rather than the loss of a dead reflector. The window
    in which a monitor dies, before any request has found it down, still counts the probes
    its reflector never echoed as lost (at most one live interval).

    ``machine``: a ``MachineMeter`` (seam for tests); ``audio_source``: an ``AudioSource``
    instead of the microphone (seam for tests); ``room_settings``: device and calibration.
    The microphone is opened only when ``room_allowed``.
    """

    def __init__(
        self,
        client: MonitorClient,
        room_allowed: bool,
        *,
        interval_s: float = 2.0,
        machine: MachineMeter | None = None,
        audio_source: AudioSource | None = None,
        room_settings: RoomSettings | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(interval_s) and 0.5 <= interval_s <= 3600):
            raise ValueError(f"interval_s must be within 0.5..3600 s, got {interval_s}")
        self._client = client
        self._interval_s = interval_s
        self._machine = machine if machine is not None else MachineMeter()
        self._room = LiveRoom(room_settings or RoomSettings(), audio_source) if room_allowed else None
        self._clock = clock
        self._monotonic = monotonic
        self._stream: UdpStream | None = None
        self._windows: LiveWindows | None = None
        self._stream_monitor = ""  # the base URL whose reflector the stream goes to
        self._key_renew_at: float | None = None  # monotonic
        self._key_expires_at: float | None = None
        self._key_problem: NetworkProblem | None = None
        self._key_task: asyncio.Task[None] | None = None
        self._next_key_try = 0.0
        self._t0 = 0.0
        self._k = 0
        self._previous_end = 0.0

    @property
    def interval_s(self) -> float:
        return self._interval_s

    @property
    def schedule_start(self) -> float:
        """t0 on the monotonic clock: window k ends at t0 + k * interval_s."""
        return self._t0

    async def __aenter__(self) -> LiveSampler:
        started = self._monotonic()
        try:
            await self._new_key()
            if self._room is not None:
                await self._room.__aenter__()
            await self._machine.read()  # the baseline: the first window's CPU and traffic start here
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        self._t0 = started + ECHO_GRACE_S
        self._previous_end = started
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._key_task is not None:
            self._key_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._key_task
            self._key_task = None
        if self._stream is not None:
            await self._stream.__aexit__(None, None, None)
            self._stream = None
        if self._room is not None:
            await self._room.__aexit__(None, None, None)

    async def next_sample(self, session_id: str) -> schema.Sample:
        self._k += 1
        end = self._t0 + self._k * self._interval_s
        now = self._monotonic()
        if now > end + self._interval_s:  # far behind: skip to the window that ends next
            self._k = math.ceil((now - self._t0) / self._interval_s)
            end = self._t0 + self._k * self._interval_s
        await asyncio.sleep(max(0.0, end - self._monotonic()))
        self._maybe_renew_key()
        network = self._network_window(end - ECHO_GRACE_S)
        reading = await self._machine.read()
        room = self._room.window() if self._room is not None else None
        interval = end - self._previous_end
        self._previous_end = end
        return _sample(self._clock, interval, session_id, network, reading, room)

    def _network_window(self, boundary_monotonic_s: float) -> schema.SampleNetwork:
        if self._windows is None:
            return no_network(self._key_problem or "monitor_unreachable")
        # The stream stamps probes with the wall clock: place the boundary on it from now.
        until_ns = time.time_ns() + round((boundary_monotonic_s - self._monotonic()) * 1e9)
        flow = self._windows.take(until_ns)
        if self._left_monitor() and self._client.found_down(self._stream_monitor) is not None:
            return no_network("monitor_unreachable", flow.sent)
        expired = self._key_expires_at is not None and boundary_monotonic_s > self._key_expires_at
        if expired and not flow.received:
            return no_network(self._key_problem or "no_probe_key", flow.sent)
        return sample_network(flow)

    def _left_monitor(self) -> bool:
        """The client now uses another monitor than the one the stream goes to."""
        return self._stream is not None and bool(self._stream_monitor) and self._stream_monitor != str(self._client.base_url)

    def _maybe_renew_key(self) -> None:
        now = self._monotonic()
        due = self._stream is None or self._left_monitor() or (self._key_renew_at is not None and now >= self._key_renew_at)
        if due and now >= self._next_key_try and (self._key_task is None or self._key_task.done()):
            self._key_task = asyncio.create_task(self._new_key())

    async def _new_key(self) -> None:
        requested = self._monotonic()
        self._next_key_try = requested + KEY_RETRY_S
        try:
            key = await self._client.probe_session()
        except MonitorError as error:
            self._key_problem = network_problem(error)
            log.info("live mode: no probe key (%s)", self._key_problem)
            return
        try:
            await self._use_key(key, requested)
        except UdpUnavailable:
            self._key_problem = "udp_blocked"

    async def _use_key(self, key: ProbeSession, requested: float) -> None:
        if self._stream is not None and key.monitor != self._stream_monitor:
            # Another monitor's key: its reflector is elsewhere. A new stream (and windows)
            # from here on; the old one's probes are not judged any more.
            old, self._stream, self._windows = self._stream, None, None
            await old.__aexit__(None, None, None)
        if self._stream is None:
            stream = UdpStream(key.udp_host, key.udp_port, LIVE_STREAM)
            await stream.__aenter__()
            self._stream, self._windows, self._stream_monitor = stream, LiveWindows(stream), key.monitor
        assert self._windows is not None
        self._stream.start_flow("live", key.key)
        self._windows.add_flow(key.key)
        self._key_problem = None
        # The key's lifetime counts from the monitor's answer; the request's start is earlier, so safe.
        self._key_expires_at = requested + key.lifetime_s
        self._key_renew_at = requested + key.lifetime_s / 2
