"""Per-stream records of the browser's probe stream, and the echo the monitor answers with.

Wire format (docs/browser-check.md section 3), big-endian, each message padded by the page:

* probe, page -> monitor: ``u8 kind=1 | u8 phase | u16 n | u32 seq | f64 sent_ms |
  n x (u32 seq | f64 arrival_ms)`` then padding: the phase the page is in (1 idle, 2 download,
  3 upload, 0 not said) and the arrival times of the last ``n`` echoes it received (receipts),
  within the probe's length;
* probe with a load sample (kind 3, during a throughput phase): the same with ``f64
  load_start_ms | f64 load_at_ms | f64 load_bytes`` between ``sent_ms`` and the receipts: the
  phase's start, and its cumulative bytes, complete up to ``load_at_ms`` (all on the page's
  clock): one point of the series the page's throughput meter keeps (``LoadRule``);
* echo, monitor -> page: ``u8 kind=2 | u8 flags | u16 0 | u32 seq | f64 sent_ms (copied) |
  f64 monitor_recv_ms | f64 monitor_send_ms | u32 distinct_received`` then the probe's own
  bytes: exactly as long as the probe, never longer. ``flags``: bit 0 (IDLE_OVER), bit 1
  (DOWNLOAD_OVER), bit 2 (UPLOAD_OVER): the monitor's stopping rule has ended that phase
  (``IdleRule``, ``LoadRule``); every echo after the decision says so.

The monitor's times are its monotonic clock; the page's are ``performance.now()``. The two
clocks are never compared: only differences taken on one side enter the analysis
(``sessionready.flow``), as with the CLI's UDP stream. Nothing here does I/O but the
registry's closing of peers.

The phases may be adaptive: the monitor holds both sides' records as the stream runs (its
own, and the page's echo arrivals from the receipts), and during the throughput phases the
page's byte counts, so it applies the CLI's stopping rule (``sessionready.settle``, the one
rule) and tells the page when each phase is over.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sessionready import flow, quality, schema, settle
from sessionready.browser_check import MAX_PAGE_MS, MAX_PROBES

PROBE_KIND = 1
ECHO_KIND = 2
LOAD_PROBE_KIND = 3  # a probe that also carries one point of the throughput meter's series
PROBE_HEAD = struct.Struct("!BBHId")  # kind, phase, receipts, seq, sent_ms
LOAD_SAMPLE = struct.Struct("!ddd")  # after PROBE_HEAD in kind 3: load_start_ms, load_at_ms, load_bytes
LOAD_PROBE_HEAD_BYTES = PROBE_HEAD.size + LOAD_SAMPLE.size
ECHO_HEAD = struct.Struct("!BBHIdddI")  # kind, flags, 0, seq, sent_ms, recv_ms, send_ms, distinct
RECEIPT = struct.Struct("!Id")  # seq, arrival_ms on the page's clock: one echo the page received
# The probe's phase byte; 0 is a page that does not say (it never hears IDLE_OVER either).
PHASES = {1: "idle", 2: "download", 3: "upload"}
IDLE_PHASE = 1
IDLE_OVER = 0x01  # echo flag: the idle phase is over, the page moves on
DOWNLOAD_OVER = 0x02  # echo flag: the download phase is over
UPLOAD_OVER = 0x04  # echo flag: the upload phase is over
LOAD_PHASES = {2: "download", 3: "upload"}
PHASE_OVER = {"download": DOWNLOAD_OVER, "upload": UPLOAD_OVER}
_PHASE_CODES = {name: code for code, name in PHASES.items()}
# A throughput phase's load samples: at most this long (settle.PhaseLimits' own bound) and this
# many bytes (100 Gbit/s for 600 s is 7.5e12; f64 holds every integer up to 2**53 exactly).
MAX_LOAD_MS = 600_000.0
MAX_LOAD_BYTES = 1e13
# How often the rule is asked while the idle phase runs (the CLI asks every 0.1 s). An
# evaluation over 500 probes takes 1.5-3.5 ms of the event loop here; every 0.2 s keeps it
# under 2 % of a core per stream, for at most 0.2 s more of idle phase.
SETTLE_POLL_NS = 200_000_000
# A probe must be long enough to carry its echo: an echo is never longer than what caused it.
MIN_PROBE_BYTES = ECHO_HEAD.size
# Far above a voice packet (172 bytes) and below any path MTU: SCTP never fragments a probe.
MAX_PROBE_BYTES = 1200
# A stream sends 50 probes/s; at most twice that is answered (with a burst allowance), so a
# page cannot turn the monitor into a traffic source, exactly like the UDP reflector.
MAX_PPS = 100.0
BURST = 100.0
# A page that retries after a failure opens a new stream while the old one waits out its
# lifetime; beyond a few, one link would only be taking the slots of others.
MAX_STREAMS_PER_OWNER = 3


@dataclass(frozen=True)
class IdleDecision:
    """How the monitor's rule ended the idle phase: after ``seconds`` (from the first probe's
    arrival), ``stopped`` "settled" or "max_length", with the figures still unsettled, and the
    mean |D| per direction (up, down; ms) it judged: the jitter the report carries."""

    seconds: float
    stopped: settle.StopReason
    unsettled: tuple[settle.Judged, ...] = ()
    jitter_mean_ms: tuple[float | None, float | None] | None = None


@dataclass
class IdleRule:
    """The adaptive idle phase of one stream: the limits and thresholds it is judged with, and
    what became of it (``decision``; or ``page_moved_on`` before any decision)."""

    limits: settle.PhaseLimits
    thresholds: quality.Thresholds = field(default_factory=quality.Thresholds)
    decision: IdleDecision | None = None
    page_moved_on: bool = False
    started_ns: int | None = None
    last_ns: int = -SETTLE_POLL_NS
    floor: str | None = None  # what the settled figures made certain: the download's floor


@dataclass(frozen=True)
class LoadDecision:
    """How the monitor's rule ended a throughput phase: after ``seconds`` (on the page's clock,
    from the phase's start to the latest probe of the phase the monitor had), ``stopped``
    "settled" or "max_length", with the figures still unsettled and the severity the settled
    ones make certain (the next phase's floor, as in the CLI)."""

    seconds: float
    stopped: settle.StopReason
    unsettled: tuple[settle.Judged, ...] = ()
    floor: str | None = None


@dataclass
class LoadRule:
    """The adaptive download or upload phase of one stream: its limits, ramp and thresholds, the
    page's byte counts as they came (``samples``: cumulative (s since the phase's start, bytes)
    on the page's clock, from 0, validated), and what became of it."""

    direction: Literal["down", "up"]
    limits: settle.PhaseLimits
    ramp_s: float
    thresholds: quality.Thresholds = field(default_factory=quality.Thresholds)
    start_ms: float | None = None  # the phase's start on the page's clock, from its first sample
    samples: list[tuple[float, float]] = field(default_factory=list)
    last_sent_ms: float | None = None  # the latest probe of this phase the monitor received
    rejected: int = 0  # samples that could not be true (ignored; the probe was still echoed)
    decision: LoadDecision | None = None
    page_moved_on: bool = False
    last_ns: int = -SETTLE_POLL_NS

    def take(self, sent_ms: float, start_ms: float, at_ms: float, count: float) -> None:
        """Keep one point of the page's series, if it can be true: finite, within the phase
        (from its start, no later than the probe that carries it, at most MAX_LOAD_MS), the
        same start as the phase's earlier samples, bytes from 0 to MAX_LOAD_BYTES that never
        fall. A point older than the last one kept (a reordered probe) tells nothing new."""
        if not (
            math.isfinite(start_ms) and math.isfinite(at_ms) and math.isfinite(count)
            and 0 <= start_ms <= MAX_PAGE_MS and start_ms <= at_ms <= min(sent_ms, start_ms + MAX_LOAD_MS)
            and 0 <= count <= MAX_LOAD_BYTES and (self.start_ms is None or start_ms == self.start_ms)
        ):  # fmt: skip
            self.rejected += 1
            return
        if self.start_ms is None:
            self.start_ms = start_ms
            self.samples.append((0.0, 0.0))  # nothing had moved when the phase began
        # The phase runs on whether or not this point is new: an upload's count stands still
        # while a slow request is in flight, and the phase still reaches its longest length.
        self.last_sent_ms = sent_ms if self.last_sent_ms is None else max(self.last_sent_ms, sent_ms)
        t_s = (at_ms - start_ms) / 1000
        last_t, last_count = self.samples[-1]
        if t_s < last_t or (t_s == last_t and count == last_count):
            return
        if count < last_count or t_s == last_t:
            self.rejected += 1  # a cumulative count that falls, or two counts for one instant
            return
        self.samples.append((t_s, count))


@dataclass(frozen=True)
class _Probe:
    """One probe as ``settle.ProbeRecord`` reads it (times in ns, each on its own side's clock)."""

    seq: int
    sent_ns: int
    echo_ns: int | None
    reflector_recv_ns: int | None
    reflector_send_ns: int | None
    reflected_so_far: int | None


@dataclass
class StreamRecords:
    """Everything the monitor keeps about one stream. Times in ns of the monitor's monotonic
    clock, except ``sent_ns`` (the page's ``sent_ms`` carried in the probe, converted to ns)."""

    rtc_id: str
    owner: str  # the link id (a client agent's token id until check links exist)
    sent_ns: dict[int, int] = field(default_factory=dict)  # seq -> page send time, first copy
    recv_ns: dict[int, int] = field(default_factory=dict)  # seq -> monitor receive time, first copy
    send_ns: dict[int, int] = field(default_factory=dict)  # seq -> monitor send time of its echo
    duplicate_seqs: dict[int, int] = field(default_factory=dict)  # seq -> copies beyond the first
    reordered_seqs: set[int] = field(default_factory=set)  # seqs that arrived after a higher one
    distinct: int = 0
    duplicates: int = 0
    reordered: int = 0
    highest: int = -1
    ignored: int = 0  # malformed, out of range, or over the rate: not echoed
    arrival_ms: dict[int, float] = field(default_factory=dict)  # seq -> page arrival of its echo (receipts)
    phase: int = 0  # the latest phase byte a probe carried
    idle: IdleRule | None = None  # the adaptive idle phase's rule; None: the page runs it fixed
    # The adaptive throughput phases' rules, "download" and "upload"; empty: the page runs them fixed.
    loads: dict[str, LoadRule] = field(default_factory=dict)
    _allowance: float = BURST
    _last_ns: int = 0

    def answer(self, message: bytes, recv_ns: int, clock_ns) -> bytes | None:
        """Record a probe received at ``recv_ns``; the echo to send at once, or None to drop it.

        ``clock_ns`` is read right before the echo is built: its time is the echo's send time.
        """
        if not isinstance(message, bytes | bytearray) or not MIN_PROBE_BYTES <= len(message) <= MAX_PROBE_BYTES:
            self.ignored += 1
            return None
        kind, phase, receipts, seq, sent_ms = PROBE_HEAD.unpack_from(message)
        head = LOAD_PROBE_HEAD_BYTES if kind == LOAD_PROBE_KIND else PROBE_HEAD.size
        if (
            kind not in (PROBE_KIND, LOAD_PROBE_KIND) or len(message) < head or seq >= MAX_PROBES
            or not math.isfinite(sent_ms) or not self._admit(recv_ns)
        ):  # fmt: skip
            self.ignored += 1
            return None
        if phase in PHASES and phase > self.phase:
            self.phase = phase
        if kind == LOAD_PROBE_KIND:
            rule = self.loads.get(LOAD_PHASES.get(phase, ""))
            if rule is not None and rule.decision is None:
                rule.take(sent_ms, *LOAD_SAMPLE.unpack_from(message, PROBE_HEAD.size))
        if head + receipts * RECEIPT.size <= len(message):
            self._take_receipts(message, receipts, head)
        if seq in self.recv_ns:
            self.duplicates += 1
            self.duplicate_seqs[seq] = self.duplicate_seqs.get(seq, 0) + 1
        else:
            self.distinct += 1
            self.sent_ns[seq] = round(sent_ms * 1e6)
            self.recv_ns[seq] = recv_ns
            if seq < self.highest:
                self.reordered += 1
                self.reordered_seqs.add(seq)
            else:
                self.highest = seq
        send_ns = clock_ns()
        self.send_ns.setdefault(seq, send_ns)
        echo = bytearray(message)
        flags = IDLE_OVER if self.idle is not None and self.idle.decision is not None else 0
        for name, rule in self.loads.items():
            if rule.decision is not None:
                flags |= PHASE_OVER[name]
        ECHO_HEAD.pack_into(echo, 0, ECHO_KIND, flags, 0, seq, sent_ms, recv_ns / 1e6, send_ns / 1e6, self.distinct)
        return bytes(echo)

    def _take_receipts(self, message: bytes, count: int, head: int) -> None:
        """The page's arrival times of echoes it received: kept for echoes this monitor sent, the
        first report of each (a receipt repeats in the next probes, so a lost probe loses none)."""
        for index in range(count):
            seq, arrival_ms = RECEIPT.unpack_from(message, head + index * RECEIPT.size)
            if seq in self.send_ns and seq not in self.arrival_ms and math.isfinite(arrival_ms) and 0 <= arrival_ms <= MAX_PAGE_MS:
                self.arrival_ms[seq] = arrival_ms

    def settle_idle(self, now_ns: int) -> None:
        """Ask the idle phase's stopping rule, at most every SETTLE_POLL_NS, while the page is in
        its idle phase and nothing has decided yet. Called after a probe's echo has gone out, so
        that the echo's own times never include the rule's work."""
        rule = self.idle
        if rule is None or rule.decision is not None or not self.recv_ns or self.phase == 0:
            # No rule, decided already, or a page that does not say its phase: it sends no
            # receipts either and would never hear the word, so it runs its phase fixed.
            return
        if self.phase > IDLE_PHASE:
            rule.page_moved_on = True  # the page ended the phase by itself: nothing left to decide
            return
        if rule.started_ns is None:
            rule.started_ns = now_ns  # the first probe's arrival: the phase's start, as the monitor sees it
        if now_ns - rule.last_ns < SETTLE_POLL_NS:
            return
        rule.last_ns = now_ns
        elapsed_s = (now_ns - rule.started_ns) / 1e9
        so_far = settle.stream_so_far(self._probes_so_far())
        judged = settle.judge_idle(so_far, rule.thresholds)
        decision = settle.decide(elapsed_s, rule.limits, judged)
        if decision.stop:
            assert decision.reason is not None
            means = (so_far.jitter_mean_up_ms, so_far.jitter_mean_down_ms)
            rule.decision = IdleDecision(round(elapsed_s, 3), decision.reason, decision.unsettled, means)
            rule.floor = decision.floor

    def settle_phases(self, now_ns: int) -> None:
        """Ask the stopping rule of the phase the page is in (``settle_idle``, ``settle_load``).
        Called after a probe's echo has gone out, so that no echo's times include the rule's work."""
        self.settle_idle(now_ns)
        self.settle_load(now_ns)

    def settle_load(self, now_ns: int) -> None:
        """Ask the throughput phase's stopping rule, at most every SETTLE_POLL_NS, while the page
        is in that phase and nothing has decided yet: the CLI's judgement (``settle.judge_load``)
        of the page's byte counts so far and of the delay under load from this stream's probes,
        against the idle phase's. A phase the page left before any decision ran fixed."""
        current = PHASES.get(self.phase)
        for name, rule in self.loads.items():
            if rule.decision is None and self.phase > _PHASE_CODES[name]:
                rule.page_moved_on = True
        rule = self.loads.get(current or "")
        if rule is None or rule.decision is not None or rule.page_moved_on or rule.start_ms is None or rule.last_sent_ms is None:
            return
        if now_ns - rule.last_ns < SETTLE_POLL_NS:
            return
        rule.last_ns = now_ns
        start_ns = round(rule.start_ms * 1e6)
        download = self.loads.get("download")
        # The idle phase is every probe sent before the first throughput phase began.
        idle_end_ns = round(download.start_ms * 1e6) if download is not None and download.start_ms is not None else start_ns
        loaded_from_ns = start_ns + round(rule.ramp_s * 1e9)
        idle, loaded = [], []
        for probe in self._probes_so_far():
            if probe.sent_ns < idle_end_ns:
                idle.append(probe)
            elif probe.sent_ns >= loaded_from_ns:
                loaded.append(probe)
        idle_rtts = settle.stream_so_far(idle).rtts_ms() if idle else []
        loaded_rtts = settle.stream_so_far(loaded).rtts_ms() if loaded else []
        floor = self._floor_before(current or "")
        elapsed_s = (rule.last_sent_ms - rule.start_ms) / 1000
        # The throughput is judged up to where the page's series is complete (an upload's bytes
        # are known once each request is answered), the phase's length on the page's clock.
        judged = settle.judge_load(rule.direction, rule.samples[-1][0], rule.samples, rule.ramp_s, loaded_rtts, idle_rtts, rule.thresholds, floor)
        decision = settle.decide(elapsed_s, settle.load_limits(rule.limits, rule.ramp_s, loaded_rtts), judged, floor)
        if decision.stop:
            assert decision.reason is not None
            rule.decision = LoadDecision(round(elapsed_s, 3), decision.reason, decision.unsettled, decision.floor)

    def _floor_before(self, name: str) -> str | None:
        """The severity the earlier phases' settled figures made certain (the CLI carries it on)."""
        download = self.loads.get("download")
        if name == "upload" and download is not None and download.decision is not None:
            return download.decision.floor
        return self.idle.floor if self.idle is not None else None

    def _probes_so_far(self) -> list[_Probe]:
        """The probes the monitor received, in sequence order, as ``settle.stream_so_far`` reads
        a flow: the page's send and arrival times, the monitor's receive and send times, and how
        many distinct probes up to each the monitor had received."""
        probes = []
        for count, seq in enumerate(sorted(self.recv_ns), start=1):
            arrival = self.arrival_ms.get(seq)
            probes.append(
                _Probe(seq, self.sent_ns[seq], None if arrival is None else round(arrival * 1e6), self.recv_ns[seq], self.send_ns.get(seq), count)
            )
        return probes

    def snapshot(self) -> StreamRecords:
        """A copy that later probes do not change."""
        return StreamRecords(
            self.rtc_id, self.owner, self.sent_ns.copy(), self.recv_ns.copy(), self.send_ns.copy(),
            self.duplicate_seqs.copy(), self.reordered_seqs.copy(), self.distinct, self.duplicates, self.reordered,
            self.highest, self.ignored, self.arrival_ms.copy(), self.phase, self.idle, loads=self.loads,
        )  # fmt: skip

    def _admit(self, now_ns: int) -> bool:
        if self._last_ns:
            self._allowance = min(BURST, self._allowance + max(0, now_ns - self._last_ns) / 1e9 * MAX_PPS)
        self._last_ns = now_ns
        if self._allowance < 1:
            return False
        self._allowance -= 1
        return True

    def send_times(self, sent: int) -> list[int]:
        """A send time (page clock, ns) for every seq below ``sent``: the probe's own where the
        monitor received it, else interpolated between the nearest received neighbours (the page
        sends at a fixed interval), extrapolated at the edges with the median spacing. Only to
        place a lost probe in its phase; no RTT is ever computed from an estimated time."""
        known = sorted(seq for seq in self.sent_ns if seq < sent)
        if not known:
            return [0] * sent
        steps = sorted((self.sent_ns[b] - self.sent_ns[a]) / (b - a) for a, b in itertools.pairwise(known))
        spacing = steps[len(steps) // 2] if steps else 0.0
        times = [0] * sent
        for seq in range(known[0]):
            times[seq] = round(self.sent_ns[known[0]] - (known[0] - seq) * spacing)
        for a, b in itertools.pairwise(known):
            times[a] = self.sent_ns[a]
            for seq in range(a + 1, b):
                times[seq] = round(self.sent_ns[a] + (seq - a) * (self.sent_ns[b] - self.sent_ns[a]) / (b - a))
        last = known[-1]
        times[last] = self.sent_ns[last]
        for seq in range(last + 1, sent):
            times[seq] = round(self.sent_ns[last] + (seq - last) * spacing)
        return times

    def flow_result(self, name: str, seqs: range, echoes: Iterable[tuple[int, float]], origin_ns: int) -> flow.FlowResult:
        """Analyse the probes ``seqs`` (renumbered from 0) with the page's ``[seq, arrival_ms]``
        echoes, in the order the page received them."""
        first = seqs.start
        sent_ns: dict[int, int] = {}
        found: dict[int, flow.Echo] = {}
        order: list[int] = []
        duplicate_echoes = reordered_echoes = 0
        highest = -1
        for seq, arrival_ms in echoes:
            if seq not in seqs or seq not in self.send_ns:
                continue  # outside this window, or an echo the monitor never sent
            index = seq - first
            if index in found:
                duplicate_echoes += 1
                continue
            sent_ns[index] = self.sent_ns[seq]
            found[index] = flow.Echo(round(arrival_ms * 1e6), self.recv_ns[seq], self.send_ns[seq])
            order.append(index)
            if index < highest:
                reordered_echoes += 1
            else:
                highest = index
        received_here = [seq for seq in seqs if seq in self.recv_ns]
        for seq in received_here:
            sent_ns.setdefault(seq - first, self.sent_ns[seq])
        totals = flow.ReflectorTotals(
            distinct=len(received_here),
            duplicates=sum(self.duplicate_seqs.get(seq, 0) for seq in received_here),
            reordered=sum(1 for seq in received_here if seq in self.reordered_seqs),
            highest=max((seq - first for seq in received_here), default=0),
        )
        return flow.analyse(
            name, len(seqs), sent_ns, found, order,
            duplicate_echoes=duplicate_echoes, reordered_echoes=reordered_echoes, totals=totals, origin_ns=origin_ns,
        )  # fmt: skip


def _window(times: list[int], span: tuple[float, float] | None, skip_s: float = 0.0) -> range | None:
    """The seqs whose send time falls within ``span`` (page ms), the first ``skip_s`` excluded.

    Compared in whole microseconds, the precision the page posts its phase marks in: a probe
    carries its send time unrounded, so the first probe, sent within a microsecond of the
    phase's mark, could otherwise fall before a mark that was rounded up, and out of the phase
    (seen in CI: 749 of 750 probes counted). Rounding is monotone, so a probe sent at or after
    the mark stays at or after it."""
    if span is None:
        return None
    start_us, end_us = round(span[0] * 1000 + skip_s * 1e6), round(span[1] * 1000)
    inside = [seq for seq, t in enumerate(times) if start_us <= round(t / 1000) < end_us]
    return range(inside[0], inside[-1] + 1) if inside else None


def network_of(
    records: StreamRecords,
    sent: int,
    echoes: list[tuple[int, float]],
    phases: Mapping[str, tuple[float, float] | None],
    *,
    ramp_s: float,
) -> schema.Network:
    """The check's network part from the monitor's records and the page's.

    Like the CLI: RTT, jitter, loss and counts from the idle phase (the whole stream when the
    page marked no idle phase); delay under load = median RTT of the probes sent during each load
    phase after its first ``ramp_s`` seconds (the throughput ramp, excluded as the CLI excludes
    it) minus the idle median. A probe's phase is decided by its send time on the page's clock.
    The jitter judged (mean |D|) is the one the monitor's idle rule settled on, over the probes
    it had when it decided; without a decision (the page ran its idle phase fixed), the idle
    phase's own.
    """
    sent = max(0, min(sent, MAX_PROBES))
    times = records.send_times(sent)
    origin = times[0] if times else 0
    idle_span = phases.get("idle")
    # With no probe received at all there is no send time to place one in a phase by: all of
    # them count (as idle), all lost on the way up.
    placed = idle_span is not None and any(seq < sent for seq in records.sent_ns)
    idle_seqs = _window(times, idle_span) if placed else range(sent)
    idle = records.flow_result("idle", idle_seqs or range(0), echoes, origin)
    loaded: dict[str, float | None] = {}
    for name in ("download", "upload"):
        seqs = _window(times, phases.get(name), ramp_s)
        rtts = records.flow_result(name, seqs, echoes, origin).rtts_ms() if seqs else []
        loaded[name] = flow.loaded_increase_ms(idle.rtts_ms(), rtts)
    udp_error = None
    if idle.sent and not idle.received:
        udp_error = "no echo came back over the WebRTC data channel"
    decided = records.idle.decision if records.idle is not None else None
    return flow.network(
        idle, loaded_down_ms=loaded["download"], loaded_up_ms=loaded["upload"], udp_error=udp_error,
        jitter_mean_ms=decided.jitter_mean_ms if decided is not None else None,
    )  # fmt: skip


def phase_runs(
    spans: Mapping[str, tuple[float, float] | None],
    idle: IdleRule | None,
    loads: Mapping[str, LoadRule] | None = None,
    failed: Iterable[str] = (),
) -> tuple[schema.PhaseRun, ...]:
    """The report's ``phases``: each phase the page ran, as long as its span on the page's clock,
    and why it stopped: the monitor's rule ("settled", "max_length", with the figures left
    unsettled and the limits), or "fixed_length" when the page ran it fixed (no rule for this
    stream, or the page moved on before the rule decided); "failed" for the throughput phases
    named in ``failed`` (the page measured no rate: as the CLI says of a phase that failed)."""
    rules: dict[str, IdleRule | LoadRule | None] = {"idle": idle, **(loads or {})}
    failed_phases = set(failed)
    runs = []
    for name in ("idle", "download", "upload"):
        span = spans.get(name)
        if span is None:
            continue
        seconds = round(max(0.0, span[1] - span[0]) / 1000, 3)
        rule = rules.get(name)
        if name in failed_phases:
            limits = rule.limits if isinstance(rule, LoadRule) else None
            runs.append(schema.PhaseRun(name, seconds, "failed", limits and limits.min_s, limits and limits.max_s))  # type: ignore[arg-type]
            continue
        decision = rule.decision if rule is not None else None
        if rule is None or decision is None:
            runs.append(schema.PhaseRun(name=name, seconds=seconds, stopped="fixed_length"))  # type: ignore[arg-type]
            continue
        unsettled = tuple(
            schema.Unsettled(j.figure, round(j.low, 6), round(j.high, 6) if math.isfinite(j.high) else None)  # type: ignore[arg-type]
            for j in decision.unsettled
        )
        runs.append(schema.PhaseRun(name, seconds, decision.stopped, rule.limits.min_s, rule.limits.max_s, unsettled))  # type: ignore[arg-type]
    return tuple(runs)


class RtcRefused(Exception):
    """A stream cannot start. ``status`` and ``code`` for the HTTP answer; ``str()`` one sentence."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Peer(Protocol):
    answer_sdp: str

    async def close(self) -> None: ...


# (records, offer SDP, the monitor's address the page reached or None, call when the peer ends
# by itself) -> the answered peer; raises RtcRefused.
PeerOpener = Callable[[StreamRecords, str, str | None, Callable[[], None]], Awaitable[Peer]]


@dataclass
class _Stream:
    records: StreamRecords
    peer: Peer | None = None
    expiry: asyncio.Task[None] | None = None


class RtcStreams:
    """The monitor's WebRTC probe streams: ``app[keys.RTC]``.

    At most ``max_peers`` at once (a new one beyond is refused, 503); each lives at most
    ``max_seconds``, after which its peer is closed and its records are forgotten. Peers come
    from ``open_peer`` (monitor.rtc.peer in the monitor; tests may hand in their own).
    """

    def __init__(
        self,
        open_peer: PeerOpener,
        *,
        max_peers: int,
        max_seconds: float,
        ramp_s: float,
        idle_limits: settle.PhaseLimits | None = None,
        load_limits: settle.PhaseLimits | None = None,
        thresholds: quality.Thresholds | None = None,
    ) -> None:
        self._open_peer = open_peer
        self.max_peers = max_peers
        self.max_seconds = max_seconds
        self.ramp_s = ramp_s
        # The idle phase's limits when it is adaptive (None: the page runs it fixed), and the
        # thresholds it is judged against: the ones the check's verdict uses.
        self.idle_limits = idle_limits
        # The throughput phases' limits when they are adaptive too (their ramp is ``ramp_s``).
        self.load_limits = load_limits
        self.thresholds = thresholds or quality.Thresholds()
        self._streams: dict[str, _Stream] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._streams)

    def records(self, rtc_id: str) -> StreamRecords | None:
        stream = self._streams.get(rtc_id)
        return stream.records if stream is not None else None

    async def start(self, owner: str, offer_sdp: str, reached: str | None = None) -> tuple[str, str]:
        """Answer the page's offer: ``(rtc_id, answer SDP)``. Raises RtcRefused. ``reached`` is
        the monitor's address the page's request arrived at."""
        if sum(1 for stream in self._streams.values() if stream.records.owner == owner) >= MAX_STREAMS_PER_OWNER:
            raise RtcRefused(429, "rtc_too_many", f"this link has {MAX_STREAMS_PER_OWNER} probe streams open already; they end within {self.max_seconds:g} s")
        if len(self._streams) >= self.max_peers:
            raise RtcRefused(503, "rtc_busy", f"the monitor runs {self.max_peers} probe streams already; try again in a minute")
        rtc_id = secrets.token_hex(16)
        idle = IdleRule(self.idle_limits, self.thresholds) if self.idle_limits is not None else None
        loads = {}
        if self.load_limits is not None:
            loads = {name: LoadRule(direction, self.load_limits, self.ramp_s, self.thresholds) for name, direction in (("download", "down"), ("upload", "up"))}
        stream = _Stream(StreamRecords(rtc_id, owner, idle=idle, loads=loads))  # type: ignore[arg-type]
        self._streams[rtc_id] = stream  # the slot is taken while the answer is being made
        try:
            stream.peer = await self._open_peer(stream.records, offer_sdp, reached, lambda: self._peer_ended(rtc_id))
        except BaseException:
            self._streams.pop(rtc_id, None)
            raise
        if self._streams.get(rtc_id) is not stream:  # closed while answering (shutdown)
            self._close_peer(stream)
            raise RtcRefused(503, "rtc_closed", "the monitor is shutting down")
        stream.expiry = asyncio.get_running_loop().create_task(self._expire(rtc_id), name=f"rtc-expiry-{rtc_id}")
        return rtc_id, stream.peer.answer_sdp

    async def _expire(self, rtc_id: str) -> None:
        await asyncio.sleep(self.max_seconds)
        self.close(rtc_id)

    def network_for(
        self, rtc_id: str, link_id: str, sent: int, echoes: list[tuple[int, float]], phases: Mapping[str, tuple[float, float] | None]
    ) -> schema.Network | None:
        """The check's network part (see ``network_of``); None when the stream is unknown (never
        started, expired, closed) or belongs to another link."""
        stream = self._streams.get(rtc_id)
        if stream is None or not secrets.compare_digest(stream.records.owner, link_id):
            return None
        # Called from a worker thread while the event loop may still record late probes: work
        # on a copy (each dict and set copy is one C call under the GIL, so it is consistent).
        return network_of(stream.records.snapshot(), sent, echoes, phases, ramp_s=self.ramp_s)

    def phases_for(
        self, rtc_id: str, link_id: str, spans: Mapping[str, tuple[float, float] | None], failed: Iterable[str] = ()
    ) -> tuple[schema.PhaseRun, ...] | None:
        """The check's ``phases`` (see ``phase_runs``); None when the stream is unknown or another
        link's."""
        stream = self._streams.get(rtc_id)
        if stream is None or not secrets.compare_digest(stream.records.owner, link_id):
            return None
        return phase_runs(spans, stream.records.idle, stream.records.loads, failed)

    def _peer_ended(self, rtc_id: str) -> None:
        """The page went away (or its connection failed): free the port, keep the records for
        the check the page may still submit (until ``close`` or the stream's lifetime ends)."""
        stream = self._streams.get(rtc_id)
        if stream is not None:
            self._close_peer(stream)

    def close(self, rtc_id: str) -> None:
        """End the stream and forget its records; nothing happens for an unknown id."""
        stream = self._streams.pop(rtc_id, None)
        if stream is None:
            return
        if stream.expiry is not None and stream.expiry is not asyncio.current_task():
            stream.expiry.cancel()
        self._close_peer(stream)

    def _close_peer(self, stream: _Stream) -> None:
        peer, stream.peer = stream.peer, None
        if peer is None:
            return
        task = asyncio.get_running_loop().create_task(peer.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every peer (the monitor is stopping) and wait until they are closed."""
        for rtc_id in list(self._streams):
            self.close(rtc_id)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
