"""Terminal output for the check: a progress line per phase, then verdict, fixes, numbers."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from agents.probes.machine import LocalHints
from sessionready.schema import CheckReport, PhaseRun

# Colour plus a symbol and a word: never colour alone (colour-blind safe, and plain logs).
VERDICT_STYLE = {
    "ready": ("✔", "READY", "bold green", "Your connection looks good for a video session."),
    "at_risk": ("!", "AT RISK", "bold yellow", "The session may have glitches. The fixes below help."),
    "not_ready": ("✖", "NOT READY", "bold red", "A video session is likely to fail. Please try the fixes below."),
}
SEVERITY_MARK = {"critical": ("✖", "red"), "warning": ("!", "yellow"), "info": ("i", "cyan")}


class TerminalProgress:
    """A live line per phase on stderr; silent when stderr is not a terminal."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> TerminalProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def phase_started(self, name: str, label: str, expected_s: float) -> None:
        self._tasks[name] = self._progress.add_task(label, total=None)

    def phase_finished(self, name: str, summary: str) -> None:
        task = self._tasks.get(name)
        if task is not None:
            self._progress.update(task, total=1, completed=1)


def _value(value: float | None, unit: str, digits: int = 1) -> str:
    return "not measured" if value is None else f"{value:.{digits}f} {unit}"


def _increase(value: float | None) -> str:
    return "not measured" if value is None else f"{max(0.0, value):+.1f} ms"


def _percent(value: float | None) -> str:
    return "not measured" if value is None else f"{value * 100:.2f} %"


