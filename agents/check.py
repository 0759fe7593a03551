"""The pre-session check: measure this end's connection with the monitor and judge it.

Phases: an idle UDP stream; then a download and an upload over parallel HTTP streams while the
UDP stream keeps running (latency under load); optional TCP-connect times to the video
platform's servers and an optional speedtest.net measurement. ``run_check`` raises
``MonitorError`` only when the check cannot start (monitor unreachable, bad token); trouble
during a phase is recorded in the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import platform
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from agents.client import MonitorClient, MonitorError, ProbeSession
from agents.config import AgentConfig, RoomSection
from agents.probes import throughput
from agents.probes.machine import LocalHints, MachineResult, measure_machine
from agents.probes.room import Prompter, RoomResult, RoomSettings, measure_room
from agents.probes.speedtest import SpeedtestConfig, SpeedtestResult, measure_speedtest
from agents.probes.targets import (
    TargetResult,
    TargetSettings,
    measure_target,
    parse_target,
)
from agents.probes.udp_stream import (
    FlowResult,
    StreamSettings,
    UdpStream,
    UdpUnavailable,
)
from agents.runner import PhaseOutcome, Progress, run_phase
from sessionready import __version__, quality, schema, settle
from sessionready.facts import assess_check, machine_facts
from sessionready.flow import loaded_increase_ms, network
from sessionready.terms import SEVERITIES

# How often an adaptive phase asks whether its figures are settled.
SETTLE_POLL_S = 0.1


@dataclass(frozen=True)
class CheckOptions:
    # Fixed lengths; a phase with limits (below) is adaptive and runs between them instead.
    udp_seconds: float = 5.0
    measure_throughput: bool = True
    throughput: throughput.ThroughputSettings = field(default_factory=throughput.ThroughputSettings)
    stream: StreamSettings = field(default_factory=StreamSettings)
    targets: tuple[str, ...] = ()
    speedtest: bool = False
    speedtest_config: SpeedtestConfig = field(default_factory=SpeedtestConfig)
    session_id: str | None = None
    thresholds: quality.Thresholds = field(default_factory=quality.Thresholds)
    measure_machine: bool = True
    # Traffic and CPU are sampled over this window before the check sends anything.
    machine_window_s: float = 1.0
    # None: the microphone is not opened at all (--no-audio, or not allowed by config).
    room: RoomSettings | None = None
    room_not_allowed: bool = False
    # Adaptive length (sessionready.settle): the idle phase and each throughput phase stop once
    # their figures are settled, within these limits. None: that phase runs its fixed length.
    idle_limits: settle.PhaseLimits | None = None
    load_limits: settle.PhaseLimits | None = None

    @classmethod
    def from_config(
        cls,
        config: AgentConfig,
        *,
        session_id: str | None = None,
        udp_seconds: float | None = None,
        load_seconds: float | None = None,
        fixed_length: bool = False,
        streams: int | None = None,
        targets: Sequence[str] | None = None,
        speedtest: bool = False,
        measure_throughput: bool = True,
        measure_machine: bool = True,
        audio: bool = True,
        interactive: bool = False,
    ) -> CheckOptions:
        """The check as the config describes it, for ``sessionready check`` and the daemon alike.

        A keyword that is given (not None) wins over the config, as a command-line option does;
        ``udp_seconds`` and ``load_seconds`` make that phase fixed, ``fixed_length`` every phase
        (as ``[check] adaptive = false``); ``speedtest=True`` adds the speedtest to a config without it. ``audio=False`` keeps the
        microphone closed whatever the config allows; ``interactive`` asks the person to stay
        quiet and read a sentence. ValueError, one sentence, for a target that is not HOST:PORT
        or more than MAX_TARGETS of them.
        """
        check = config.check
        raw_targets = check.targets if targets is None else targets
        if len(raw_targets) > MAX_TARGETS:
            raise ValueError(f"at most {MAX_TARGETS} targets, got {len(raw_targets)}")
        adaptive = check.adaptive and not fixed_length
        idle_limits = settle.PhaseLimits(check.udp_min_seconds, check.udp_max_seconds) if adaptive and udp_seconds is None else None
        load_limits = settle.PhaseLimits(check.load_min_seconds, check.load_max_seconds) if adaptive and load_seconds is None else None
        udp_s = udp_seconds or check.udp_seconds
        load_s = load_limits.max_s if load_limits is not None else (load_seconds or check.load_seconds)
        # A short phase keeps at least half of itself for the measurement window.
        shortest_load = load_limits.min_s if load_limits is not None else load_s
        load = throughput.ThroughputSettings(seconds=load_s, ramp_seconds=min(check.ramp_seconds, shortest_load / 2), streams=streams or check.streams)
        room = None
        if audio and config.room.microphone:
            # Passive listening lasts as long as the network phases, which run meanwhile: as
            # long as their shortest, so that the room never holds up a check that settled.
            idle_s = idle_limits.min_s if idle_limits is not None else udp_s
            network_s = idle_s + (2 * shortest_load if measure_throughput else 0)
            room = room_settings(config.room, seconds=max(1.0, network_s - 1.0), interactive=interactive)
        return cls(
            udp_seconds=udp_s,
            measure_throughput=measure_throughput,
            throughput=load,
            # Normalised (no stray spaces), in the form the monitor's schema accepts.
            targets=tuple(_host_port(*parse_target(target)) for target in raw_targets),
            speedtest=speedtest or check.speedtest,
            speedtest_config=SpeedtestConfig(servers=tuple(check.speedtest_servers)),
            session_id=session_id,
            thresholds=config.thresholds,
            measure_machine=measure_machine,
            room=room,
            room_not_allowed=audio and not config.room.microphone,
            idle_limits=idle_limits,
            load_limits=load_limits if measure_throughput else None,
        )


MAX_TARGETS = 16


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def room_settings(room: RoomSection, **more: object) -> RoomSettings:
    """The microphone as the config's ``[room]`` names it: digits are a device index, other text
    a device name, "" the default. ``more``: further RoomSettings fields (seconds, interactive)."""
    device = room.device or None
    return RoomSettings(
        device=int(device) if device and device.isdigit() else device,  # type: ignore[arg-type]
        calibration_offset_db=room.calibration_offset_db,
        **more,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class CheckRun:
    """The report, and what only the person at this machine may see (never sent or stored)."""

    report: schema.CheckReport
    machine_hints: LocalHints | None
    room_error: str | None = None


# Beyond its phase, a key must last through the drain of late echoes and the totals request.
KEY_MARGIN_S = 10.0


async def _probe_key(client: MonitorClient, phase_s: float) -> ProbeSession:
    session = await client.probe_session()
    if session.lifetime_s < phase_s + KEY_MARGIN_S:
        raise MonitorError(
            f"the monitor's probe keys last {session.lifetime_s:.0f} s, too short for a {phase_s:g} s phase: "
            "use shorter phases (--udp-seconds, --load-seconds) or raise probe_key_ttl_s on the monitor"
        )
    return session


@contextlib.asynccontextmanager
async def _entered(stream: UdpStream) -> AsyncIterator[UdpStream]:
    # The stream was entered by hand so that a bad address becomes MonitorError before any
    # phase starts; this closes it like ``async with`` would.
    try:
        yield stream
    finally:
        await stream.__aexit__(None, None, None)


def agent_os() -> str:
    system = platform.system().lower()
    return {"linux": "linux", "darwin": "macos", "windows": "windows"}.get(system, "other")


async def run_check(
    client: MonitorClient, options: CheckOptions, progress: Progress, prompter: Prompter | None = None
) -> CheckRun:
    started_at = datetime.now(UTC)
    started = time.monotonic()
    machine: MachineResult | None = None
    machine_failure: str | None = None  # the phase's code when it did not finish
    if options.measure_machine:
        # First, before this check sends anything: the traffic seen now is someone else's.
        outcome = await run_phase(
            "machine",
            "Checking this computer",
            measure_machine(options.machine_window_s),
            expected_s=options.machine_window_s,
            timeout_s=options.machine_window_s + 15,
            progress=progress,
        )
        machine, machine_failure = outcome.value, outcome.failure
    # What the machine already makes certain: a threshold below it cannot change the verdict.
    machine_floor = _machine_floor(machine, options.thresholds)
    # One key per phase, fetched as the phase starts: the reflector counts each phase
    # separately, and a key never has to outlive its own phase (keys are short-lived).
    first = await _probe_key(client, options.idle_limits.max_s if options.idle_limits is not None else options.udp_seconds)
    udp_host, udp_port = first.udp_host, first.udp_port

    targets_task = asyncio.gather(*(measure_target(t, TargetSettings()) for t in options.targets)) if options.targets else None
    loads: dict[str, PhaseOutcome[throughput.ThroughputResult]] = {}
    phases: list[schema.PhaseRun] = []
    # The room is heard while the network phases run: it costs the person no extra time.
    room_task = asyncio.create_task(_listen(options.room, prompter, progress)) if options.room is not None else None
    try:
        stream_context = await UdpStream(udp_host, udp_port, options.stream).__aenter__()
    except UdpUnavailable as error:
        if room_task is not None:
            room_task.cancel()
        raise MonitorError(str(error)) from None
    async with _entered(stream_context) as stream:
        stream.start_flow("idle", first.key)
        idle_s = options.idle_limits.max_s if options.idle_limits is not None else options.udp_seconds
        idle = await run_phase(
            "idle",
            "Measuring delay and packet loss",
            _idle(stream, first.key, options, machine_floor),
            expected_s=idle_s,
            timeout_s=idle_s + 5,
            progress=progress,
        )
        floor = idle.value.floor if idle.value is not None else machine_floor
        phases.append(_phase_run("idle", idle, options.idle_limits))
        idle_rtts = settle.stream_so_far(stream.probes(first.key)).rtts_ms()
        for name, label in (("download", "Measuring download"), ("upload", "Measuring upload")):
            if not options.measure_throughput:
                break
            key = (await _probe_key(client, options.throughput.seconds)).key
            stream.start_flow(name, key)
            direction: Literal["down", "up"] = "down" if name == "download" else "up"
            rule = _LoadRule(stream, key, direction, idle_rtts, options, floor) if options.load_limits is not None else None
            loads[name] = await run_phase(
                name,
                label,
                throughput.measure(client, direction, options.throughput, stop=rule),
                expected_s=options.throughput.seconds,
                timeout_s=options.throughput.seconds + 10,
                progress=progress,
            )
            ran = _load_ran(loads[name], rule)
            floor = ran.value.floor if ran.value is not None else floor
            phases.append(_phase_run(name, ran, options.load_limits))
        progress.phase_started("finish", "Collecting the last answers", 1.0)
        flows = {flow.name: flow for flow in await stream.finish()}
        progress.phase_finished("finish", "done")
    target_results: list[TargetResult] = list(await targets_task) if targets_task is not None else []
    heard = await room_task if room_task is not None else None
    room = heard.value if heard is not None else None

    speed: SpeedtestResult | None = None
    if options.speedtest:
        outcome = await run_phase(
            "speedtest",
            "Measuring against speedtest.net",
            measure_speedtest(options.speedtest_config),
            expected_s=20,
            timeout_s=options.speedtest_config.timeout_s + 5,
            progress=progress,
        )
        speed = outcome.value or SpeedtestResult(False, None, None, None, None, outcome.error, outcome.duration_s)

    network = _network(flows, loads, options, udp_host, udp_port, idle.value.jitter_mean_ms if idle.value is not None else None)
    # A phase that did not finish is kept as its code: unlike --no-machine or --no-audio.
    machine_wire = _machine(machine) if machine is not None else (_machine_failed(machine_failure) if machine_failure else None)
    if room is not None:
        room_wire: schema.Room | None = _room(room)
    elif heard is not None and heard.failure is not None:
        room_wire = _room_unavailable(heard.failure)
    else:
        room_wire = _room_unavailable("not_allowed") if options.room_not_allowed else None
    assessment = assess_check(network, machine_wire, room_wire, options.thresholds)
    # Figures still unsettled at their phase's longest: said so, never settled by a toss. Read
    # from the phases as the report carries them, by the rule the monitor, the risk engine and
    # the browser check apply to a stored check, so all of them say the same words.
    if extra := settle.borderline_of_phases(phases):
        reasons = sorted([*assessment.reasons, *extra], key=lambda r: SEVERITIES.index(r.severity))
        assessment = replace(assessment, reasons=tuple(reasons), verdict=quality.verdict_from_reasons(reasons))
    report = schema.CheckReport(
        schema_version=1,
        check_id=uuid.uuid4().hex,
        started_at=started_at.isoformat(timespec="milliseconds"),
        duration_s=round(time.monotonic() - started, 3),
        session_id=options.session_id,
        agent=schema.Agent(version=__version__, os=agent_os()),
        verdict=assessment.verdict,
        reasons=tuple(schema.Reason(r.code, r.severity, r.message, r.fix) for r in assessment.reasons),
        network=network,
        targets=tuple(_target(t) for t in target_results),
        speedtest=None if speed is None else _speedtest(speed),
        quality=schema.Quality(
            r_factor=None if assessment.r_factor is None else round(assessment.r_factor, 1),
            mos=None if assessment.mos is None else round(assessment.mos, 2),
            video_tier=assessment.video_tier,
        ),
        settings=schema.CheckSettings(
            udp_seconds=options.udp_seconds,
            load_seconds=options.throughput.seconds if options.measure_throughput else 0.0,
            ramp_seconds=options.throughput.ramp_seconds,
            packet_interval_ms=options.stream.interval_ms,
            packet_bytes=options.stream.packet_bytes,
            streams=options.throughput.streams if options.measure_throughput else 0,
            adaptive=options.idle_limits is not None or options.load_limits is not None,
        ),
        machine=machine_wire,
        room=room_wire,
        phases=tuple(phases),
    )
    room_error = room.error if room is not None else (heard.error if heard is not None else None)
    return CheckRun(report, machine.local_hints if machine is not None else None, room_error)


@dataclass(frozen=True)
class _Ran:
    """How an adaptive or fixed phase ended: its length (s), why, what was still unsettled,
    and the severity its settled figures made certain (carried into the next phase). The idle
    phase also keeps its mean |D| per direction (up, down) in ms over the probes answered when
    it ended: the jitter the rule settled is the one the report carries and the verdict reads."""

    seconds: float
    stopped: settle.StopReason
    unsettled: tuple[settle.Judged, ...] = ()
    floor: str | None = None
    jitter_mean_ms: tuple[float | None, float | None] | None = None


def _machine_floor(machine: MachineResult | None, thresholds: quality.Thresholds) -> str | None:
    """The most severe grade the machine's own reasons give (None: none, or not measured).

    Judged with a network that measured nothing, so that only the machine speaks."""
    if machine is None:
        return None
    nothing = quality.NetworkFacts(
        rtt_p50_ms=None, rtt_p95_ms=None, jitter_up_ms=None, jitter_down_ms=None, loss_up_ratio=None, loss_down_ratio=None,
        loss_up_ci95=None, loss_down_ci95=None, packets_sent=1, packets_received=1, throughput_down_mbps=None,
        throughput_up_mbps=None, loaded_latency_down_ms=None, loaded_latency_up_ms=None,
    )  # fmt: skip
    verdict = quality.assess(nothing, thresholds, machine=machine_facts(_machine(machine))).verdict
    return {"ready": None, "at_risk": "warning", "not_ready": "critical"}[verdict]


async def _idle(stream: UdpStream, key: bytes, options: CheckOptions, floor: str | None) -> _Ran:
    """The idle phase: a fixed sleep, or until the stream's figures are settled."""
    started = time.monotonic()
    limits = options.idle_limits
    if limits is None:
        await asyncio.sleep(options.udp_seconds)
        return _Ran(time.monotonic() - started, "fixed_length", jitter_mean_ms=_jitter_means(settle.stream_so_far(stream.probes(key))))
    while True:
        # The last look falls on the maximum itself, not up to a poll past it.
        await asyncio.sleep(min(SETTLE_POLL_S, max(0.0, limits.max_s - (time.monotonic() - started))))
        elapsed = time.monotonic() - started
        so_far = settle.stream_so_far(stream.probes(key))
        judged = settle.judge_idle(so_far, options.thresholds, floor)
        decision = settle.decide(elapsed, limits, judged, floor)
        if decision.stop:
            assert decision.reason is not None
            return _Ran(elapsed, decision.reason, decision.unsettled, decision.floor, _jitter_means(so_far))


