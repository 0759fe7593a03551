"""The upload sink's record of how a body arrived (``progress``), which the browser check's page
uses to place an upload's bytes in time (monitor/static/check/throughput.js, receivedSpans)."""

from __future__ import annotations

import json
import socket
import time
from itertools import pairwise
from urllib.parse import urlsplit

from tests.conftest import Monitor


def test_upload_answer_records_when_the_body_arrived(shared_monitor: Monitor) -> None:
    token = shared_monitor.token("client", "c-ul-progress")
    url = urlsplit(shared_monitor.url)
    pieces, piece_bytes, pause_s = 8, 32_768, 0.06
    total = pieces * piece_bytes
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        head = (
            f"POST /api/v1/probe/upload HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode())
        started = time.monotonic()
        for _ in range(pieces):  # a body that arrives over about half a second
            sock.sendall(b"x" * piece_bytes)
            time.sleep(pause_s)
        sent_over_s = time.monotonic() - started
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    status_line, _, rest = raw.partition(b"\r\n")
    assert b" 200 " in status_line, raw[:500]
    answer = json.loads(rest.partition(b"\r\n\r\n")[2])
    progress = answer["progress"]
    assert answer["received_bytes"] == total
    assert progress[0] == [0.0, 0]
    assert progress[-1][1] == total
    times = [t for t, _ in progress]
    counts = [n for _, n in progress]
    assert times == sorted(times) and counts == sorted(counts)
    assert times[-1] <= answer["duration_s"]
    # The pieces came 60 ms apart: the record follows them (points at least 25 ms apart, but
    # for the last, which closes the record), and the body's arrival spans most of the time it
    # took to send.
    assert len(progress) >= pieces // 2, progress
    assert all(b - a >= 0.025 for a, b in pairwise(times[1:-1])), progress
    assert answer["duration_s"] >= 0.7 * (sent_over_s - pause_s), (answer, sent_over_s)
