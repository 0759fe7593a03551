"""The check report: what ``sessionready check --json`` prints and the monitor ingests.

Field names are public API (documented in docs/api.md). Units are in the names: ``_ms``
milliseconds, ``_mbps`` megabits per second (10^6 bit/s), ``_s`` seconds; loss values are
ratios within 0..1. Nothing here may identify a person: ids are pseudonymous, there are no
host names, no process names and no free text typed by anyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from sessionready.quality import REASON_CODES
from sessionready.terms import CHECK_ID_PATTERN, ID_PATTERN
from sessionready.typed import limits

SCHEMA_VERSION = 1
LinkType = Literal["wired", "wifi", "cellular", "other", "unknown"]
OsName = Literal["linux", "macos", "windows", "other"]
LINK_TYPES: tuple[LinkType, ...] = get_args(LinkType)  # for filters and enums elsewhere
OS_NAMES: tuple[OsName, ...] = get_args(OsName)
MAX_MS = 600_000.0  # ten minutes: anything longer is not a network delay
MAX_MBPS = 100_000.0
MAX_PACKETS = 10_000_000
MAX_TEXT = 400

Ms = float
Ratio = float

_ms = limits(ge=0, le=MAX_MS)
_ratio = limits(ge=0, le=1)
_mbps = limits(ge=0, le=MAX_MBPS)
_count = limits(ge=0, le=MAX_PACKETS)
_text = limits(max_len=MAX_TEXT)


@dataclass(frozen=True)
class RttMs:
    """Round-trip time in milliseconds."""

    min: float = field(metadata=_ms)
    p50: float = field(metadata=_ms)
    p95: float = field(metadata=_ms)


@dataclass(frozen=True)
class DirectionMs:
    """A delay value per direction in milliseconds; up = this machine to the monitor."""

    up: float | None = field(metadata=_ms)
    down: float | None = field(metadata=_ms)


@dataclass(frozen=True)
class Loss:
    """Packet loss ratio per direction (0..1) with its Wilson 95 % confidence interval."""

    up: float = field(metadata=_ratio)
    down: float = field(metadata=_ratio)
    up_ci95: tuple[float, float] = field(metadata=_ratio)
    down_ci95: tuple[float, float] = field(metadata=_ratio)


@dataclass(frozen=True)
class Packets:
    """Probe packets: sent by this machine, received back as echoes, and received by the
    reflector (null when its totals never arrived; loss then counts as upstream)."""

    sent: int = field(metadata=_count)
    received: int = field(metadata=_count)
    reflected: int | None = field(metadata=_count)


@dataclass(frozen=True)
class Counts:
    """A packet count per direction."""

    up: int = field(metadata=_count)
    down: int = field(metadata=_count)


@dataclass(frozen=True)
class Throughput:
    """Sustained throughput in megabits per second, TCP ramp-up excluded."""

    down: float | None = field(metadata=_mbps)
    up: float | None = field(metadata=_mbps)


@dataclass(frozen=True)
class LoadedLatency:
    """Increase of median round-trip time over the idle median while downloading / uploading (ms).

    Negative values are possible by chance and kept: they mean "no increase"."""

    down: float | None = field(metadata=limits(ge=-MAX_MS, le=MAX_MS))
    up: float | None = field(metadata=limits(ge=-MAX_MS, le=MAX_MS))


@dataclass(frozen=True)
class Network:
    """Measured between this machine and the monitor (``path`` = "monitor")."""

    path: Literal["monitor"]
    rtt_ms: RttMs | None
    jitter_ms: DirectionMs | None
    loss: Loss | None
    packets: Packets
    reordered: Counts
    duplicates: Counts
    throughput_mbps: Throughput
    loaded_latency_ms: LoadedLatency
    udp_error: str | None = field(metadata=_text)
    throughput_error: str | None = field(metadata=_text)
    # Per direction, the mean of |D| (RFC 3550's transit differences) over the idle phase's
    # probes up to its end: the jitter the verdict judges. ``jitter_ms`` keeps RFC 3550's
    # running estimate J, whose last value never converges. None: a report from before this
    # field (judged on ``jitter_ms``), or too few echoes.
    jitter_mean_ms: DirectionMs | None = None


@dataclass(frozen=True)
class TargetResult:
    """TCP-connect round trip to a server of the video platform (``path`` = "target")."""

    target: str = field(metadata=limits(max_len=260, pattern=r"[A-Za-z0-9.:\[\]_-]+:[0-9]{1,5}"))
    connect_ms: RttMs | None
    attempts: int = field(metadata=limits(ge=0, le=100))
    failures: int = field(metadata=limits(ge=0, le=100))
    error: str | None = field(metadata=_text)


@dataclass(frozen=True)
class Speedtest:
    """Public-internet throughput from speedtest.net servers (``path`` = "speedtest"); often unavailable."""

    available: bool
    download_mbps: float | None = field(metadata=_mbps)
    upload_mbps: float | None = field(metadata=_mbps)
    ping_ms: float | None = field(metadata=_ms)
    server: str | None = field(metadata=limits(max_len=200))
    error: str | None = field(metadata=_text)


@dataclass(frozen=True)
class Reason:
    """Why the verdict is not simply "ready", with a fix in plain words."""

    code: str = field(metadata=limits(one_of=REASON_CODES))
    severity: Literal["info", "warning", "critical"]
    message: str = field(metadata=_text)
    fix: str = field(metadata=_text)


@dataclass(frozen=True)
class Quality:
    """Expected quality: ITU-T G.107 R-factor (0..100), MOS (1..4.5), best sustainable video tier."""

    r_factor: float | None = field(metadata=limits(ge=0, le=100))
    mos: float | None = field(metadata=limits(ge=1, le=5))
    video_tier: str = field(metadata=limits(max_len=20, pattern=r"[a-z0-9_]+"))


@dataclass(frozen=True)
class Link:
    """The interface carrying the default route. No interface name, SSID or address."""

    type: LinkType
    speed_mbps: float | None = field(metadata=_mbps)
    wifi_signal_dbm: float | None = field(metadata=limits(ge=-150, le=0))


@dataclass(frozen=True)
class Machine:
    """This computer's health while the check ran. Never process names, host names or SSIDs."""

    cpu_pct: float | None = field(metadata=limits(ge=0, le=100))
    memory_available_pct: float | None = field(metadata=limits(ge=0, le=100))
    swap_bytes_per_s: float | None = field(metadata=limits(ge=0, le=1e12))
    battery_pct: float | None = field(metadata=limits(ge=0, le=100))
    battery_charging: bool | None
    battery_time_left_s: float | None = field(metadata=limits(ge=0, le=1e7))
    link: Link
    background_traffic_mbps: Throughput
    # What went wrong reading the machine; "probe_timeout" or "probe_failed" (and every number
    # null) when the check's machine phase did not finish, unlike a check run without it.
    error: str | None = field(metadata=_text)