def _jitter_means(so_far: settle.StreamSoFar) -> tuple[float | None, float | None]:
    # Echoes still in flight when the phase ends would move the figure after the decision.
    return (so_far.jitter_mean_up_ms, so_far.jitter_mean_down_ms)


class _LoadRule:
    """The stop rule of one throughput phase: its delay under load (from the UDP flow that runs
    meanwhile) and its rate, judged by sessionready.settle; keeps the last decision."""

    def __init__(
        self, stream: UdpStream, key: bytes, direction: Literal["down", "up"], idle_rtts: list[float], options: CheckOptions, floor: str | None
    ) -> None:
        assert options.load_limits is not None
        self._stream, self._key, self._direction, self._idle_rtts = stream, key, direction, idle_rtts
        self._limits, self._ramp_s, self._thresholds, self._floor = options.load_limits, options.throughput.ramp_seconds, options.thresholds, floor
        self.last: settle.Decision | None = None

    def __call__(self, elapsed_s: float, samples: Sequence[tuple[float, int]]) -> bool:
        loaded = settle.stream_so_far(self._stream.probes(self._key)).rtts_ms(after_s=self._ramp_s)
        judged = settle.judge_load(self._direction, elapsed_s, samples, self._ramp_s, loaded, self._idle_rtts, self._thresholds, self._floor)
        self.last = settle.decide(elapsed_s, settle.load_limits(self._limits, self._ramp_s, loaded), judged, self._floor)
        return self.last.stop


