"""The one state-directory lookup (sessionready/state_dir.py) that the agent and the dashboard share."""

from __future__ import annotations

from pathlib import Path

from sessionready.state_dir import state_dir


def test_a_component_gets_its_own_directory_unless_systemd_gave_one() -> None:
    home = {"HOME": "/home/ana"}
    assert state_dir("dashboard", home, "linux") == Path("/home/ana/.local/state/sessionready/dashboard")
    assert state_dir("", {**home, "XDG_STATE_HOME": "/xdg"}, "linux") == Path("/xdg/sessionready")
    # The unit's own directory is used as it is: systemd made it for this one service.
    assert state_dir("dashboard", {**home, "STATE_DIRECTORY": "/var/lib/sr-dashboard:/var/lib/other"}, "linux") == Path("/var/lib/sr-dashboard")
    assert state_dir("dashboard", {"HOME": "/Users/ana"}, "darwin") == Path("/Users/ana/Library/Application Support/sessionready/dashboard")