@dataclass(frozen=True)
class Room:
    """Summary levels of the room's sound. Levels in dBFS(A), or dBA when ``calibrated``.

    Audio itself never leaves the process that captured it; these numbers are all that does."""

    available: bool
    # not_installed: this install has no audio support (the 'audio' extra); not_allowed: the
    # person's config does not allow the microphone. device_error with available=True: the
    # microphone stopped part-way and the numbers cover what was heard. probe_timeout,
    # probe_failed: the check's own listening phase did not finish (not the microphone's fault).
    problem: Literal["not_installed", "no_portaudio", "no_device", "device_busy", "device_error", "not_allowed", "probe_timeout", "probe_failed"] | None
    mode: Literal["passive", "interactive"]
    laeq_dbfs: float | None = field(metadata=limits(ge=-200, le=200))
    l90_dbfs: float | None = field(metadata=limits(ge=-200, le=200))
    l10_dbfs: float | None = field(metadata=limits(ge=-200, le=200))
    lmax_dbfs: float | None = field(metadata=limits(ge=-200, le=200))
    voice_ratio: float | None = field(metadata=_ratio)
    snr_db: float | None = field(metadata=limits(ge=-200, le=200))
    speech_detected: bool | None
    calibrated: bool
    silent: bool
    clipping_ratio: float | None = field(metadata=_ratio)