def _load_ran(outcome: PhaseOutcome[throughput.ThroughputResult], rule: _LoadRule | None) -> PhaseOutcome[_Ran]:
    if outcome.value is None:
        return PhaseOutcome(outcome.name, None, outcome.error, outcome.duration_s, outcome.failure)
    last = rule.last if rule is not None else None
    if outcome.value.mbps is None:
        # Refused by the monitor (ended at once), or no data moved: nothing was measured that
        # a longer phase could have settled, and no interval of it is borderline.
        ran = _Ran(outcome.duration_s, "failed")
    elif rule is None:
        ran = _Ran(outcome.duration_s, "fixed_length")
    elif last is not None and last.stop:
        ran = _Ran(outcome.duration_s, last.reason or "settled", last.unsettled, last.floor)
    else:
        # The phase reached its longest before the rule said stop.
        ran = _Ran(outcome.duration_s, "max_length", last.unsettled if last else (), last.floor if last else None)
    return PhaseOutcome(outcome.name, ran, outcome.error, outcome.duration_s, outcome.failure)


def _phase_run(name: Literal["idle", "download", "upload"], outcome: PhaseOutcome[_Ran], limits: settle.PhaseLimits | None) -> schema.PhaseRun:
    ran = outcome.value
    unsettled = () if ran is None else tuple(
        schema.Unsettled(j.figure, round(j.low, 6), round(j.high, 6) if math.isfinite(j.high) else None)  # type: ignore[arg-type]
        for j in ran.unsettled
    )
    return schema.PhaseRun(
        name=name,
        seconds=round(outcome.duration_s, 3),
        stopped="failed" if ran is None else ran.stopped,
        min_s=None if limits is None else limits.min_s,
        max_s=None if limits is None else limits.max_s,
        unsettled=unsettled,
    )