class TerminalPrompter:
    """Shows the room probe's requests ("stay quiet", "read this sentence") above the progress."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def say(self, text: str) -> None:
        self._console.print(Text(f"  🎤 {text}", style="bold magenta"))


def render_report(
    console: Console, report: CheckReport, submit_note: str, hints: LocalHints | None = None, room_error: str | None = None
) -> None:
    symbol, word, style, sentence = VERDICT_STYLE[report.verdict]
    console.print()
    console.print(Text(f" {symbol} {word} ", style=f"{style} reverse"), Text(f" {sentence}", style=style))
    if report.reasons:
        console.print()
        for reason in report.reasons:
            mark, colour = SEVERITY_MARK[reason.severity]
            console.print(Text(f" {mark} ", style=colour), Text(reason.message, style="bold"))
            console.print(Text(f"    What to do: {reason.fix}"))
            if reason.code == "high_cpu" and hints is not None and hints.top_programs:
                # Shown here only: program names never leave this computer.
                busiest = ", ".join(f"{p.name} ({p.cpu_pct:.0f} %)" for p in hints.top_programs)
                console.print(Text(f"    Busiest programs right now: {busiest}"))
    network = report.network
    table = Table(title="Measurements (this computer ↔ the monitor)", title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column("what", style="dim")
    table.add_column("value")
    if network.rtt_ms:
        table.add_row("Round trip", f"{network.rtt_ms.p50:.1f} ms typical (min {network.rtt_ms.min:.1f}, 95 % under {network.rtt_ms.p95:.1f})")
    else:
        table.add_row("Round trip", "not measured")
    # The figure the verdict judged (mean |D|), so that the number agrees with the reasons;
    # RFC 3550's J stays in the JSON report (jitter_ms), and is shown for a report without it.
    jitter = network.jitter_mean_ms or network.jitter_ms
    if jitter:
        table.add_row("Jitter", f"up {_value(jitter.up, 'ms')}, down {_value(jitter.down, 'ms')}")
    if network.loss:
        loss = network.loss
        table.add_row(
            "Packet loss",
            f"up {_percent(loss.up)} (95 % CI {loss.up_ci95[0] * 100:.1f}–{loss.up_ci95[1] * 100:.1f} %), "
            f"down {_percent(loss.down)} (95 % CI {loss.down_ci95[0] * 100:.1f}–{loss.down_ci95[1] * 100:.1f} %)",
        )
    table.add_row("Packets", f"{network.packets.sent} sent, {network.packets.received} came back")
    table.add_row("Download", _value(network.throughput_mbps.down, "Mbit/s"))
    table.add_row("Upload", _value(network.throughput_mbps.up, "Mbit/s"))
    table.add_row(
        "Delay when busy",
        f"{_increase(network.loaded_latency_ms.down)} downloading, {_increase(network.loaded_latency_ms.up)} uploading",
    )
    quality = report.quality
    table.add_row("Call quality", f"MOS {_value(quality.mos, '', 2).strip()} (R {_value(quality.r_factor, '', 0).strip()}), video up to {quality.video_tier.replace('_', ' ')}")
    for target in report.targets:
        if target.connect_ms:
            table.add_row(f"Connect to {target.target}", f"{target.connect_ms.p50:.1f} ms typical ({target.failures} of {target.attempts} failed)")
        else:
            table.add_row(f"Connect to {target.target}", target.error or "failed")
    if report.speedtest is not None:
        st = report.speedtest
        if st.available:
            table.add_row("speedtest.net", f"down {_value(st.download_mbps, 'Mbit/s')}, up {_value(st.upload_mbps, 'Mbit/s')}, ping {_value(st.ping_ms, 'ms')} ({st.server})")
        else:
            table.add_row("speedtest.net", f"unavailable: {st.error}")
    machine = report.machine
    if machine is not None:
        link = {"wired": "cable", "wifi": "Wi-Fi", "cellular": "mobile data", "other": "other (VPN or virtual)", "unknown": "unknown"}[machine.link.type]
        if machine.link.wifi_signal_dbm is not None:
            link += f", signal {machine.link.wifi_signal_dbm:.0f} dBm"
        if hints is not None and hints.interface:
            link += f" ({hints.interface})"
        table.add_row("Connection", link)
        table.add_row("Computer", f"CPU {_value(machine.cpu_pct, '%', 0)} busy, memory {_value(machine.memory_available_pct, '%', 0)} free")
        if machine.battery_pct is not None:
            state = "charging" if machine.battery_charging else "on battery"
            table.add_row("Battery", f"{machine.battery_pct:.0f} % ({state})")
        traffic = machine.background_traffic_mbps
        table.add_row("Other traffic", f"up {_value(traffic.up, 'Mbit/s', 2)}, down {_value(traffic.down, 'Mbit/s', 2)} (before the check)")
    room = report.room
    if room is not None:
        if room.available:
            unit = "dBA" if room.calibrated else "dBFS(A)"
            parts = [f"noise floor {_value(room.l90_dbfs, unit, 0)}", f"peaks {_value(room.l10_dbfs, unit, 0)}"]
            if room.voice_ratio is not None:
                parts.append(f"other voices {room.voice_ratio * 100:.0f} % of the time")
            if room.snr_db is not None:
                parts.append(f"your voice {room.snr_db:.0f} dB above the noise")
            table.add_row("Room", ", ".join(parts))
        elif room.problem == "not_allowed":
            table.add_row("Room", "not measured (the microphone is not allowed in your config)")
        else:
            table.add_row("Room", f"not measured: {room_error or room.problem}")
    for error in (network.udp_error, network.throughput_error, machine.error if machine else None):
        if error:
            table.add_row("Problem", error)
    console.print()
    console.print(table)
    console.print()
    if report.phases:
        console.print(Text(phases_line(report.phases), style="dim"))
    console.print(Text(f"Check {report.check_id} took {report.duration_s:.1f} s. {submit_note}", style="dim"))


_STOPPED = {
    "settled": "settled",
    "fixed_length": "fixed length",
    "failed": "did not finish",
}


def phases_line(phases: tuple[PhaseRun, ...]) -> str:
    """How long each network phase ran and why it stopped, in one line, e.g. "Phases: idle
    7.7 s (settled), download 2.0 s (settled), upload 2.1 s (settled)."."""
    parts = []
    for phase in phases:
        if phase.stopped == "max_length":
            why = f"stopped at its longest, {phase.max_s:g} s" if phase.max_s is not None else "stopped at its longest"
            if phase.unsettled:
                why += "; still unsettled: " + ", ".join(u.figure.replace("_", " ") for u in phase.unsettled)
        else:
            why = _STOPPED[phase.stopped]
        parts.append(f"{phase.name} {phase.seconds:.1f} s ({why})")
    return "Phases: " + ", ".join(parts) + "."
