"""Many Python stand-ins for the browser check's page at once (tests/rtc/page_client.py), for the
network lab: one process, one aiortc peer per check link, all streams concurrent.

Standalone script, started inside the lab's client namespace. Reads one JSON object from stdin,
so that no secret is on a command line::

    {"url": "http://10.77.0.6:4000", "secrets": ["...", ...], "seconds": 15}

Prints one JSON object: ``{"pages": [{"outcome": {"rtc": ..., "monitor_port": N} or {"error": ...},
"opened_wall_ns"}...]}``, in the order of the secrets; the whole stream is each one's idle phase.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rtc"))
from page_client import run_stream  # after the path above: a sibling folder's standalone script

CANDIDATE_PORT = re.compile(r"a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ host", re.IGNORECASE)


async def one(url: str, secret: str, seconds: float) -> dict:
    opened = time.time_ns()
    try:
        rtc = await run_stream(url, f"Link {secret}", seconds=seconds, phases={"idle": (0.0, seconds + 1)})
    except Exception as error:  # noqa: BLE001 - a failed page is a row of the result
        return {"outcome": {"error": {"code": type(error).__name__, "message": str(error)[:300]}}, "opened_wall_ns": opened}
    port = CANDIDATE_PORT.search(rtc.pop("answer_sdp"))
    return {"outcome": {"rtc": rtc, "monitor_port": int(port.group(1)) if port else None}, "opened_wall_ns": opened}


async def main() -> None:
    job = json.load(sys.stdin)
    pages = await asyncio.gather(*(one(job["url"], secret, job["seconds"]) for secret in job["secrets"]))
    json.dump({"pages": pages, "console_errors": []}, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