@dataclass(frozen=True)
class CheckSettings:
    """How the check ran, so every number can be explained."""

    udp_seconds: float = field(metadata=limits(ge=0, le=3600))
    load_seconds: float = field(metadata=limits(ge=0, le=600))
    ramp_seconds: float = field(metadata=limits(ge=0, le=600))
    packet_interval_ms: float = field(metadata=limits(ge=1, le=1000))
    packet_bytes: int = field(metadata=limits(ge=0, le=1472))
    streams: int = field(metadata=limits(ge=0, le=64))
    # Adaptive length (sessionready.settle): True = each phase stopped once settled, between
    # its min and max; False = fixed phases of udp_seconds and load_seconds. None: an agent or
    # a browser check from before adaptive length.
    adaptive: bool | None = None


@dataclass(frozen=True)
class Unsettled:
    """A figure still unsettled when its phase stopped: its 95 % interval, point estimate
    included, in the figure's unit (loss a ratio, delays ms, throughput Mbit/s, sound quality
    MOS). ``high`` None: too few samples for any interval."""

    figure: Literal[
        "delay", "jitter_up", "jitter_down", "loss_up", "loss_down", "audio_quality",
        "loaded_latency_down", "loaded_latency_up", "throughput_down", "throughput_up",
    ]  # fmt: skip
    low: float = field(metadata=limits(ge=-MAX_MS, le=MAX_MS))  # a delay increase may be negative
    high: float | None = field(metadata=limits(ge=-MAX_MS, le=MAX_MS))


@dataclass(frozen=True)
class PhaseRun:
    """How long one network phase ran and why it stopped: ``settled`` (every figure that could
    change the verdict was settled), ``max_length`` (its longest; ``unsettled`` lists what was
    not), ``fixed_length`` (a fixed phase), ``failed`` (the phase did not finish)."""

    name: Literal["idle", "download", "upload"]
    seconds: float = field(metadata=limits(ge=0, le=3600))
    stopped: Literal["settled", "max_length", "fixed_length", "failed"]
    min_s: float | None = field(default=None, metadata=limits(ge=0, le=3600))
    max_s: float | None = field(default=None, metadata=limits(ge=0, le=3600))
    unsettled: tuple[Unsettled, ...] = field(default=(), metadata=limits(max_len=16))


@dataclass(frozen=True)
class Agent:
    """The software that ran the check. No host names, no user names."""

    version: str = field(metadata=limits(max_len=32))
    os: OsName


BrowserFamily = Literal["chrome", "edge", "firefox", "safari", "other"]
BROWSER_FAMILIES: tuple[BrowserFamily, ...] = get_args(BrowserFamily)
# A browser check keeps only the browser's family and major version, e.g. "chrome 131".
BROWSER_PATTERN = rf"({'|'.join(BROWSER_FAMILIES)}) [1-9][0-9]{{0,2}}|other"  # "other": no version known


@dataclass(frozen=True)
class Camera:
    """The camera as a browser check found it: whether it opened, and what it delivered
    (pixels, frames per second, whether the picture was black). Nothing of the picture itself."""

    state: Literal["ok", "denied", "absent", "error", "not_tested"]
    width: int | None = field(default=None, metadata=limits(ge=1, le=16_384))
    height: int | None = field(default=None, metadata=limits(ge=1, le=16_384))
    fps: float | None = field(default=None, metadata=limits(ge=0, le=1000))
    black: bool | None = None


