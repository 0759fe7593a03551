"""Telling the person at this machine that their pre-session check is not ``ready``.

A desktop notification where the OS offers one from the command line (``notify-send`` on
Linux, ``osascript`` on macOS); Windows has no such command without extra packages, so
there, and whenever the notification cannot be shown, the message is only logged. The text
is the verdict and the most important fix in plain words: nothing about the client, no numbers
that say who or where.

The command runner and the program lookup are passed in, so tests can see what would run
without a desktop.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sessionready import schema

CommandRunner = Callable[[Sequence[str], float], int]  # argv, timeout (s) -> exit status
Which = Callable[[str], "str | None"]

TITLES = {
    "ready": "Ready for your session",
    "at_risk": "Your session may have glitches",
    "not_ready": "Not ready for your session",
}
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def run_command(argv: Sequence[str], timeout_s: float) -> int:
    """Run a notifier program; its output is not ours to show. Raises OSError or TimeoutExpired."""
    return subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout_s, check=False).returncode


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    urgent: bool


def message_for(report: schema.CheckReport) -> Message:
    """The verdict as a title; the most severe reason's fix (the first such one) as the body."""
    reasons = sorted(report.reasons, key=lambda r: SEVERITY_ORDER.get(r.severity, 3))
    if reasons:
        top = reasons[0]
        body = f"{top.message} {top.fix}".strip()
    else:
        body = "Run 'sessionready check' for details."
    return Message(f"sessionready: {TITLES[report.verdict]}", body, report.verdict == "not_ready")


def applescript_string(text: str) -> str:
    """A double-quoted AppleScript string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Notifier:
    """Shows a message on the desktop where it can, and always logs it."""

    def __init__(
        self,
        *,
        platform: str | None = None,
        which: Which = shutil.which,
        run: CommandRunner = run_command,
        logger: logging.Logger | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self._platform = sys.platform if platform is None else platform
        self._which = which
        self._run = run
        self._log = logger or logging.getLogger("sessionready.agent")
        self._timeout_s = timeout_s

    def command(self, message: Message) -> list[str] | None:
        """The program to run for this OS, or None when there is none (then: log only)."""
        if self._platform == "darwin":
            program = self._which("osascript")
            if program is None:
                return None
            script = f"display notification {applescript_string(message.body)} with title {applescript_string(message.title)}"
            return [program, "-e", script]
        if self._platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
            program = self._which("notify-send")
            if program is None:
                return None
            urgency = "critical" if message.urgent else "normal"
            return [program, "--app-name=sessionready", f"--urgency={urgency}", message.title, message.body]
        return None  # Windows and the rest: no notifier without extra packages

    def notify(self, report: schema.CheckReport, session_id: str | None = None) -> str:
        """Blocking (up to the timeout): call it from a thread. Returns how the person was told:
        the notifier program's name, or "log"."""
        message = message_for(report)
        fields = {"verdict": report.verdict, "session_id": session_id}
        self._log.warning("%s: %s", message.title, message.body, extra={"fields": fields})
        argv = self.command(message)
        if argv is None:
            self._log.info("no desktop notifier on this system: the message above is the notification", extra={"fields": fields})
            return "log"
        try:
            status = self._run(argv, self._timeout_s)
        except (OSError, subprocess.TimeoutExpired) as error:
            self._log.warning("desktop notification failed (%s): the message above is the notification", error.__class__.__name__, extra={"fields": fields})
            return "log"
        if status != 0:
            # Typically no desktop session (no D-Bus session bus) for a system service.
            self._log.warning("desktop notification failed (exit status %d): the message above is the notification", status, extra={"fields": fields})
            return "log"
        return argv[0].rsplit("/", 1)[-1]
