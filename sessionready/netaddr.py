"""Host-name rules shared by the agent and the monitor (standard library only).

Both refuse to send secrets (a token, a webhook URL's embedded key) over plain HTTP unless the
peer is on this machine; they must agree on what "this machine" means.
"""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1), bracketed or not."""
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
