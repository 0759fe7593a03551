"""What the browser check's page posts (docs/browser-check.md section 4), and how its facts map
onto the check report every check shares.

Dependency-free, like the schema: the monitor decodes a ``BrowserCheck`` strictly with
``sessionready.typed`` and builds a ``schema.CheckReport`` from it. The network part is not
here: the monitor computes it from its own records of the WebRTC probe stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sessionready import schema
from sessionready.schema import MAX_MBPS, BrowserFamily, Devices
from sessionready.typed import limits

MAX_PROBES = 65_536  # probes one stream records (docs/browser-check.md section 3)
MAX_PAGE_MS = 86_400_000.0  # performance.now() of a page open for at most a day
RTC_ID_PATTERN = r"[0-9a-f]{32}"
RtcError = Literal["rtc_unsupported", "rtc_failed", "rtc_blocked"]

_page_ms = limits(ge=0, le=MAX_PAGE_MS)


@dataclass(frozen=True)
class BrowserInfo:
    """Only these two facts about the browser are kept."""

    family: BrowserFamily
    # None only for "other": a browser whose user agent names no version still gets checked.
    major: int | None = field(metadata=limits(ge=1, le=999))


@dataclass(frozen=True)
class Phases:
    """Each phase's start and end on the page's clock (``performance.now()``, ms); null when
    the phase did not run."""

    idle: tuple[float, float] | None = field(metadata=_page_ms)
    download: tuple[float, float] | None = field(metadata=_page_ms)
    upload: tuple[float, float] | None = field(metadata=_page_ms)


@dataclass(frozen=True)
class RtcRecords:
    """The page's side of the probe stream: how many probes it sent, and ``[seq, arrival_ms]``
    for every echo it received (arrival on the page's clock)."""

    rtc_id: str = field(metadata=limits(pattern=RTC_ID_PATTERN))
    sent: int = field(metadata=limits(ge=0, le=MAX_PROBES))
    echoes: tuple[tuple[int, float], ...] = field(metadata=limits(max_len=MAX_PROBES))
    phases: Phases


@dataclass(frozen=True)
class PageThroughput:
    """Sustained throughput the page measured against the monitor's probe endpoints (Mbit/s,
    ramp excluded); ``error`` a short code when a direction could not be measured."""

    down_mbps: float | None = field(metadata=limits(ge=0, le=MAX_MBPS))
    up_mbps: float | None = field(metadata=limits(ge=0, le=MAX_MBPS))
    error: str | None = field(default=None, metadata=limits(max_len=40, pattern=r"[a-z][a-z0-9_]*"))


@dataclass(frozen=True)
class PageRoom:
    """The room as the page's audio worklet measured it (meanings as docs/room.md says for the
    CLI; never calibrated). ``problem``: not_allowed (permission denied), no_device, device_error."""

    available: bool
    problem: Literal["not_allowed", "no_device", "device_error"] | None
    mode: Literal["passive", "interactive"]
    laeq_dbfs: float | None = field(metadata=limits(ge=-200, le=200))
    l90_dbfs: float | None = field(metadata=limits(ge=-200, le=200))
    l10_dbfs: float | None = field(metadata=limits(ge=-200, le=200))
    lmax_dbfs: float | None = field(metadata=limits(ge=-200, le=200))
    voice_ratio: float | None = field(metadata=limits(ge=0, le=1))
    snr_db: float | None = field(metadata=limits(ge=-200, le=200))
    speech_detected: bool | None
    silent: bool
    clipping_ratio: float | None = field(metadata=limits(ge=0, le=1))


@dataclass(frozen=True)
class PageDevice:
    """What the browser offers about the machine; null where it offers nothing. ``connection_type``
    is the Network Information API's ``type``."""

    cores: int | None = field(metadata=limits(ge=1, le=4096))
    memory_gb: float | None = field(metadata=limits(ge=0, le=4096))
    battery_pct: float | None = field(metadata=limits(ge=0, le=100))
    battery_charging: bool | None
    connection_type: Literal["bluetooth", "cellular", "ethernet", "mixed", "none", "other", "unknown", "wifi", "wimax"] | None
    compute_pressure: Literal["nominal", "fair", "serious", "critical"] | None


@dataclass(frozen=True)
class BrowserCheck:
    """``POST /api/v1/link/checks``: one browser check's measurements. ``rtc`` is null exactly
    when ``rtc_error`` says why the probe stream could not run."""

    schema_version: Literal[1]
    started_at: str = field(metadata=limits(max_len=40, timestamp=True))
    duration_s: float = field(metadata=limits(ge=0, le=86_400))
    browser: BrowserInfo
    rtc: RtcRecords | None
    rtc_error: RtcError | None
    throughput: PageThroughput
    devices: Devices
    room: PageRoom | None
    device: PageDevice | None


# The Network Information API's connection types, as the report's link types.
LINK_TYPES: dict[str, schema.LinkType] = {
    "ethernet": "wired",
    "wifi": "wifi",
    "cellular": "cellular",
    "wimax": "cellular",
    "bluetooth": "other",
    "mixed": "other",
    "other": "other",
    "none": "unknown",
    "unknown": "unknown",
}


def consistency_problem(check: BrowserCheck) -> tuple[str, str] | None:
    """(field, message) for what the schema alone cannot say is wrong, or None."""
    if check.browser.major is None and check.browser.family != "other":
        return "browser.major", "the major version may be left out (null) only for family 'other'"
    if (check.rtc is None) == (check.rtc_error is None):
        return "rtc_error", "give either the probe stream's records (rtc) or why it could not run (rtc_error), not both and not neither"
    if check.rtc is not None:
        for i, (seq, arrival_ms) in enumerate(check.rtc.echoes):
            if not 0 <= seq < check.rtc.sent:
                return f"rtc.echoes[{i}][0]", f"an echo's seq must be from 0 to sent - 1 ({check.rtc.sent - 1})"
            if not 0 <= arrival_ms <= MAX_PAGE_MS:
                return f"rtc.echoes[{i}][1]", f"an arrival time must be from 0 to {MAX_PAGE_MS:.0f} ms"
        for name in ("idle", "download", "upload"):
            span = getattr(check.rtc.phases, name)
            if span is not None and span[0] > span[1]:
                return f"rtc.phases.{name}", "a phase must end after it starts"
    if check.room is not None and check.room.available == (check.room.problem is not None) and check.room.problem != "device_error":
        return "room.problem", "a room that was not available says why (problem), and one that was says none (device_error aside)"
    return None


def browser_label(info: BrowserInfo) -> str:
    """``chrome 131``: the report's ``browser`` field."""
    return info.family if info.major is None else f"{info.family} {info.major}"


def machine(device: PageDevice) -> schema.Machine:
    """The machine part of the report: battery and link type from the browser; CPU, memory, swap
    and background traffic are not measured in a browser (null, never guessed)."""
    link_type = LINK_TYPES[device.connection_type] if device.connection_type is not None else "unknown"
    return schema.Machine(
        cpu_pct=None,
        memory_available_pct=None,
        swap_bytes_per_s=None,
        battery_pct=device.battery_pct,
        battery_charging=device.battery_charging,
        battery_time_left_s=None,
        link=schema.Link(type=link_type, speed_mbps=None, wifi_signal_dbm=None),
        background_traffic_mbps=schema.Throughput(down=None, up=None),
        error=None,
    )


def room(page: PageRoom) -> schema.Room:
    """The room part of the report: the page's levels, never calibrated."""
    return schema.Room(
        available=page.available,
        problem=page.problem,
        mode=page.mode,
        laeq_dbfs=page.laeq_dbfs,
        l90_dbfs=page.l90_dbfs,
        l10_dbfs=page.l10_dbfs,
        lmax_dbfs=page.lmax_dbfs,
        voice_ratio=page.voice_ratio,
        snr_db=page.snr_db,
        speech_detected=page.speech_detected,
        calibrated=False,
        silent=page.silent,
        clipping_ratio=page.clipping_ratio,
    )


def no_stream_network(udp_error: str, sent: int, throughput: PageThroughput) -> schema.Network:
    """The network part when the probe stream gave no numbers (``udp_error`` says why): only
    the page's throughput."""
    return schema.Network(
        path="monitor",
        rtt_ms=None,
        jitter_ms=None,
        loss=None,
        packets=schema.Packets(sent=sent, received=0, reflected=None),
        reordered=schema.Counts(0, 0),
        duplicates=schema.Counts(0, 0),
        throughput_mbps=schema.Throughput(down=throughput.down_mbps, up=throughput.up_mbps),
        loaded_latency_ms=schema.LoadedLatency(down=None, up=None),
        udp_error=udp_error,
        throughput_error=throughput.error,
    )
