"""TCP-connect round trip to the video platform's own servers (``--target HOST:PORT``).

The monitor is only a proxy for the real media path; a connect time to the platform's edge
shows whether that path is much worse. A connect is one SYN / SYN-ACK round trip plus the
local stack's overhead, so it reads slightly above the true RTT.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from sessionready.stats import percentile

TARGET_PATTERN = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$")


@dataclass(frozen=True)
class TargetSettings:
    attempts: int = 5
    timeout_s: float = 3.0
    pause_s: float = 0.1


@dataclass(frozen=True)
class TargetResult:
    target: str
    connect_ms: tuple[float, float, float] | None  # min, p50, p95
    attempts: int
    failures: int
    error: str | None


def parse_target(raw: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); ValueError with a sentence otherwise."""
    match = TARGET_PATTERN.match(raw.strip())
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise ValueError(f"'{raw}' is not HOST:PORT (e.g. zoom.us:443)")
    return match.group(1).strip("[]"), int(match.group(2))


async def measure_target(raw: str, settings: TargetSettings = TargetSettings(), *, monotonic: Callable[[], float] = time.monotonic) -> TargetResult:
    host, port = parse_target(raw)
    times: list[float] = []
    last_error: str | None = None
    for attempt in range(settings.attempts):
        if attempt:
            await asyncio.sleep(settings.pause_s)
        try:
            # Resolve first so DNS time is not counted as network delay.
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            started = monotonic()
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(*infos[0][4][:2]), settings.timeout_s)
            times.append((monotonic() - started) * 1000)
            writer.close()
        except socket.gaierror:
            last_error = f"cannot resolve {host}"
            break
        except TimeoutError:
            last_error = f"no answer from {raw} within {settings.timeout_s:g} s"
        except ConnectionRefusedError:
            last_error = f"{raw} refused the connection"
        except OSError as error:
            last_error = f"cannot connect to {raw} ({error.__class__.__name__})"
    summary = (min(times), percentile(times, 50), percentile(times, 95)) if times else None
    return TargetResult(raw, summary, settings.attempts, settings.attempts - len(times), None if times else last_error)
