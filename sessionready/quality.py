"""The quality model: from measured network facts to a verdict, reasons and plain-word fixes.

Imported by both the agent (client) and the monitor, so it uses the standard library only,
holds no state and does no work at import time beyond building constants. Everything here is
a pure function of its arguments.

Units are in the names: ``_ms`` milliseconds, ``_mbps`` megabits per second (10^6 bit/s),
``_ratio`` a fraction within 0..1. docs/quality-model.md explains the model, cites the source
of every threshold and lists every reason code with its fix text.

Layout:
  1. public constants (verdicts, severities, video tiers, reason codes), validation helpers
  2. the E-model (ITU-T G.107): ``r_factor``, ``mos_from_r``, ``mouth_to_ear_delay_ms``
  3. the video tier from throughput: ``video_tier``
  4. the data types: ``NetworkFacts``, ``Reason``, ``Thresholds``, ``Assessment``
  5. ``assess``: one small check function per fact group, then one combiner. Machine health,
     the room and the devices (a browser check) are optional keyword arguments, each with its
     own ``_<group>_reasons`` function; the combiner does not change.
  6. the words: messages and fixes
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from sessionready.terms import SEVERITIES, VERDICTS  # public here too: the model's outcomes
from sessionready.typed import limits, validate
from sessionready.words import TIER_WORDS, percent

# --------------------------------------------------------------------------------------------
# 1. Public constants
# --------------------------------------------------------------------------------------------

# Best first. "unknown" is not a rank: it means no throughput was measured in either direction.
VIDEO_TIERS = ("1080p", "720p", "360p", "audio_only", "none", "unknown")

REASON_CODES: frozenset[str] = frozenset(
    {
        "udp_blocked",
        "high_delay",
        "high_upload_loss",
        "high_download_loss",
        "uncertain_upload_loss",
        "uncertain_download_loss",
        # a figure still unsettled at its phase's longest length (sessionready.settle)
        "borderline",
        "high_upload_jitter",
        "high_download_jitter",
        "low_audio_quality",
        "bufferbloat_download",
        "bufferbloat_upload",
        "low_upload_throughput",
        "low_download_throughput",
        "throughput_test_failed",
        "throughput_not_measured",
        # machine health
        "high_cpu",
        "low_memory",
        "swapping",
        "low_battery",
        "weak_wifi",
        "background_upload",
        "background_download",
        # the room
        "no_microphone",
        "microphone_busy",
        "microphone_silent",
        "microphone_clipping",
        "noisy_room",
        "intermittent_noise",
        "voices_in_background",
        "low_speech_to_noise",
        "speech_not_heard",
        # the devices (a browser check: camera, microphone and speaker as getUserMedia found them)
        "camera_not_allowed",
        "camera_not_found",
        "camera_unavailable",
        "camera_black",
        "camera_low_quality",
        "microphone_not_allowed",
        "microphone_not_found",
        "microphone_unavailable",
        "speaker_not_heard",
    }
)

# What a browser check's device test found (schema.Camera / Microphone / Speaker states).
MEDIA_STATES = ("ok", "denied", "absent", "error", "not_tested")
SPEAKER_STATES = ("heard", "not_heard", "not_tested")

# --------------------------------------------------------------------------------------------
# Validation helpers (defined first: Thresholds() is built when assess is defined)
# --------------------------------------------------------------------------------------------


def check_finite(name: str, value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_non_negative(name: str, value: object) -> float:
    number = check_finite(name, value)
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number


def check_ratio(name: str, value: object) -> float:
    number = check_finite(name, value)
    if not 0 <= number <= 1:
        raise ValueError(f"{name} must be a ratio within 0..1, got {value!r}")
    return number


def _optional(name: str, value: object, check: Callable[[str, object], float]) -> None:
    if value is not None:
        check(name, value)


def _interval(name: str, value: object) -> tuple[float, float]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (lo, hi), got {value!r}")
    low, high = check_ratio(name, value[0]), check_ratio(name, value[1])
    if low > high:
        raise ValueError(f"{name} must have lo <= hi, got {value!r}")
    return (low, high)


# --------------------------------------------------------------------------------------------
# 2. The E-model, ITU-T G.107 (06/2015)
#
# R = Ro - Is - Id - Ie,eff + A. Nothing but delay and loss is measured, so every other
# parameter keeps its G.107 Table 3 default (SLR 8 dB, RLR 2 dB, STMR 15 dB, LSTR 18 dB,
# Ds = Dr = 3, TELR 65 dB, WEPL 110 dB, Nc -70 dBm0p, Nfor -64 dBmp, Ps = Pr = 35 dB(A),
# qdu 1, A 0). At those defaults Ro and Is are constants; their derivation is in
# docs/quality-model.md. Ro - Is = 93.36; the often quoted "R = 93.2 at defaults" is that
# minus Idle = 0.15 at zero delay.
# --------------------------------------------------------------------------------------------

_RO = 94.7688  # basic signal-to-noise ratio, G.107 §7.2 (No = -61.18 dBm0p)
_IS = 1.4136  # simultaneous impairment, G.107 §7.3: Iolr 0.4402 + Ist -0.0007 + Iq 0.9741
_TELR_DB = 65.0  # talker echo loudness rating (default): well-controlled echo
_WEPL_DB = 110.0  # weighted echo path loss (default)
_ADVANTAGE = 0.0  # expectation factor A: 0 for a fixed, wired-equivalent service (G.107 Table 3)

# Codec assumption for the audio of a video call: G.711 with packet loss concealment,
# Ie = 0 and Bpl = 25.1 (ITU-T G.113 Appendix I, random loss). G.113 lists no values for
# Opus, which most video platforms use; Opus with its own concealment and FEC is at least as
# robust to random loss, so G.711+PLC gives a conservative, citable estimate.
CODEC_IE = 0.0
CODEC_BPL = 25.1

# Mouth-to-ear delay beyond the network (see mouth_to_ear_delay_ms).
_JITTER_BUFFER_FACTOR = 2.0  # adaptive jitter buffers settle near twice the mean jitter
_JITTER_BUFFER_FLOOR_MS = 20.0  # they hold at least about one 20 ms frame even on a calm link
_CODEC_DELAY_MS = 25.0  # 20 ms frame (packetisation) + ~5 ms lookahead/concealment


def delay_impairment(one_way_delay_ms: float) -> float:
    """Id, the delay impairment of G.107 §7.4 at default echo values, for a mouth-to-ear delay.

    ``one_way_delay_ms`` >= 0 is used as Ta (absolute delay) and T (echo path delay), and
    Tr = 2 T, as G.107 prescribes when they are not known separately. Returns Id >= 0.

    We use the full G.107 formula (Idte + Idle + Idd with the ln/power expression for Idd)
    rather than the Cole-Rosenbluth linear fit: it costs a few lines, needs no extra
    assumption and is what G.107's own worked values follow. At defaults Idte stays small
    (65 dB echo loss = good echo control, as video-call software provides).
    """
    t = check_non_negative("one_way_delay_ms", one_way_delay_ms)
    # Talker echo, §7.4: TERV is the echo level weighted by its delay.
    terv = _TELR_DB - 40 * math.log10((1 + t / 10) / (1 + t / 150)) + 6 * math.exp(-0.3 * t * t)
    re = 80 + 2.5 * (terv - 14)
    idte = ((_RO - re) / 2 + math.sqrt((_RO - re) ** 2 / 4 + 100) - 1) * (1 - math.exp(-t))
    # With TELR 65 dB the formula dips to about -0.1 for T under ~4 ms, which would make R
    # rise with delay there. An impairment cannot improve quality, so it is floored at 0; no
    # real call is affected (mouth-to-ear delay is never below 45 ms here).
    idte = max(0.0, idte)
    # Listener echo, with Tr = 2T.
    rle = 10.5 * (_WEPL_DB + 7) * (2 * t + 1) ** -0.25
    idle = (_RO - rle) / 2 + math.sqrt((_RO - rle) ** 2 / 4 + 169)
    # Pure delay: zero up to 100 ms (mT = 100, sT = 1 defaults).
    idd = 0.0
    if t > 100:
        x = math.log(t / 100) / math.log(2)
        idd = 25 * ((1 + x**6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2)
    return idte + idle + idd


def effective_equipment_impairment(
    loss_ratio: float, *, ie: float = CODEC_IE, bpl: float = CODEC_BPL, burst_ratio: float = 1.0
) -> float:
    """Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl), G.107 §7.5, with Ppl in percent.

    ``loss_ratio`` 0..1; ``ie`` 0..95; ``bpl`` > 0; ``burst_ratio`` > 0 (1 = random loss,
    > 1 = bursty). Returns a value within ie..95.
    """
    loss = check_ratio("loss_ratio", loss_ratio)
    if not 0 <= ie <= 95:
        raise ValueError(f"ie must be within 0..95, got {ie}")
    if not bpl > 0:
        raise ValueError(f"bpl must be > 0, got {bpl}")
    if not burst_ratio > 0:
        raise ValueError(f"burst_ratio must be > 0, got {burst_ratio}")
    ppl = 100 * loss
    return ie + (95 - ie) * ppl / (ppl / burst_ratio + bpl)


def r_factor(
    one_way_delay_ms: float,
    loss_ratio: float,
    *,
    ie: float = CODEC_IE,
    bpl: float = CODEC_BPL,
    burst_ratio: float = 1.0,
) -> float:
    """The G.107 transmission rating R for one direction of speech.

    ``one_way_delay_ms``: mouth-to-ear delay >= 0 (see ``mouth_to_ear_delay_ms``);
    ``loss_ratio``: packet loss 0..1 heard by this listener. About 93.2 with no delay and no
    loss; not clamped, so it can fall below 0 for extreme inputs (``mos_from_r`` clamps).
    """
    impairment = effective_equipment_impairment(loss_ratio, ie=ie, bpl=bpl, burst_ratio=burst_ratio)
    return _RO - _IS - delay_impairment(one_way_delay_ms) - impairment + _ADVANTAGE


def mos_from_r(r: float) -> float:
    """Estimated MOS (conversational quality, 1..4.5) from R, G.107 Annex B.

    MOS = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6 for 0 < R < 100; 1 below, 4.5 above.
    The polynomial dips just under 1 (to 0.99) for R below about 6.5; we clamp it to 1 so the
    result always stays on the 1..4.5 scale.
    """
    if not isinstance(r, (int, float)) or isinstance(r, bool) or math.isnan(r):
        raise ValueError(f"r must be a number, got {r!r}")
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return max(1.0, 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6)


def mouth_to_ear_delay_ms(rtt_ms: float, jitter_ms: float) -> float:
    """One-way mouth-to-ear delay in ms from a measured round trip and the jitter (the mean
    |D| that RFC 3550's J estimates, or J itself where no mean was measured).

    network one way = RTT / 2 (paths are assumed symmetric: without synchronised clocks the
    split cannot be measured); jitter buffer = max(2 x jitter, 20 ms); codec and
    packetisation = 25 ms (a 20 ms frame plus about 5 ms of lookahead/concealment). Sound card
    and operating-system buffers (often another 10-40 ms) are not included, so this is a
    lower bound of what a person experiences.
    """
    rtt = check_non_negative("rtt_ms", rtt_ms)
    jitter = check_non_negative("jitter_ms", jitter_ms)
    return rtt / 2 + max(_JITTER_BUFFER_FACTOR * jitter, _JITTER_BUFFER_FLOOR_MS) + _CODEC_DELAY_MS


# --------------------------------------------------------------------------------------------
# 3. Video tier from throughput
#
# The need of each tier for a 1:1 call, in Mbit/s (up, down): the most demanding of
#   - Zoom, "Zoom system requirements: Windows, macOS, Linux", bandwidth section, 1:1 video
#     calling: high quality video 0.6/0.6; 720p 1.2/1.2; 1080p 3.8/3.0; audio VoIP 0.06-0.08
#   - Microsoft Teams, "Prepare your organization's network for Microsoft Teams", bandwidth
#     table, peer-to-peer: audio 0.03; 360p 0.5; 720p 1.2; 1080p 1.5 (each up and down)
# Google Meet ("Prepare your network for Meet meetings & live streams") publishes per-meeting,
# not 1:1, figures (HD: 3.2 up, 2.6 down with 2 participants); they are listed in the docs
# but not used, see there.
# --------------------------------------------------------------------------------------------

TIER_NEEDS_MBPS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "1080p": (3.8, 3.0),  # Zoom 1:1 1080p (Teams P2P 1080p: 1.5)
        "720p": (1.2, 1.2),  # Zoom 1:1 720p = Teams P2P 720p
        "360p": (0.6, 0.6),  # Zoom 1:1 "high quality video" (Teams P2P 360p: 0.5)
        "audio_only": (0.08, 0.08),  # Zoom audio VoIP upper figure (Teams P2P audio: 0.03)
    }
)

# The call should use at most two-thirds of what the link delivered in the test: the test
# runs on a quiet line for seconds, the session lasts an hour next to other household traffic,
# Wi-Fi rates drift, and video encoders peak above their average on key frames and motion.
DEFAULT_HEADROOM_FACTOR = 1.5


def video_tier(up_mbps: float | None, down_mbps: float | None, *, headroom: float = DEFAULT_HEADROOM_FACTOR) -> str:
    """The best tier in ``VIDEO_TIERS`` whose up and down need, times ``headroom`` (>= 1),
    both measured directions sustain.

    None = not measured: that direction does not limit the tier, so a tier from one direction
    is an upper bound (``assess`` reports the missing direction). Both None -> "unknown".
    Below the audio need -> "none".
    """
    if not (isinstance(headroom, (int, float)) and math.isfinite(headroom) and headroom >= 1):
        raise ValueError(f"headroom must be a number >= 1, got {headroom!r}")
    up = None if up_mbps is None else check_non_negative("up_mbps", up_mbps)
    down = None if down_mbps is None else check_non_negative("down_mbps", down_mbps)
    if up is None and down is None:
        return "unknown"
    for tier, (need_up, need_down) in TIER_NEEDS_MBPS.items():
        if (up is None or up >= need_up * headroom) and (down is None or down >= need_down * headroom):
            return tier
    return "none"


# --------------------------------------------------------------------------------------------
# 4. Data types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkFacts:
    """What the network probes measured between this end and the monitor. None = not measured.

    Validated on construction (ValueError names the field): delays, jitter and throughput are
    finite and >= 0, ratios within 0..1, 0 <= packets_received <= packets_sent. Loaded-latency
    increases may be negative (noise: "no increase").
    """

    rtt_p50_ms: float | None
    rtt_p95_ms: float | None
    jitter_up_ms: float | None  # RFC 3550 interarrival jitter J (its last value), client->monitor
    jitter_down_ms: float | None  # monitor->client
    loss_up_ratio: float | None  # 0..1
    loss_down_ratio: float | None
    loss_up_ci95: tuple[float, float] | None  # Wilson 95 % interval (lo, hi), ratios
    loss_down_ci95: tuple[float, float] | None
    packets_sent: int
    packets_received: int  # echoes that came back
    throughput_down_mbps: float | None
    throughput_up_mbps: float | None
    loaded_latency_down_ms: float | None  # increase of p50 RTT over idle p50 while downloading
    loaded_latency_up_ms: float | None  # ... while uploading
    udp_error: str | None = None  # the UDP stream could not run or got no echo at all
    throughput_error: str | None = None
    # The mean of |D| per direction, the quantity J estimates (in a steady state E[J] = E|D|),
    # over the idle phase's probes: when measured, the verdict judges jitter on it, not on J,
    # whose last value moves with the last ~16 packets and never converges. None: not carried
    # (a report from before it), and J is judged instead.
    jitter_mean_up_ms: float | None = None
    jitter_mean_down_ms: float | None = None

    @property
    def judged_jitter_up_ms(self) -> float | None:
        """The upload jitter the model judges: the mean |D| when measured, else J."""
        return self.jitter_up_ms if self.jitter_mean_up_ms is None else self.jitter_mean_up_ms

    @property
    def judged_jitter_down_ms(self) -> float | None:
        """The download jitter the model judges: the mean |D| when measured, else J."""
        return self.jitter_down_ms if self.jitter_mean_down_ms is None else self.jitter_mean_down_ms

    def __post_init__(self) -> None:
        for name in (
            "rtt_p50_ms", "rtt_p95_ms", "jitter_up_ms", "jitter_down_ms", "jitter_mean_up_ms", "jitter_mean_down_ms",
            "throughput_down_mbps", "throughput_up_mbps",
        ):  # fmt: skip
            _optional(name, getattr(self, name), check_non_negative)
        for name in ("loss_up_ratio", "loss_down_ratio"):
            _optional(name, getattr(self, name), check_ratio)
        for name in ("loaded_latency_down_ms", "loaded_latency_up_ms"):
            _optional(name, getattr(self, name), check_finite)
        for name in ("loss_up_ci95", "loss_down_ci95"):
            value = getattr(self, name)
            if value is not None:
                # JSON gives a list: keep the stored value a hashable, immutable tuple.
                object.__setattr__(self, name, _interval(name, value))
        for name in ("packets_sent", "packets_received"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.packets_received > self.packets_sent:
            raise ValueError(
                f"packets_received ({self.packets_received}) cannot exceed packets_sent ({self.packets_sent})"
            )
        for name in ("udp_error", "throughput_error"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be text or None, got {value!r}")


@dataclass(frozen=True)
class MachineFacts:
    """This computer's health during the check. None = not read (or, for the battery, none)."""

    cpu_pct: float | None  # whole machine, 0..100
    memory_available_pct: float | None  # 0..100
    swap_bytes_per_s: float | None  # swapped in + out
    battery_pct: float | None  # None: no battery, a normal answer for a desktop
    battery_charging: bool | None
    battery_time_left_s: float | None
    link_type: str  # "wired" | "wifi" | "cellular" | "other" | "unknown"
    wifi_signal_dbm: float | None
    background_up_mbps: float | None  # traffic on the link before the check's own phases
    background_down_mbps: float | None

    def __post_init__(self) -> None:
        for name in ("cpu_pct", "memory_available_pct", "battery_pct"):
            value = getattr(self, name)
            if value is not None and not 0 <= check_finite(name, value) <= 100:
                raise ValueError(f"{name} must be within 0..100, got {value!r}")
        for name in ("swap_bytes_per_s", "battery_time_left_s", "background_up_mbps", "background_down_mbps"):
            _optional(name, getattr(self, name), check_non_negative)
        _optional("wifi_signal_dbm", self.wifi_signal_dbm, check_finite)


@dataclass(frozen=True)
class RoomFacts:
    """Summary levels of the room. Levels in dBFS(A), or dBA when ``calibrated``.

    ``available`` False with ``problem`` "no_portaudio" | "no_device" | "device_busy" |
    "device_error" when no microphone could be used; "not_allowed" (the person's config does
    not allow the microphone), "not_installed" (no audio support in this install) and
    "probe_timeout" / "probe_failed" (the check's listening phase broke) are not judged. ``voice_ratio`` is the share of
    frames with voices while the person was quiet (others talking); ``snr_db`` the person's
    speech over the noise floor (interactive mode only); ``speech_detected`` whether their
    speech registered at all (interactive mode only).
    """

    available: bool
    problem: str | None
    laeq_dbfs: float | None
    l90_dbfs: float | None
    l10_dbfs: float | None
    lmax_dbfs: float | None
    voice_ratio: float | None
    snr_db: float | None
    speech_detected: bool | None
    calibrated: bool
    silent: bool
    clipping_ratio: float | None

    def __post_init__(self) -> None:
        for name in ("laeq_dbfs", "l90_dbfs", "l10_dbfs", "lmax_dbfs", "snr_db"):
            _optional(name, getattr(self, name), check_finite)
        for name in ("voice_ratio", "clipping_ratio"):
            _optional(name, getattr(self, name), check_ratio)


@dataclass(frozen=True)
class DeviceFacts:
    """Camera, microphone and speaker as a browser check tried them, through the browser's own
    media calls (the ones a browser video call makes). ``camera`` and ``microphone`` are one of
    ``MEDIA_STATES``: "ok" opened, "denied" the person (or the system) did not allow the page,
    "absent" none found, "error" found but could not be started (most often another app holds
    it), "not_tested" the browser offers no way to try. ``speaker`` is one of
    ``SPEAKER_STATES``, the person's answer to a test tone. ``camera_black`` (every sampled frame
    dark and flat) and ``microphone_signal`` (sound above digital silence) are None when not
    measured; so are what the camera delivered: ``camera_width`` and ``camera_height`` in pixels,
    ``camera_fps`` in frames per second.
    """

    camera: str
    camera_black: bool | None
    microphone: str
    microphone_signal: bool | None
    speaker: str
    camera_width: int | None = None
    camera_height: int | None = None
    camera_fps: float | None = None

    def __post_init__(self) -> None:
        for name, states in (("camera", MEDIA_STATES), ("microphone", MEDIA_STATES), ("speaker", SPEAKER_STATES)):
            if getattr(self, name) not in states:
                raise ValueError(f"{name} must be one of {states}, got {getattr(self, name)!r}")
        for name in ("camera_black", "microphone_signal"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"{name} must be true, false or None, got {value!r}")
        for name in ("camera_width", "camera_height"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1 or None, got {value!r}")
        _optional("camera_fps", self.camera_fps, check_non_negative)


@dataclass(frozen=True)
class Reason:
    """One finding. ``code`` is stable public API (in ``REASON_CODES``); ``severity`` one of
    ``SEVERITIES``; ``message`` says what is wrong with the measured number, ``fix`` what to
    do, both in plain words for a non-technical client and built only from numbers."""

    code: str
    severity: str
    message: str
    fix: str

    def __post_init__(self) -> None:
        if self.code not in REASON_CODES:
            raise ValueError(f"unknown reason code {self.code!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        if not self.message or not self.fix:
            raise ValueError("a reason needs a message and a fix")


# A threshold's valid range follows from its unit; each field names its unit below, and
# ``typed.validate`` checks the range as it checks every config.
def _ms_field(default: float) -> Any:
    return field(default=default, metadata=limits(ge=0.0, le=600_000.0))


def _ratio_field(default: float) -> Any:
    return field(default=default, metadata=limits(ge=0.0, le=1.0))


def _mos_field(default: float) -> Any:
    return field(default=default, metadata=limits(ge=1.0, le=4.5))


def _factor_field(default: float) -> Any:
    return field(default=default, metadata=limits(ge=1.0, le=10.0))


def _pct_field(default: float) -> Any:
    return field(default=default, metadata=limits(ge=0.0, le=100.0))


def _dbm_field(default: float) -> Any:
    return field(default=default, metadata=limits(ge=-150.0, le=0.0))


def _dbfs_field(default: float) -> Any:
    return field(default=default, metadata=limits(ge=-200.0, le=0.0))


def _db_field(default: float) -> Any:
    return field(default=default, metadata=limits(ge=0.0, le=200.0))


def _rate_field(default: float) -> Any:  # bytes/s or Mbit/s
    return field(default=default, metadata=limits(ge=0.0, le=1e12))


def _seconds_field(default: float) -> Any:
    return field(default=default, metadata=limits(ge=0.0, le=86_400.0))


@dataclass(frozen=True)
class Thresholds:
    """Where a measurement turns into a warning (verdict at most "at_risk") or a critical
    finding ("not_ready"). Values strictly above a ``_ms``/``_ratio`` threshold, or strictly
    below a ``mos_`` threshold, trigger it. Defaults are grounded in published guidance; the
    source of each is cited here and in docs/quality-model.md.
    """

    # ITU-T G.114: one-way (mouth-to-ear) delay below 150 ms is preferred for interactive
    # speech; above 400 ms is unacceptable for network planning.
    mouth_to_ear_warning_ms: float = _ms_field(150.0)
    mouth_to_ear_critical_ms: float = _ms_field(400.0)
    # Microsoft Teams, "Stream classification in Call Quality Dashboard": an audio stream with
    # an average round trip above 500 ms is classified poor.
    rtt_critical_ms: float = _ms_field(500.0)
    # Jitter above 30 ms: Cisco's voice guidance (keep jitter under 30 ms), the Teams network
    # target (< 30 ms per 15 s) and the Teams CQD "poor" audio line (> 30 ms) agree.
    jitter_warning_ms: float = _ms_field(30.0)
    # ITU-T Y.1541 classes 0/1 bound packet delay variation at 50 ms. RFC 3550 jitter is a
    # mean deviation, below that quantile-based measure, so > 50 ms surely breaks the bound.
    jitter_critical_ms: float = _ms_field(50.0)
    # ITU-T G.1010: videophone tolerates < 1 % packet loss; Cisco voice guidance and the Teams
    # network target say the same for audio.
    loss_warning_ratio: float = _ratio_field(0.01)
    # ITU-T G.1010: conversational voice tolerates < 3 % packet loss. Stricter than the Teams
    # CQD "poor" line (10 %) on purpose: a pre-session check sees a short sample and must
    # leave room for a whole session.
    loss_critical_ratio: float = _ratio_field(0.03)
    # MOS bands from G.107 Annex B / G.109 categories: >= 4.0 (R >= 80) users satisfied;
    # 3.6-4.0 (R 70-80) some dissatisfied; below 3.6 (R < 70) many dissatisfied; < 3.1 poor.
    mos_warning_below: float = _mos_field(4.0)
    mos_critical_below: float = _mos_field(3.6)
    # Bufferbloat grades of the DSLReports and Waveform bufferbloat tests (increase of round
    # trip under load): A < 30 ms, B < 60, C < 200, D < 400, F >= 400. bufferbloat.net advises
    # action below grade B, so > 60 ms (C or worse) warns and > 200 ms (D or worse) is critical.
    loaded_latency_warning_ms: float = _ms_field(60.0)
    loaded_latency_critical_ms: float = _ms_field(200.0)
    # Margin over the platforms' published bandwidth needs (see TIER_NEEDS_MBPS).
    throughput_headroom_factor: float = _factor_field(DEFAULT_HEADROOM_FACTOR)

    # --- The machine ---
    # Video calls encode and decode video on the CPU; Zoom's and Teams' clients warn about
    # high CPU use and ask to close other apps. Above 85 % over the window there is no room
    # left for the call's own work; above 95 % it will stutter.
    cpu_warning_pct: float = _pct_field(85.0)
    cpu_critical_pct: float = _pct_field(95.0)
    # Less than 10 % of memory free means the system starts evicting the call's pages;
    # below 5 % it swaps heavily (Linux's default low-memory watermarks sit in this range).
    memory_low_warning_pct: float = _pct_field(10.0)
    memory_low_critical_pct: float = _pct_field(5.0)
    # Sustained swapping of more than 1 MB/s (in + out) stalls interactive programs.
    swap_warning_bytes_per_s: float = _rate_field(1_000_000.0)
    # A session is 50 minutes: on battery, below 25 % (or less than a session's time left)
    # is a warning; below 10 % the laptop may shut down mid-session.
    battery_warning_pct: float = _pct_field(25.0)
    battery_critical_pct: float = _pct_field(10.0)
    session_length_s: float = _seconds_field(3000.0)
    # Wi-Fi design guides for voice (Cisco's and Apple's enterprise voice-over-Wi-Fi guidance)
    # ask for -67 dBm or stronger; below -75 dBm retries and rate drops break calls.
    wifi_signal_warning_dbm: float = _dbm_field(-67.0)
    wifi_signal_critical_dbm: float = _dbm_field(-75.0)
    # Traffic the check did not cause, on this computer's link: a backup or a sync that
    # competes with the call. More than 1 Mbit/s (a video call's own upstream need) is worth
    # a warning, more than 3 Mbit/s is critical.
    background_warning_mbps: float = _rate_field(1.0)
    background_critical_mbps: float = _rate_field(3.0)

    # --- The room ---
    # Uncalibrated noise floor (L90) in dBFS(A). A laptop microphone maps 94 dB SPL to about
    # -26..-38 dBFS, so -50 dBFS(A) is roughly a 45-55 dBA room (a running TV or fan; ANSI
    # S12.60 asks 35 dBA for rooms where speech must be understood) and -40 dBFS(A) a loud one.
    noise_floor_warning_dbfs: float = _dbfs_field(-50.0)
    noise_floor_critical_dbfs: float = _dbfs_field(-40.0)
    # The same for a calibrated microphone, in dBA (WHO and ANSI S12.60: 35 dBA for speech
    # rooms; 45 dBA is where raised voices begin; 55 dBA makes speech effortful).
    noise_floor_warning_dba: float = _db_field(45.0)
    noise_floor_critical_dba: float = _db_field(55.0)
    # L10 - L90 above 15 dB: the level swings a lot, noise that comes and goes (a common
    # indicator of fluctuating noise in environmental acoustics).
    intermittent_noise_warning_db: float = _db_field(15.0)
    # Voices in more than 10 % of the frames while the person is quiet: someone else talks.
    voices_warning_ratio: float = _ratio_field(0.10)
    # Speech at least 15 dB above the noise floor is the usual target for understanding
    # complex speech (ANSI S12.60, classroom acoustics); below 6 dB it is a strain.
    snr_warning_db: float = _db_field(15.0)
    snr_critical_db: float = _db_field(6.0)
    # More than 0.1 % of samples at full scale: audible distortion.
    clipping_warning_ratio: float = _ratio_field(0.001)

    # --- The camera (a browser check) ---
    # Frames a second the camera delivers: lip movements and expressions are followed well from
    # about 15 a second (speechreading falls off below it, Frowein et al. 1991; ETSI EN 301 549
    # clause 6.5: 12 frames/s "usable with some restrictions", 20 or more for good usability).
    # Cameras run at 5, 7.5, 10, 15, 20, 24, 25 or 30; a 15 frames/s camera measures 14.9-15.1
    # over the page's 2 s, so the line sits at 14: cameras slower than 15 a second are flagged.
    camera_fps_warning_below: float = field(default=14.0, metadata=limits(ge=0.0, le=240.0))
    # Lines of the picture (its shorter side, as "360p" counts them): below 360 a face shown in
    # a normal call window is soft, expressions lose their detail. 360p is the smallest picture
    # Zoom ("high quality video") and Teams list for a 1:1 call; EN 301 549 (V3.2.1, 6.5.2)
    # prefers VGA (480 lines) and asks at least QVGA (240).
    camera_lines_warning_below: float = field(default=360.0, metadata=limits(ge=0.0, le=16_384.0))

    def __post_init__(self) -> None:
        validate(self, "thresholds")
        for warning, critical in (
            ("mouth_to_ear_warning_ms", "mouth_to_ear_critical_ms"),
            ("jitter_warning_ms", "jitter_critical_ms"),
            ("loss_warning_ratio", "loss_critical_ratio"),
            ("loaded_latency_warning_ms", "loaded_latency_critical_ms"),
        ):
            if getattr(self, warning) > getattr(self, critical):
                raise ValueError(f"quality threshold '{warning}' must not exceed '{critical}'")
        if self.mos_warning_below < self.mos_critical_below:
            raise ValueError("quality threshold 'mos_warning_below' must not be below 'mos_critical_below'")
        for warning, critical in (
            ("cpu_warning_pct", "cpu_critical_pct"),
            ("noise_floor_warning_dbfs", "noise_floor_critical_dbfs"),
            ("noise_floor_warning_dba", "noise_floor_critical_dba"),
            ("background_warning_mbps", "background_critical_mbps"),
        ):
            if getattr(self, warning) > getattr(self, critical):
                raise ValueError(f"quality threshold '{warning}' must not exceed '{critical}'")
        for warning, critical in (
            ("memory_low_warning_pct", "memory_low_critical_pct"),
            ("battery_warning_pct", "battery_critical_pct"),
            ("wifi_signal_warning_dbm", "wifi_signal_critical_dbm"),
            ("snr_warning_db", "snr_critical_db"),
        ):
            # "Below" thresholds: the warning line lies above the critical one.
            if getattr(self, warning) < getattr(self, critical):
                raise ValueError(f"quality threshold '{warning}' must not be below '{critical}'")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> Thresholds:
        """Thresholds from a config table; missing keys keep their defaults.

        Raises ValueError naming the key for an unknown key, a value that is not a number
        (booleans and text are refused; whole numbers are accepted) or one out of range.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"quality thresholds must be a table, got {type(data).__name__}")
        known = {spec.name for spec in fields(cls)}
        for key in data:
            if key not in known:
                raise ValueError(f"unknown quality threshold '{key}' (expected one of: {', '.join(sorted(known))})")
        return cls(**data)  # type: ignore[arg-type]  # __post_init__ checks every value


@dataclass(frozen=True)
class Assessment:
    """The verdict for one end, with its reasons (most severe first) and the expected quality.

    ``r_factor`` (0..100, clamped) and ``mos`` (1..4.5) are for the worse direction of speech;
    None when delay or loss was not measured. ``video_tier`` is one of ``VIDEO_TIERS``.
    """

    verdict: str
    reasons: tuple[Reason, ...]
    r_factor: float | None
    mos: float | None
    video_tier: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.video_tier not in VIDEO_TIERS:
            raise ValueError(f"video_tier must be one of {VIDEO_TIERS}, got {self.video_tier!r}")


# --------------------------------------------------------------------------------------------
# 5. assess: one check per fact group, then one combiner
# --------------------------------------------------------------------------------------------


def assess(
    network: NetworkFacts,
    thresholds: Thresholds = Thresholds(),
    *,
    machine: MachineFacts | None = None,
    room: RoomFacts | None = None,
    devices: DeviceFacts | None = None,
) -> Assessment:
    """Verdict, reasons and expected quality for one end of a session.

    Each fact group adds the reasons of its own check function; one combiner orders them and
    draws the verdict. ``machine``, ``room`` and ``devices`` are optional: not measured, not
    judged. With ``devices`` (a browser check) the device check speaks for the microphone,
    and the room is judged only when the microphone heard one: one fact, one reason.
    """
    speech = _worse_direction_speech(network)
    reasons = _network_reasons(network, thresholds, speech)
    if machine is not None:
        reasons += _machine_reasons(machine, network, thresholds)
    if room is not None:
        reasons += _room_reasons(room, thresholds, microphone_judged=devices is not None)
    if devices is not None:
        reasons += _device_reasons(devices, thresholds)
    ordered = _most_severe_first(reasons)
    return Assessment(
        verdict=verdict_from_reasons(ordered),
        reasons=ordered,
        r_factor=None if speech is None else min(100.0, max(0.0, speech.r)),
        mos=None if speech is None else mos_from_r(speech.r),
        video_tier=video_tier(
            network.throughput_up_mbps, network.throughput_down_mbps, headroom=thresholds.throughput_headroom_factor
        ),
    )


def verdict_from_reasons(reasons: Iterable[Reason]) -> str:
    """Any critical -> "not_ready"; else any warning -> "at_risk"; else "ready".

    Also combines the two ends of a session: pass the reasons of both.
    """
    severities = {reason.severity for reason in reasons}
    if "critical" in severities:
        return "not_ready"
    if "warning" in severities:
        return "at_risk"
    return "ready"


def _most_severe_first(reasons: Iterable[Reason]) -> tuple[Reason, ...]:
    # sorted() is stable: within a severity, reasons keep the order the checks produced.
    return tuple(sorted(reasons, key=lambda reason: SEVERITIES.index(reason.severity)))


@dataclass(frozen=True)
class _Speech:
    """The E-model estimate for one direction of speech."""

    direction: str  # "up": what the other person hears from this end; "down": what this end hears
    r: float


def _udp_blocked(network: NetworkFacts) -> bool:
    return network.udp_error is not None or network.packets_received == 0


def _worse_direction_speech(network: NetworkFacts) -> _Speech | None:
    """R for each direction that has delay and loss, and the worse of the two.

    Each listener hears only the loss of the direction towards them, so loss is not summed
    over the round trip. The session is spoiled if either person cannot hear the other, so
    the worse direction counts.
    """
    if _udp_blocked(network) or network.rtt_p50_ms is None:
        return None
    candidates = []
    for direction, jitter, loss in (
        ("up", network.judged_jitter_up_ms, network.loss_up_ratio),
        ("down", network.judged_jitter_down_ms, network.loss_down_ratio),
    ):
        if loss is None:
            continue
        delay = mouth_to_ear_delay_ms(network.rtt_p50_ms, 0.0 if jitter is None else jitter)
        candidates.append(_Speech(direction, r_factor(delay, loss)))
    return min(candidates, key=lambda speech: speech.r, default=None)


def _network_reasons(network: NetworkFacts, t: Thresholds, speech: _Speech | None) -> list[Reason]:
    reasons: list[Reason] = []
    if _udp_blocked(network):
        # Delay, loss and jitter come from the UDP stream: with no echo they mean nothing.
        reasons.append(_udp_blocked_reason(network))
    else:
        reasons += _delay_reasons(network, t)
        reasons += _loss_reasons(network, t)
        reasons += _jitter_reasons(network, t)
        reasons += _speech_quality_reasons(speech, t)
    reasons += _loaded_latency_reasons(network, t)
    reasons += _throughput_reasons(network, t)
    return reasons


def grade(value: float, warning: float, critical: float) -> str | None:
    """"critical", "warning" or None: strictly above a threshold triggers it (the model's rule,
    which the monitor's risk engine grades by as well)."""
    if value > critical:
        return "critical"
    if value > warning:
        return "warning"
    return None


def _udp_blocked_reason(network: NetworkFacts) -> Reason:
    # The error text is never shown: it may carry addresses or host names.
    if network.packets_sent > 0 and network.udp_error is None:
        message = (
            f"None of the {network.packets_sent} test packets came back. The kind of traffic video calls "
            "use for live sound and picture (UDP) seems to be blocked on this network."
        )
    else:
        message = (
            "The live sound-and-picture test could not run: the kind of traffic video calls use (UDP) "
            "seems to be blocked on this network."
        )
    return _reason("udp_blocked", "critical", message)


def _delay_reasons(network: NetworkFacts, t: Thresholds) -> list[Reason]:
    rtt = network.rtt_p50_ms
    if rtt is None:
        return []
    jitters = [j for j in (network.judged_jitter_up_ms, network.judged_jitter_down_ms) if j is not None]
    delay = mouth_to_ear_delay_ms(rtt, max(jitters, default=0.0))
    severity = grade(delay, t.mouth_to_ear_warning_ms, t.mouth_to_ear_critical_ms)
    if rtt > t.rtt_critical_ms:
        severity = "critical"
    if severity is None:
        return []
    consequence = (
        "At this delay a natural conversation becomes hard."
        if severity == "critical"
        else f"From about {_ms(t.mouth_to_ear_warning_ms)} people start to talk over each other by accident."
    )
    message = (
        f"Your voice will take about {_ms(delay)} to reach the other person "
        f"(the network round trip is {_ms(rtt)}). {consequence}"
    )
    return [_reason("high_delay", severity, message)]


def _loss_reasons(network: NetworkFacts, t: Thresholds) -> list[Reason]:
    reasons = []
    for direction, loss, ci95 in (
        ("upload", network.loss_up_ratio, network.loss_up_ci95),
        ("download", network.loss_down_ratio, network.loss_down_ci95),
    ):
        if loss is None:
            continue
        severity = grade(loss, t.loss_warning_ratio, t.loss_critical_ratio)
        if severity is not None:
            reasons.append(_reason(f"high_{direction}_loss", severity, _loss_message(direction, loss)))
        # The verdict follows the point estimate; a short test cannot rule out a critical loss,
        # and we say so instead of implying that 0 lost means 0 %.
        if ci95 is not None and loss <= t.loss_critical_ratio < ci95[1]:
            message = (
                f"The test saw {_pct(loss)} loss on your {direction}, but from only {network.packets_sent} "
                f"test packets: too few to be sure. The real figure could be as high as {_pct(ci95[1])}."
            )
            reasons.append(_reason(f"uncertain_{direction}_loss", "info", message))
    return reasons


def _loss_message(direction: str, loss: float) -> str:
    if direction == "upload":
        where, effect = "you send", "the other person may hear you break up or see your picture freeze"
    else:
        where, effect = "sent to you", "the other person's voice may break up or their picture freeze"
    return f"{_pct(loss)} of the sound and picture {where} is lost on the way, so {effect}."


def _jitter_reasons(network: NetworkFacts, t: Thresholds) -> list[Reason]:
    reasons = []
    for direction, jitter in (("upload", network.judged_jitter_up_ms), ("download", network.judged_jitter_down_ms)):
        if jitter is None:
            continue
        severity = grade(jitter, t.jitter_warning_ms, t.jitter_critical_ms)
        if severity is None:
            continue
        message = (
            f"Your {direction} is uneven: the timing of sound and picture varies by about {_ms(jitter)} "
            "(this is called jitter). The call has to wait longer to keep sound smooth and may still stutter."
        )
        reasons.append(_reason(f"high_{direction}_jitter", severity, message))
    return reasons


def _speech_quality_reasons(speech: _Speech | None, t: Thresholds) -> list[Reason]:
    if speech is None:
        return []
    mos = mos_from_r(speech.r)
    if mos < t.mos_critical_below:
        severity = "critical"
    elif mos < t.mos_warning_below:
        severity = "warning"
    else:
        return []
    listener = "how the other person will hear you" if speech.direction == "up" else "how you will hear the other person"
    message = (
        f"Expected sound quality is {mos:.1f} out of 5 for {listener} (4.0 or more is good; below "
        "3.6 many people find a call hard to follow). It reflects the delay and loss measured on your connection."
    )
    return [_reason("low_audio_quality", severity, message)]


def _loaded_latency_reasons(network: NetworkFacts, t: Thresholds) -> list[Reason]:
    reasons = []
    for direction, increase, busy_with in (
        ("download", network.loaded_latency_down_ms, "someone at home starts streaming or downloading"),
        ("upload", network.loaded_latency_up_ms, "a cloud backup or someone else's upload starts"),
    ):
        if increase is None:
            continue
        severity = grade(increase, t.loaded_latency_warning_ms, t.loaded_latency_critical_ms)
        if severity is None:
            continue
        message = (
            f"When your connection is busy with a {direction}, its delay rises by {_ms(increase)} "
            f"(known as bufferbloat). If {busy_with} during your session, the call may lag or freeze."
        )
        reasons.append(_reason(f"bufferbloat_{direction}", severity, message))
    return reasons


def _throughput_reasons(network: NetworkFacts, t: Thresholds) -> list[Reason]:
    reasons = []
    if network.throughput_error is not None:
        message = "The speed test could not finish, so we could not confirm your connection is fast enough for video."
        reasons.append(_reason("throughput_test_failed", "warning", message))
    missing = []
    for direction, mbps, index in (
        ("upload", network.throughput_up_mbps, 0),
        ("download", network.throughput_down_mbps, 1),
    ):
        if mbps is None:
            missing.append(direction)
            continue
        up, down = (mbps, None) if index == 0 else (None, mbps)
        tier = video_tier(up, down, headroom=t.throughput_headroom_factor)
        if VIDEO_TIERS.index(tier) <= VIDEO_TIERS.index("720p"):
            continue
        severity, target = ("warning", "720p") if tier == "360p" else ("critical", "360p")
        need = TIER_NEEDS_MBPS[target][index] * t.throughput_headroom_factor
        have, needed = _mbps(mbps), _mbps(need)
        if have == needed:  # 1.79 against 1.8 must not read "1.8 ... needs at least 1.8"
            have, needed = f"{mbps:.2f} Mbit/s", f"{need:.2f} Mbit/s"
        message = (
            f"Your {direction} speed is {have}, enough for {TIER_WORDS[tier]}. "
            f"{_sentence_case(TIER_WORDS[target])} needs at least {needed}, including room to spare."
        )
        reasons.append(_reason(f"low_{direction}_throughput", severity, message))
    if missing and network.throughput_error is None:
        what = _sentence_case(" and ".join(missing))
        verb = "were" if len(missing) == 2 else "was"
        reasons.append(_reason("throughput_not_measured", "info", f"{what} speed {verb} not measured in this check."))
    return reasons


def _machine_reasons(machine: MachineFacts, network: NetworkFacts, t: Thresholds) -> list[Reason]:
    reasons: list[Reason] = []
    if machine.cpu_pct is not None:
        severity = grade(machine.cpu_pct, t.cpu_warning_pct, t.cpu_critical_pct)
        if severity:
            reasons.append(_reason("high_cpu", severity, f"Your computer's processor is {machine.cpu_pct:.0f} % busy with other work."))
    if machine.memory_available_pct is not None:
        severity = _grade_below(machine.memory_available_pct, t.memory_low_warning_pct, t.memory_low_critical_pct)
        if severity:
            reasons.append(_reason("low_memory", severity, f"Only {machine.memory_available_pct:.0f} % of your computer's memory is free."))
    if machine.swap_bytes_per_s is not None and machine.swap_bytes_per_s > t.swap_warning_bytes_per_s:
        message = f"Your computer is short of memory and moving {machine.swap_bytes_per_s / 1e6:.1f} MB/s to disk, which slows everything down."
        reasons.append(_reason("swapping", "warning", message))
    if machine.battery_pct is not None and machine.battery_charging is False:
        severity = _grade_below(machine.battery_pct, t.battery_warning_pct, t.battery_critical_pct)
        short = machine.battery_time_left_s is not None and machine.battery_time_left_s < t.session_length_s
        if severity or short:
            left = f" (about {machine.battery_time_left_s / 60:.0f} minutes left)" if machine.battery_time_left_s is not None else ""
            message = f"Your battery is at {machine.battery_pct:.0f} % and not charging{left}."
            reasons.append(_reason("low_battery", severity or "warning", message))
    if machine.link_type == "wifi" and machine.wifi_signal_dbm is not None:
        severity = _grade_below(machine.wifi_signal_dbm, t.wifi_signal_warning_dbm, t.wifi_signal_critical_dbm)
        if severity:
            message = (
                f"Your Wi-Fi signal is weak ({machine.wifi_signal_dbm:.0f} dBm; "
                f"{t.wifi_signal_warning_dbm:.0f} dBm or stronger is good for calls)."
            )
            reasons.append(_reason("weak_wifi", severity, message))
    for direction, mbps in (("upload", machine.background_up_mbps), ("download", machine.background_down_mbps)):
        if mbps is None:
            continue
        severity = grade(mbps, t.background_warning_mbps, t.background_critical_mbps)
        if severity:
            verb = "uploading" if direction == "upload" else "downloading"
            message = f"Something on this computer is {verb} at {_mbps(mbps)} before the check started."
            reasons.append(_reason(f"background_{direction}", severity, message))
    return reasons


_SILENT_MESSAGE = "Your microphone picks up no sound at all: it may be muted or switched off."


def _room_reasons(room: RoomFacts, t: Thresholds, *, microphone_judged: bool = False) -> list[Reason]:
    if microphone_judged and (not room.available or room.silent):
        # The device check already said what is wrong with the microphone (or that it was not
        # tried); a room the microphone did not hear has nothing of its own to judge.
        return []
    if not room.available:
        if room.problem in ("not_allowed", "not_installed", "probe_timeout", "probe_failed"):
            # Not measured by choice or by install, or the check's own listening phase broke:
            # nothing about this room to judge (the report keeps the code for staff).
            return []
        if room.problem == "device_busy":
            return [_reason("microphone_busy", "warning", "Another program is using your microphone, so the check could not listen.")]
        return [_reason("no_microphone", "warning", "The check found no microphone it could use.")]
    reasons: list[Reason] = []
    if room.silent:
        # A muted or dead microphone: nothing else about the room can be judged.
        return [_reason("microphone_silent", "warning", _SILENT_MESSAGE)]
    if room.clipping_ratio is not None and room.clipping_ratio > t.clipping_warning_ratio:
        message = f"Your microphone is overloaded ({room.clipping_ratio * 100:.1f} % of the sound is cut off), which makes your voice sound harsh."
        reasons.append(_reason("microphone_clipping", "warning", message))
    if room.l90_dbfs is not None:
        warning, critical = (t.noise_floor_warning_dba, t.noise_floor_critical_dba) if room.calibrated else (t.noise_floor_warning_dbfs, t.noise_floor_critical_dbfs)
        severity = grade(room.l90_dbfs, warning, critical)
        if severity:
            unit = "dBA" if room.calibrated else "dB on your microphone's scale"
            reasons.append(_reason("noisy_room", severity, f"Your room has steady background noise (noise floor {room.l90_dbfs:.0f} {unit})."))
    if room.l10_dbfs is not None and room.l90_dbfs is not None and room.l10_dbfs - room.l90_dbfs > t.intermittent_noise_warning_db:
        message = f"Noise in your room comes and goes: it rose {room.l10_dbfs - room.l90_dbfs:.0f} dB above the quiet level for part of the check."
        reasons.append(_reason("intermittent_noise", "warning", message))
    if room.voice_ratio is not None and room.voice_ratio > t.voices_warning_ratio:
        message = f"Other voices could be heard in the background ({room.voice_ratio * 100:.0f} % of the time while you were quiet): others may hear your session."
        reasons.append(_reason("voices_in_background", "warning", message))
    if room.speech_detected is False:
        reasons.append(_reason("speech_not_heard", "warning", "The check could not hear you read the sentence aloud."))
    elif room.snr_db is not None:
        severity = _grade_below(room.snr_db, t.snr_warning_db, t.snr_critical_db)
        if severity:
            message = (
                f"Your voice is only {room.snr_db:.0f} dB louder than the room's noise; "
                f"{t.snr_warning_db:.0f} dB or more is easy to understand."
            )
            reasons.append(_reason("low_speech_to_noise", severity, message))
    return reasons


# (code, severity, message) for each camera and microphone state worth a reason. Severities
# (docs/quality-model.md, "The devices"): a device the browser could not find or start is
# critical, since the session as planned cannot run from this device; one that opened but whose
# picture or sound did not get through is a warning (usually a cover, a mute switch, a volume
# or another device chosen, and the check cannot tell which); a permission the person did not
# give is info, since it is "not measured" by their choice.
_CAMERA_REASONS: Mapping[str, tuple[str, str, str]] = MappingProxyType(
    {
        "denied": ("camera_not_allowed", "info", "You did not allow this page to use your camera, so it was not checked."),
        "absent": ("camera_not_found", "critical", "The check found no camera on this device, so the other person would not see you."),
        "error": ("camera_unavailable", "critical", "Your camera could not be started: another app may be using it."),
    }
)
_MICROPHONE_REASONS: Mapping[str, tuple[str, str, str]] = MappingProxyType(
    {
        "denied": (
            "microphone_not_allowed",
            "info",
            "You did not allow this page to use your microphone, so it and your room were not checked.",
        ),
        "absent": ("microphone_not_found", "critical", "The check found no microphone on this device, so the other person would not hear you."),
        "error": ("microphone_unavailable", "critical", "Your microphone could not be started: another app may be using it."),
    }
)


def _device_reasons(devices: DeviceFacts, t: Thresholds) -> list[Reason]:
    reasons = []
    if devices.camera in _CAMERA_REASONS:
        reasons.append(_reason(*_CAMERA_REASONS[devices.camera]))
    elif devices.camera == "ok" and devices.camera_black:
        reasons.append(_reason("camera_black", "warning", "Your camera's picture is black: its lens may be covered, or the room too dark."))
    elif devices.camera == "ok" and (message := _camera_quality_message(devices, t)):
        reasons.append(_reason("camera_low_quality", "warning", message))
    if devices.microphone in _MICROPHONE_REASONS:
        reasons.append(_reason(*_MICROPHONE_REASONS[devices.microphone]))
    elif devices.microphone == "ok" and devices.microphone_signal is False:
        # The same digital-silence test, code and words as the CLI's room probe.
        reasons.append(_reason("microphone_silent", "warning", _SILENT_MESSAGE))
    if devices.speaker == "not_heard":
        reasons.append(_reason("speaker_not_heard", "warning", "You did not hear the test tone, so you may not hear the other person either."))
    return reasons


def _camera_quality_message(devices: DeviceFacts, t: Thresholds) -> str | None:
    """Words for a camera that opened but delivers a jerky or a small picture; None when it
    delivers enough (or nothing of it was measured). A black picture says more and comes first."""
    slow = devices.camera_fps is not None and devices.camera_fps < t.camera_fps_warning_below
    lines = None if devices.camera_width is None or devices.camera_height is None else min(devices.camera_width, devices.camera_height)
    small = lines is not None and lines < t.camera_lines_warning_below
    size = f"{devices.camera_width}×{devices.camera_height}"
    if slow and small:
        return (
            f"Your camera sends only {devices.camera_fps:.0f} pictures a second, and small ones ({size}): the other "
            "person would see you move in jerks and your face blurred."
        )
    if slow:
        return (
            f"Your camera sends only {devices.camera_fps:.0f} pictures a second: the other person would see you move "
            "in jerks, and your lips may not keep up with your voice."
        )
    if small:
        return f"Your camera's picture is small ({size}): the other person would see your face blurred."
    return None


def _grade_below(value: float, warning: float, critical: float) -> str | None:
    """For measures where lower is worse (battery, signal, free memory, speech over noise)."""
    if value < critical:
        return "critical"
    if value < warning:
        return "warning"
    return None


# --------------------------------------------------------------------------------------------
# 6. The words. Fixes speak to a non-technical client: no jargon, one or two concrete steps.
# Messages and fixes are built from numbers only; error texts are never copied into them.
# --------------------------------------------------------------------------------------------

_FIXES: Mapping[str, str] = MappingProxyType(
    {
        "udp_blocked": (
            "A firewall or VPN is probably blocking the kind of traffic video calls rely on (UDP). Turn off any "
            "VPN and run the check again. On a work, school or hotel network, try your home network or your "
            "phone's hotspot. The call may still connect over a slower backup route (TCP), but sound and picture "
            "will suffer, so keep a phone nearby."
        ),
        "high_delay": (
            "Turn off any VPN, use a network cable instead of Wi-Fi if you can, and close apps that download or "
            "stream. If the delay stays, leave a short pause before you answer so you do not talk over each other."
        ),
        "high_upload_loss": (
            "Pause cloud backups, photo syncing and large uploads, and move closer to the router or use a network "
            "cable. If it keeps happening, restart your router."
        ),
        "high_download_loss": (
            "Ask others at home to pause streaming, games and large downloads, and move closer to the router or "
            "use a network cable. If it keeps happening, restart your router."
        ),
        "uncertain_upload_loss": (
            "Nothing to do now. If sound breaks up during the session, run the check again: a longer check gives "
            "a surer answer."
        ),
        "uncertain_download_loss": (
            "Nothing to do now. If sound breaks up during the session, run the check again: a longer check gives "
            "a surer answer."
        ),
        "borderline": (
            "Nothing is sure to go wrong, but nothing rules it out either. Run the check again closer to the "
            "session; if the same figure is borderline again, treat it as a problem and try the other fixes here."
        ),
        "high_upload_jitter": (
            "Use a network cable instead of Wi-Fi or move closer to the router, and pause cloud backups and other "
            "uploads during your session."
        ),
        "high_download_jitter": (
            "Use a network cable instead of Wi-Fi or move closer to the router, and ask others at home to pause "
            "video streaming and downloads during your session."
        ),
        "low_audio_quality": (
            "Work through the other items in this list first: they are what lowers the score. If it stays low, "
            "turning your camera off leaves more room for clear sound."
        ),
        "bufferbloat_download": (
            "Ask others at home to pause streaming, games and large downloads during your session, and use a "
            "network cable instead of Wi-Fi if you can. Whoever looks after your router can look for a setting "
            "that keeps calls smooth when the line is busy (often called QoS or smart queue)."
        ),
        "bufferbloat_upload": (
            "Pause cloud backups, photo syncing and large uploads during your session, and use a network cable "
            "instead of Wi-Fi if you can. Whoever looks after your router can look for a setting that keeps calls "
            "smooth when the line is busy (often called QoS or smart queue)."
        ),
        "low_upload_throughput": (
            "Someone on your network may be using most of the upload: pause cloud backups, photo syncing and large "
            "uploads, and move closer to the router or use a network cable. If it stays low, a call with sound "
            "only may work better than video."
        ),
        "low_download_throughput": (
            "Ask others at home to pause streaming, games and large downloads, and move closer to the router or "
            "use a network cable. If it stays low, a call with sound only may work better than video."
        ),
        "throughput_test_failed": (
            "Run the check again in a few minutes. If it fails again, restart your router or try another network, "
            "such as your phone's hotspot."
        ),
        "throughput_not_measured": "Nothing to do now. If the picture freezes during the session, run the check again.",
        "high_cpu": (
            "Close programs you do not need during the session, especially other video apps, games and browser "
            "tabs with videos."
        ),
        "low_memory": "Close programs and browser tabs you do not need during the session, or restart the computer before it.",
        "swapping": "Close programs and browser tabs you do not need, or restart the computer before the session.",
        "low_battery": "Plug in your charger before the session starts.",
        "weak_wifi": "Move closer to your router, or connect with a network cable if you can.",
        "background_upload": (
            "Pause cloud backups, photo or file syncing and large uploads on this computer during your session."
        ),
        "background_download": (
            "Pause downloads, updates and streaming on this computer during your session."
        ),
        "no_microphone": (
            "Plug in a headset or microphone, or check that your computer lets apps use the microphone, then run "
            "the check again. Without one the other person cannot hear you."
        ),
        "microphone_busy": "Close other programs that use the microphone (another call or a recorder), then run the check again.",
        "microphone_silent": (
            "Check that your microphone is not muted (a button on the headset or keyboard, or in your sound "
            "settings) and that the right microphone is chosen, then run the check again."
        ),
        "microphone_clipping": "Move a little further from the microphone, or turn down its input volume in your sound settings.",
        "noisy_room": (
            "Find a quieter room if you can, switch off fans, TVs or music nearby, and use a headset with a "
            "microphone close to your mouth."
        ),
        "intermittent_noise": (
            "Close the door and windows, and let others at home know when your session starts so it can stay quiet."
        ),
        "voices_in_background": (
            "Others may hear your session: find a private room, close the door, and use headphones so only you "
            "hear the other person."
        ),
        "low_speech_to_noise": (
            "Use a headset with a microphone close to your mouth, move away from sources of noise, or find a "
            "quieter room."
        ),
        "speech_not_heard": (
            "Check that the right microphone is chosen and not muted, then run the check again and read the "
            "sentence in your normal voice."
        ),
        "camera_not_allowed": (
            "If you did not mean to block it, allow this page to use your camera (in the browser's address bar "
            "or its settings) and run the check again. Your session will ask for the camera too: choose Allow."
        ),
        "camera_not_found": (
            "Plug in a webcam, or join the session from a phone, tablet or laptop that has a camera, and run the "
            "check again there."
        ),
        "camera_unavailable": (
            "Close other apps that use the camera (Zoom, Teams, FaceTime or another browser tab) and run the check "
            "again. If it still fails, unplug and plug in the camera again, or restart the device."
        ),
        "camera_black": (
            "Open the camera's cover or shutter if it has one, turn on a light in front of you, and run the check "
            "again."
        ),
        "camera_low_quality": (
            "Turn on a light in front of you (cameras slow down in the dark) and close other apps that use the "
            "camera. If you have a better camera (a laptop's, a phone's or a plugged-in webcam), use that one, "
            "then run the check again."
        ),
        "microphone_not_allowed": (
            "If you did not mean to block it, allow this page to use your microphone (in the browser's address "
            "bar or its settings) and run the check again. Your session will ask for the microphone too: choose "
            "Allow."
        ),
        "microphone_not_found": (
            "Plug in a headset or microphone, or join the session from a phone, tablet or laptop that has one, "
            "and run the check again there."
        ),
        "microphone_unavailable": (
            "Close other apps that use the microphone (another call, a recorder or another browser tab) and run "
            "the check again. If it still fails, unplug and plug in the headset again, or restart the device."
        ),
        "speaker_not_heard": (
            "Turn the volume up, check that the sound is not muted and that the right speakers or headphones are "
            "chosen in your sound settings, then run the check again."
        ),
    }
)

# Added to the fix of every critical reason that does not already carry its own fallback:
# an unbroken, predictable session matters more than a perfect picture.
CRITICAL_FALLBACK = "If it does not improve, warn the person you are meeting and keep a phone nearby as a backup."
_HAS_OWN_FALLBACK = frozenset({"udp_blocked"})


def fix_text(code: str, severity: str) -> str:
    """The fix shown for a reason ``code`` at ``severity`` (for documentation and tests)."""
    fix = _FIXES[code]
    if severity == "critical" and code not in _HAS_OWN_FALLBACK:
        fix = f"{fix} {CRITICAL_FALLBACK}"
    return fix


def _reason(code: str, severity: str, message: str) -> Reason:
    return Reason(code=code, severity=severity, message=message, fix=fix_text(code, severity))


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _ms(value: float) -> str:
    return f"{value:.0f} ms"


def _pct(ratio: float) -> str:
    return percent(ratio, sep="")  # "8.0%": the form a client reads (the risk engine writes "8.0 %")


def _mbps(value: float) -> str:
    if value < 0.1:
        return f"{value:.2f} Mbit/s"
    return f"{value:.1f} Mbit/s" if value < 10 else f"{value:.0f} Mbit/s"