async def _listen(settings: RoomSettings, prompter: Prompter | None, progress: Progress) -> PhaseOutcome[RoomResult]:
    # Interactive mode needs the person to see the prompts; without a prompter, listen passively.
    if prompter is None and settings.interactive:
        settings = replace(settings, interactive=False)
    duration = settings.quiet_seconds + settings.speech_seconds + settings.settle_seconds if settings.interactive else settings.seconds
    # Import the audio stack in a worker thread: on the event loop it would hold up the UDP
    # probes of the idle phase for a fifth of a second.
    await asyncio.to_thread(_preload_audio)
    # Opening a first stream can take 2 s and a dead microphone is only given up after 6 s.
    return await run_phase(
        "room",
        "Listening to the room",
        measure_room(settings, prompter=prompter),
        expected_s=duration,
        timeout_s=duration + 15,
        progress=progress,
    )


def _preload_audio() -> None:
    for module in ("numpy", "agents.probes.room.analyser", "agents.probes.room.capture"):
        try:
            importlib.import_module(module)
        except (ImportError, OSError):
            return  # the probe reports what is missing


def _room(result: RoomResult) -> schema.Room:
    """The wire form: numbers and flags only; the probe's error sentence stays on this machine."""

    def rounded(value: float | None, digits: int = 1) -> float | None:
        return None if value is None else round(value, digits)

    return schema.Room(
        available=result.available,
        problem=result.problem,
        mode=result.mode,
        laeq_dbfs=rounded(result.laeq_dbfs),
        l90_dbfs=rounded(result.l90_dbfs),
        l10_dbfs=rounded(result.l10_dbfs),
        lmax_dbfs=rounded(result.lmax_dbfs),
        voice_ratio=rounded(result.voice_ratio, 3),
        snr_db=rounded(result.snr_db),
        speech_detected=result.speech_detected,
        calibrated=result.calibrated,
        silent=result.silent,
        clipping_ratio=rounded(result.clipping_ratio, 5),
    )


