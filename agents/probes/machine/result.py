"""What the machine probe returns: numbers for the report, and hints that stay on this machine.

``MachineResult`` holds only numbers, a link type and one plain sentence; none of it can name a
person, a program, a network or a device. The program names and the interface name the person
at the keyboard needs for a fix live in ``LocalHints``, which is deliberately *not* a dataclass
field of ``MachineResult``: ``dataclasses.fields``, ``asdict``, ``repr`` and
``sessionready.typed.encode`` all skip it, so building the report from the result cannot carry
it along by accident. Read it explicitly as ``result.local_hints``.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass
from typing import NamedTuple

from sessionready.schema import LinkType  # the report's link types: the probe names no other


@dataclass(frozen=True)
class LinkInfo:
    """The network connection that carries the default route.

    ``type``: "wired" (Ethernet), "wifi", "cellular" (mobile modem or phone tethering),
    "other" (known not to be one of those: a VPN tunnel, a bridge, a virtual interface) or
    "unknown" (could not tell). ``speed_mbps``: the negotiated link rate in Mbit/s (10^6 bit/s),
    for Wi-Fi the rate the OS reports for the current association; None when the OS does not
    say or the link is virtual. ``wifi_signal_dbm``: received signal strength in dBm (about
    -30 excellent .. -90 unusable), Wi-Fi only.
    """

    type: LinkType
    speed_mbps: float | None
    wifi_signal_dbm: float | None


UNKNOWN_LINK = LinkInfo("unknown", None, None)


@dataclass(frozen=True)
class ProgramUse:
    """A program (all its processes together) and its share of the whole machine's CPU, 0..100."""

    name: str
    cpu_pct: float


@dataclass(frozen=True)
class LocalHints:
    """For the terminal on this machine only; never sent, never stored, never logged remotely.

    ``top_programs``: at most three programs by CPU over the measurement window, busiest first.
    ``interface``: the name of the interface carrying the default route (e.g. "wlp2s0", "en0",
    "Wi-Fi"). ``wifi_radio``: the Wi-Fi standard when the OS says (e.g. "802.11ax").
    ``notes``: what could not be read, in detail (tool names, error classes), for the person at
    the keyboard and for local debugging.
    """

    top_programs: tuple[ProgramUse, ...] = ()
    interface: str | None = None
    wifi_radio: str | None = None
    notes: tuple[str, ...] = ()


class Problem(NamedTuple):
    """Something that could not be read.

    ``what`` is a fixed phrase that names only the measurement ("the Wi-Fi signal strength"),
    safe for the wire; ``detail`` may name tools, interfaces or errors and stays local.
    """

    what: str
    detail: str


@dataclass(frozen=True)
class MachineResult:
    """The health of this machine just before a session. Every number may be None (not read).

    cpu_pct                  busy share of all CPU cores over the window, 0..100
    memory_available_pct     memory available to new programs without swapping, % of total
    swap_bytes_per_s         bytes swapped in plus out per second over the window; None where
                             the OS does not count it (Windows)
    battery_pct              0..100; None when there is no battery (normal on a desktop)
    battery_charging         True when on mains power (plugged in), whether or not the battery
                             is actually charging; None when unknown or no battery
    battery_time_left_s      seconds of battery left at the current drain; None when plugged in,
                             still being estimated, or no battery
    link                     the connection carrying the default route
    background_traffic_mbps_up / _down
                             traffic on that connection over the window, in Mbit/s, before the
                             check sends anything: other programs on this machine
    error                    one plain sentence naming what could not be read, or None

    ``local_hints`` is a property, not a field: see the module docstring. Pass it as
    ``hints=`` when constructing. ``dataclasses.replace`` drops it (it returns empty hints).
    """

    cpu_pct: float | None
    memory_available_pct: float | None
    swap_bytes_per_s: float | None
    battery_pct: float | None
    battery_charging: bool | None
    battery_time_left_s: float | None
    link: LinkInfo
    background_traffic_mbps_up: float | None
    background_traffic_mbps_down: float | None
    error: str | None
    hints: InitVar[LocalHints | None] = None

    def __post_init__(self, hints: LocalHints | None) -> None:
        object.__setattr__(self, "_local_hints", hints if hints is not None else LocalHints())

    @property
    def local_hints(self) -> LocalHints:
        return self._local_hints  # type: ignore[attr-defined, no-any-return]


def error_sentence(problems: list[Problem] | tuple[Problem, ...]) -> str | None:
    """"Could not read a, b and c." from the fixed phrases, each once, in first-seen order."""
    whats = list(dict.fromkeys(p.what for p in problems))
    if not whats:
        return None
    listed = whats[0] if len(whats) == 1 else ", ".join(whats[:-1]) + " and " + whats[-1]
    return f"Could not read {listed}."


# The fixed phrases of ``Problem.what``: the only words about a failure that leave the machine.
CPU = "the CPU load"
MEMORY = "the memory use"
SWAP = "the swap activity"
BATTERY = "the battery"
ROUTE = "which network connection is in use"
LINK_TYPE = "the type of network connection"
WIFI_SIGNAL = "the Wi-Fi signal strength"
WIFI_RATE = "the Wi-Fi link rate"
TRAFFIC = "the other traffic on this computer"
PROGRAMS = "which programs use the CPU"  # local only: the wire carries no programs