@dataclass(frozen=True)
class Microphone:
    """Whether the microphone opened and carried a signal above the floor (not muted)."""

    state: Literal["ok", "denied", "absent", "error", "not_tested"]
    signal: bool | None = None


@dataclass(frozen=True)
class Speaker:
    """Whether the person confirmed hearing a test tone."""

    state: Literal["heard", "not_heard", "not_tested"]


@dataclass(frozen=True)
class Devices:
    """Camera, microphone and speaker, as a browser check tested them (no media is kept)."""

    camera: Camera
    microphone: Microphone
    speaker: Speaker


@dataclass(frozen=True)
class CheckReport:
    """One pre-session check of one end of a session."""

    schema_version: Literal[1]
    check_id: str = field(metadata=limits(pattern=CHECK_ID_PATTERN))
    started_at: str = field(metadata=limits(max_len=40, timestamp=True))
    duration_s: float = field(metadata=limits(ge=0, le=86_400))
    session_id: str | None = field(metadata=limits(pattern=ID_PATTERN))
    agent: Agent
    verdict: Literal["ready", "at_risk", "not_ready"]
    reasons: tuple[Reason, ...] = field(metadata=limits(max_len=50))
    network: Network
    targets: tuple[TargetResult, ...] = field(metadata=limits(max_len=16))
    speedtest: Speedtest | None
    quality: Quality
    settings: CheckSettings
    machine: Machine | None = None
    room: Room | None = None
    # Where the check ran: the command line (an agent), or a browser from a check link.
    source: Literal["cli", "browser"] = "cli"
    browser: str | None = field(default=None, metadata=limits(max_len=16, pattern=BROWSER_PATTERN))
    devices: Devices | None = None
    # The network phases in the order they ran (None: a report without them, e.g. an older agent).
    phases: tuple[PhaseRun, ...] | None = field(default=None, metadata=limits(max_len=8))


# ---------------------------------------------------------------------------------------
# The agent daemon's reports (docs/agent.md): background and live samples, and full checks,
# each in an envelope with a unique id and the agent's sequence number, sent in batches
# from the agent's on-disk spool to POST /api/v1/reports.
# ---------------------------------------------------------------------------------------

REPORT_ID_PATTERN = CHECK_ID_PATTERN
MAX_SEQ = 2**53  # JSON-safe integers
MAX_BATCH = 200


@dataclass(frozen=True)
class SampleNetwork:
    """A short isochronous UDP burst to the monitor's reflector (no throughput test)."""

    packets_sent: int = field(metadata=_count)
    packets_received: int = field(metadata=_count)
    rtt_p50_ms: float | None = field(metadata=_ms)
    rtt_p95_ms: float | None = field(metadata=_ms)
    jitter_up_ms: float | None = field(metadata=_ms)
    jitter_down_ms: float | None = field(metadata=_ms)
    loss_up: float | None = field(metadata=_ratio)
    loss_down: float | None = field(metadata=_ratio)
    mos: float | None = field(metadata=limits(ge=1, le=5))
    # Why there are no numbers: a closed set, never free text.
    problem: Literal["monitor_unreachable", "no_probe_key", "udp_blocked"] | None = None
    # The mean |D| per direction over the sample's packets: the jitter a check's verdict judges
    # (``jitter_*_ms`` above is RFC 3550's J, its running estimate). Optional: a sample from an
    # agent before it has none and is judged on J (``judged_sample_jitter_ms``).
    jitter_mean_up_ms: float | None = field(default=None, metadata=_ms)
    jitter_mean_down_ms: float | None = field(default=None, metadata=_ms)


def judged_sample_jitter_ms(network: SampleNetwork | Mapping[str, object]) -> tuple[float | None, float | None]:
    """The jitter (up, down) in ms a sample is judged on: per direction its mean |D| when the
    sample carries it, else its J, as ``quality.NetworkFacts`` judges a check. ``network`` is a
    ``SampleNetwork`` or its JSON form (as stored, already validated)."""
    get = network.get if isinstance(network, Mapping) else lambda name: getattr(network, name)
    judged = []
    for direction in ("up", "down"):
        mean, j = get(f"jitter_mean_{direction}_ms"), get(f"jitter_{direction}_ms")
        value = j if mean is None else mean
        judged.append(None if value is None else float(value))  # type: ignore[arg-type]
    return judged[0], judged[1]


