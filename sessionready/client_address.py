"""The address a dashboard login came from, told to the monitor in a header it can trust.

Every dashboard login reaches the monitor from the dashboard's own address. So that the
monitor can still limit logins per person, the dashboard names the browser's address in
``X-Sessionready-Client-Address``, signed with HMAC-SHA256 under a secret that only the
dashboard and the monitor hold (a file each is configured with: ``client_address_secret_file``).
A header without a valid signature, or older than ``MAX_AGE_S``, is ignored by the monitor.

Standard library only: the monitor and the dashboard both import it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from pathlib import Path

from sessionready.config import ConfigError

HEADER = "X-Sessionready-Client-Address"
VERSION = "v1"
# How old (or how far in the future) a signature may be, in seconds: wide enough for clocks of
# two machines kept by NTP, short enough that a header seen on the wire is soon worthless.
MAX_AGE_S = 120
MIN_SECRET_CHARS = 32  # at least 128 random bits as hex


def read_shared_secret(path: str) -> bytes:
    """The secret in ``path`` (surrounding white space removed); ConfigError in one sentence if
    the file is missing, unreadable or too short. The secret itself is never in the message."""
    try:
        text = Path(path).read_text().strip()
    except OSError as error:
        raise ConfigError(f"cannot read the client address secret file {path}: {error.strerror or error.__class__.__name__}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the client address secret file {path} is not text: write e.g. 64 hex digits into it") from None
    if len(text) < MIN_SECRET_CHARS:
        raise ConfigError(f"the client address secret file {path} holds fewer than {MIN_SECRET_CHARS} characters: use at least 128 random bits")
    return text.encode()


def _mac(secret: bytes, address: str, timestamp_s: int) -> str:
    message = f"{VERSION}\n{address}\n{timestamp_s}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(secret: bytes, address: str, now_s: float) -> str:
    """The header value naming ``address`` (an IP address) at unix time ``now_s``."""
    normal = str(ipaddress.ip_address(address))
    timestamp_s = int(now_s)
    return f"{VERSION};{normal};{timestamp_s};{_mac(secret, normal, timestamp_s)}"


def verify(secret: bytes, value: str, now_s: float, max_age_s: float = MAX_AGE_S) -> str | None:
    """The address a header value names, if it is signed with ``secret`` and at most
    ``max_age_s`` seconds from ``now_s`` (unix seconds); None otherwise."""
    parts = value.strip().split(";")
    if len(parts) != 4 or parts[0] != VERSION:
        return None
    _, address, timestamp, mac = parts
    try:
        normal = str(ipaddress.ip_address(address))
        timestamp_s = int(timestamp)
    except ValueError:
        return None
    if normal != address or abs(now_s - timestamp_s) > max_age_s:
        return None
    return address if hmac.compare_digest(mac, _mac(secret, address, timestamp_s)) else None
