"""Desktop notifications: what runs on each OS (through an injected command runner), and the
log line that stands in when there is no notifier."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from agents.daemon.notify import Notifier, message_for
from sessionready.schema import CheckReport
from sessionready.typed import decode

REPORT = json.loads((Path(__file__).parent.parent / "data" / "report.json").read_text())
CRITICAL = {"code": "high_download_jitter", "severity": "critical", "message": "Your connection's delay varies a lot.", "fix": 'Use a cable instead of Wi-Fi, or move closer to the router "now".'}
WARNING = {"code": "bufferbloat_upload", "severity": "warning", "message": "Delay grows when the line is busy.", "fix": "Pause downloads and backups during the session."}


def report(verdict: str, reasons: list[dict]) -> CheckReport:
    return decode(CheckReport, {**REPORT, "verdict": verdict, "reasons": reasons, "session_id": "s-1"})


class Recorder:
    """The command-runner seam: records what would run and answers with a status."""

    def __init__(self, status: int = 0, error: Exception | None = None) -> None:
        self.calls: list[tuple[list[str], float]] = []
        self.status = status
        self.error = error

    def __call__(self, argv: Sequence[str], timeout_s: float) -> int:
        self.calls.append((list(argv), timeout_s))
        if self.error is not None:
            raise self.error
        return self.status


def found(*names: str):  # noqa: ANN201
    return lambda name: f"/usr/bin/{name}" if name in names else None


def test_the_message_is_the_verdict_and_the_most_severe_fix() -> None:
    message = message_for(report("not_ready", [WARNING, CRITICAL]))
    assert message.title == "sessionready: Not ready for your session" and message.urgent
    assert message.body == f"{CRITICAL['message']} {CRITICAL['fix']}"
    at_risk = message_for(report("at_risk", [WARNING]))
    assert at_risk.title == "sessionready: Your session may have glitches" and not at_risk.urgent and "Pause downloads" in at_risk.body


def test_linux_uses_notify_send(caplog: pytest.LogCaptureFixture) -> None:
    runner = Recorder()
    notifier = Notifier(platform="linux", which=found("notify-send"), run=runner)
    assert notifier.notify(report("not_ready", [CRITICAL])) == "notify-send"
    [(argv, timeout_s)] = runner.calls
    assert argv[:3] == ["/usr/bin/notify-send", "--app-name=sessionready", "--urgency=critical"]
    assert argv[3] == "sessionready: Not ready for your session" and CRITICAL["fix"] in argv[4]
    assert 0 < timeout_s <= 10


def test_macos_uses_osascript_with_quoted_text() -> None:
    runner = Recorder()
    notifier = Notifier(platform="darwin", which=found("osascript"), run=runner)
    assert notifier.notify(report("at_risk", [CRITICAL])) == "osascript"
    [(argv, _)] = runner.calls
    assert argv[:2] == ["/usr/bin/osascript", "-e"]
    assert argv[2].startswith('display notification "Your connection') and 'router \\"now\\"."' in argv[2]
    assert argv[2].endswith('with title "sessionready: Your session may have glitches"')


def test_without_a_notifier_the_message_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sessionready.agent")
    for platform, which in (("linux", found()), ("win32", found("notify-send", "osascript"))):
        runner = Recorder()
        caplog.clear()
        assert Notifier(platform=platform, which=which, run=runner).notify(report("not_ready", [CRITICAL])) == "log"
        assert runner.calls == []
        text = caplog.text
        assert "Not ready for your session" in text and CRITICAL["fix"] in text and "no desktop notifier" in text


@pytest.mark.parametrize("runner", [Recorder(status=1), Recorder(error=FileNotFoundError(2, "gone")), Recorder(error=subprocess.TimeoutExpired("notify-send", 5))])
def test_a_failing_notifier_falls_back_to_the_log(runner: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sessionready.agent")
    assert Notifier(platform="linux", which=found("notify-send"), run=runner).notify(report("not_ready", [CRITICAL])) == "log"
    assert "desktop notification failed" in caplog.text and CRITICAL["fix"] in caplog.text


def test_the_real_runner_reports_a_missing_program() -> None:
    from agents.daemon.notify import run_command

    assert run_command(["true"], 5) == 0
    assert run_command(["false"], 5) == 1
    with pytest.raises(OSError):
        run_command(["/nonexistent/notify-send"], 5)