def _room_unavailable(problem: Literal["not_allowed", "probe_timeout", "probe_failed"]) -> schema.Room:
    """No room numbers, and why: the person's config forbids the microphone, or the check's own
    listening phase did not finish."""
    return schema.Room(
        available=False, problem=problem, mode="passive", laeq_dbfs=None, l90_dbfs=None, l10_dbfs=None,
        lmax_dbfs=None, voice_ratio=None, snr_db=None, speech_detected=None, calibrated=False, silent=False,
        clipping_ratio=None,
    )  # fmt: skip


def _machine_failed(failure: str) -> schema.Machine:
    """The machine phase did not finish: no numbers, the failure's code as the error."""
    return schema.Machine(
        cpu_pct=None, memory_available_pct=None, swap_bytes_per_s=None, battery_pct=None, battery_charging=None,
        battery_time_left_s=None, link=schema.Link(type="unknown", speed_mbps=None, wifi_signal_dbm=None),
        background_traffic_mbps=schema.Throughput(down=None, up=None), error=failure,
    )  # fmt: skip


def _machine(result: MachineResult) -> schema.Machine:
    """The wire form, field by field: the local hints (program names) have no way in."""

    def rounded(value: float | None, digits: int = 1) -> float | None:
        return None if value is None else round(value, digits)

    return schema.Machine(
        cpu_pct=rounded(result.cpu_pct),
        memory_available_pct=rounded(result.memory_available_pct),
        swap_bytes_per_s=rounded(result.swap_bytes_per_s, 0),
        battery_pct=rounded(result.battery_pct),
        battery_charging=result.battery_charging,
        battery_time_left_s=rounded(result.battery_time_left_s, 0),
        link=schema.Link(
            type=result.link.type,
            speed_mbps=rounded(result.link.speed_mbps),
            wifi_signal_dbm=rounded(result.link.wifi_signal_dbm),
        ),
        background_traffic_mbps=schema.Throughput(
            down=_mbps(result.background_traffic_mbps_down), up=_mbps(result.background_traffic_mbps_up)
        ),
        error=result.error[: schema.MAX_TEXT] if result.error else None,
    )


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _mbps(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _network(
    flows: dict[str, FlowResult],
    loads: dict[str, PhaseOutcome[throughput.ThroughputResult]],
    options: CheckOptions,
    udp_host: str,
    udp_port: int,
    jitter_mean_ms: tuple[float | None, float | None] | None = None,
) -> schema.Network:
    idle = flows["idle"]
    udp_error = None
    if idle.sent and not idle.received:
        udp_error = f"no UDP answer from the monitor's reflector at {udp_host}:{udp_port}"
    # Latency under load: the median RTT of each load phase once its ramp-up is over, minus idle.
    loaded: dict[str, float | None] = {"download": None, "upload": None}
    for name in loaded:
        flow = flows.get(name)
        rtts = flow.rtts_ms(after_s=options.throughput.ramp_seconds) if flow else []
        loaded[name] = loaded_increase_ms(idle.rtts_ms(), rtts)
    down, up = loads.get("download"), loads.get("upload")
    errors = [o.error or (o.value.error if o.value else None) for o in (down, up) if o is not None]
    return network(
        idle,
        loaded_down_ms=loaded["download"],
        loaded_up_ms=loaded["upload"],
        throughput=schema.Throughput(down=_mbps(_rate(down)), up=_mbps(_rate(up))),
        udp_error=udp_error,
        throughput_error=next((e for e in errors if e), None),
        jitter_mean_ms=jitter_mean_ms,
    )


def _rate(outcome: PhaseOutcome[throughput.ThroughputResult] | None) -> float | None:
    return outcome.value.mbps if outcome is not None and outcome.value is not None else None


def _target(result: TargetResult) -> schema.TargetResult:
    connect = schema.RttMs(*(round(v, 3) for v in result.connect_ms)) if result.connect_ms else None
    return schema.TargetResult(result.target, connect, result.attempts, result.failures, result.error)


def _speedtest(result: SpeedtestResult) -> schema.Speedtest:
    return schema.Speedtest(
        available=result.available,
        download_mbps=_mbps(result.download_mbps),
        upload_mbps=_mbps(result.upload_mbps),
        ping_ms=_ms(result.ping_ms),
        server=result.server[:200] if result.server else None,
        error=result.error[: schema.MAX_TEXT] if result.error else None,
    )