@dataclass(frozen=True)
class SampleMachine:
    """The machine's health at the sample's time (same meanings as ``Machine``)."""

    cpu_pct: float | None = field(metadata=limits(ge=0, le=100))
    memory_available_pct: float | None = field(metadata=limits(ge=0, le=100))
    battery_pct: float | None = field(metadata=limits(ge=0, le=100))
    battery_charging: bool | None
    link_type: LinkType
    wifi_signal_dbm: float | None = field(metadata=limits(ge=-150, le=0))


@dataclass(frozen=True)
class SampleRoom:
    """Room levels over the sample's interval, from the microphone only when allowed."""

    noise_floor_dbfs: float | None = field(metadata=limits(ge=-200, le=200))  # L90
    snr_db: float | None = field(metadata=limits(ge=-200, le=200))
    voice_ratio: float | None = field(metadata=_ratio)
    calibrated: bool


@dataclass(frozen=True)
class Sample:
    """One background (every few minutes) or live (every 2 s during a session) sample."""

    schema_version: Literal[1]
    taken_at: str = field(metadata=limits(max_len=40, timestamp=True))
    interval_s: float = field(metadata=limits(ge=0, le=86_400))
    session_id: str | None = field(metadata=limits(pattern=ID_PATTERN))
    agent: Agent
    network: SampleNetwork | None
    machine: SampleMachine | None
    # Throughput actually used on the link during the interval (all traffic, both directions).
    traffic_mbps: Throughput | None
    room: SampleRoom | None


@dataclass(frozen=True)
class ReportEnvelope:
    """One spooled report. ``report_id`` is unique (the monitor deduplicates by it); ``seq``
    is the agent's monotonic sequence number. Exactly one of ``sample``/``check`` is set,
    as ``kind`` says; a check's ``report_id`` equals its ``check_id``."""

    report_id: str = field(metadata=limits(pattern=REPORT_ID_PATTERN))
    seq: int = field(metadata=limits(ge=1, le=MAX_SEQ))
    kind: Literal["background", "live", "check"]
    sample: Sample | None = None
    check: CheckReport | None = None


@dataclass(frozen=True)
class SpoolStatus:
    """The agent's spool as it was when the batch left: what waits and what was dropped."""

    pending: int = field(metadata=limits(ge=0, le=MAX_SEQ))
    dropped_background: int = field(metadata=limits(ge=0, le=MAX_SEQ))  # since the spool was created
    rejected: int = field(metadata=limits(ge=0, le=MAX_SEQ))  # reports the monitor refused as invalid
    # Live samples dropped because the spool was full and no background sample was left.
    dropped_live: int = field(default=0, metadata=limits(ge=0, le=MAX_SEQ))


@dataclass(frozen=True)
class ReportResult:
    """The monitor's answer for one report of a batch. ``stored`` and ``duplicate`` are
    acknowledgements (the agent removes the report); ``rejected`` is final too (the report
    is invalid and would be refused again); ``error`` then names the problem."""

    report_id: str = field(metadata=limits(max_len=64))
    status: Literal["stored", "duplicate", "rejected"]
    error: str | None = field(default=None, metadata=_text)


@dataclass(frozen=True)
class AgentSession:
    """An upcoming or current session of the agent's participant, as the agent learns it."""

    session_id: str = field(metadata=limits(pattern=ID_PATTERN))
    start: str = field(metadata=limits(max_len=40, timestamp=True))
    planned_duration_s: int = field(metadata=limits(ge=60, le=86_400))
    state: Literal["scheduled", "live", "ended", "cancelled"]
    role: Literal["client", "therapist"]  # this participant's role in the session
