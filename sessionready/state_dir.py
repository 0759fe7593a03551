"""Where sessionready keeps state on this machine: what it made and needs again at the next
start (the agent's spool, the dashboard's cookie secret) — not config, not cache."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path


def state_dir(component: str = "", environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """systemd's ``StateDirectory=`` when run as a service (the unit's own directory, as it is),
    else the user's state directory for ``platform`` (default ``sys.platform``) with
    ``sessionready/`` and then ``component`` (if given) under it. Not created here.

    ``environ`` defaults to ``os.environ``; tests pass their own.
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if environ.get("STATE_DIRECTORY"):
        # systemd passes a colon-separated list when a unit names several directories.
        return Path(environ["STATE_DIRECTORY"].split(":")[0])
    home = Path(environ.get("HOME") or Path.home())
    if platform == "win32":
        base = Path(environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(environ.get("XDG_STATE_HOME") or home / ".local" / "state")
    return base / "sessionready" / component if component else base / "sessionready"
