"""A local server speaking the legacy speedtest.net HTTP protocol, for the speedtest probe's tests.

It answers what speedtest-cli 2.1.3 asks for: `/speedtest/latency.txt`,
`/speedtest/random{N}x{N}.jpg`, `/speedtest/upload.php`, and, as speedtest.net,
`/speedtest-config.php` and the server list. It also works as an HTTP proxy for plain http://
requests (it routes on the path of an absolute URI), so pointing `http_proxy` at it makes it
stand in for speedtest.net without any traffic leaving the machine.

It counts what it really sent and received, with monotonic timestamps: that is the ground truth
the probe's Mbit/s are checked against.

    with LegacySpeedtestServer() as server:
        config = SpeedtestConfig(servers=(server.server_entry,))
"""

from __future__ import annotations

import enum
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from urllib.parse import urlsplit

# The sizes of the random{N}x{N}.jpg files on real legacy speedtest servers, in bytes. The
# library requests N in 350..4000 and counts every body byte it reads until end of file.
LEGACY_DOWNLOAD_BYTES = MappingProxyType(
    {
        350: 245388,
        500: 505544,
        750: 1118012,
        1000: 1986284,
        1500: 4468241,
        2000: 7907740,
        2500: 12407926,
        3000: 17816816,
        3500: 24262167,
        4000: 31625365,
    }
)

# Client data the fake speedtest.net hands out, so tests can check it never reaches a result.
CLIENT_IP = "192.0.2.1"  # TEST-NET-1, RFC 5737
CLIENT_ISP = "Example Client ISP"
SERVER_SPONSOR = "sessionready test server"

_DOWNLOAD_PATH = re.compile(r"/speedtest/random(\d+)x\1\.jpg")
_CHUNK = 64 * 1024


class Behaviour(enum.Enum):
    SERVE = "serve"  # answer like a working legacy server
    FORBID = "forbid"  # HTTP 403 to everything, as speedtest.net does to clients it blocks
    HANG = "hang"  # accept and read each request, never answer (until the server stops)


class Direction(enum.Enum):
    DOWNLOAD = "download"  # server to client
    UPLOAD = "upload"  # client to server


@dataclass(frozen=True)
class Request:
    method: str
    host: str  # what the client asked for: the absolute URI's host (proxy use), else Host
    path: str


@dataclass(frozen=True)
class Transfer:
    direction: Direction
    nbytes: int  # body bytes actually sent (handed to the kernel) or received
    started: float  # time.monotonic() when the request had been read
    finished: float  # time.monotonic() after the last body byte, or when the peer went away


class LegacySpeedtestServer:
    """A threaded HTTP server on 127.0.0.1, an ephemeral port; use it as a context manager."""

    def __init__(self, behaviour: Behaviour = Behaviour.SERVE) -> None:
        self.behaviour = behaviour
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._transfers: list[Transfer] = []
        self._errors: list[BaseException] = []
        self._released = threading.Event()  # lets hanging handlers go when the server stops
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._body = memoryview(b"")

    def __enter__(self) -> LegacySpeedtestServer:
        # Random bytes, so neither HTTP compression nor anything on the path can shrink them.
        self._body = memoryview(os.urandom(max(LEGACY_DOWNLOAD_BYTES.values())))
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="legacy-speedtest-server", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._httpd is not None and self._thread is not None
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not running"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT - also the value for http_proxy."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def server_entry(self) -> str:
        """This server as an entry of a legacy server list (its upload URL)."""
        return f"{self.base_url}/speedtest/upload.php"

    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def transfers(self, direction: Direction) -> list[Transfer]:
        with self._lock:
            return [t for t in self._transfers if t.direction is direction]

    def errors(self) -> list[BaseException]:
        """Exceptions raised in handlers; kept here rather than printed to stderr."""
        with self._lock:
            return list(self._errors)

    def throughput_mbps(self, direction: Direction) -> float:
        """Bytes moved in `direction` over the span from the first request to the last byte."""
        transfers = self.transfers(direction)
        if not transfers:
            return 0.0
        span = max(t.finished for t in transfers) - min(t.started for t in transfers)
        return sum(t.nbytes for t in transfers) * 8 / span / 1e6

    # Called by the handler threads.

    def _record_request(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def _record_transfer(self, transfer: Transfer) -> None:
        with self._lock:
            self._transfers.append(transfer)

    def _record_error(self, error: BaseException) -> None:
        with self._lock:
            self._errors.append(error)

    def _config_xml(self) -> bytes:
        # The parts of speedtest.net's speedtest-config.php that speedtest-cli reads, with the
        # values speedtest.net serves.
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<settings>\n'
            f'<client ip="{CLIENT_IP}" lat="59.3293" lon="18.0686" isp="{CLIENT_ISP}"'
            ' country="SE"/>\n'
            '<server-config threadcount="4" ignoreids="" notonmap="" forcepingid=""'
            ' preferredserverid=""/>\n'
            '<download testlength="10" initialtest="250K" mintestsize="250K"'
            ' threadsperurl="4"/>\n'
            '<upload testlength="10" ratio="5" initialtest="0" mintestsize="32K" threads="2"'
            ' maxchunksize="512K" maxchunkcount="50" threadsperurl="4"/>\n'
            "</settings>\n"
        ).encode()

    def _servers_xml(self) -> bytes:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<settings>\n<servers>\n'
            f'<server url="{self.server_entry}" lat="59.3293" lon="18.0686" name="Loopback"'
            f' country="Localhost" cc="LO" sponsor="{SERVER_SPONSOR}" id="1"'
            f' host="{self.host}"/>\n'
            "</servers>\n</settings>\n"
        ).encode()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # the library opens up to 8 transfer connections at once

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: LegacySpeedtestServer,
    ) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # socketserver would print a traceback to stderr, where the tests look for the probe's.
        error = sys.exc_info()[1]
        if error is not None:
            self.owner._record_error(error)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        pass  # keeps the test output clean

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        started = time.monotonic()
        owner = self.server.owner
        target = urlsplit(self.path)
        path = target.path
        owner._record_request(
            Request(self.command, target.netloc or self.headers.get("Host", ""), path)
        )
        if owner.behaviour is Behaviour.HANG:
            owner._released.wait()
            self.close_connection = True
            return
        if owner.behaviour is Behaviour.FORBID:
            self._reply(403, b"Forbidden", "text/plain")
            return

        download = _DOWNLOAD_PATH.fullmatch(path)
        if self.command == "GET" and path == "/speedtest/latency.txt":
            self._reply(200, b"test=test", "text/plain")
        elif self.command == "GET" and download:
            size = LEGACY_DOWNLOAD_BYTES.get(int(download.group(1)))
            if size is None:
                self._reply(404, b"Not Found", "text/plain")
            else:
                self._send_download(size, started)
        elif self.command == "POST" and path == "/speedtest/upload.php":
            self._receive_upload(started)
        elif self.command == "GET" and path == "/speedtest-config.php":
            self._reply(200, owner._config_xml(), "text/xml")
        elif self.command == "GET" and path in (
            "/speedtest-servers-static.php",
            "/speedtest-servers.php",
        ):
            self._reply(200, owner._servers_xml(), "text/xml")
        else:
            self._reply(404, b"Not Found", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_download(self, size: int, started: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        body = self.server.owner._body
        sent = 0
        try:
            while sent < size:
                chunk = body[sent : min(size, sent + _CHUNK)]
                self.wfile.write(chunk)  # unbuffered: returns once the kernel has it all
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading: its phase ended
        finally:
            self.server.owner._record_transfer(
                Transfer(Direction.DOWNLOAD, sent, started, time.monotonic())
            )

    def _receive_upload(self, started: float) -> None:
        expected = int(self.headers.get("Content-Length") or 0)
        received = 0
        try:
            while received < expected:
                chunk = self.rfile.read1(min(_CHUNK, expected - received))
                if not chunk:
                    break  # the client stopped sending: its phase ended
                received += len(chunk)
        except ConnectionResetError:
            pass
        finally:
            self.server.owner._record_transfer(
                Transfer(Direction.UPLOAD, received, started, time.monotonic())
            )
        if received < expected:
            self.close_connection = True
            return
        # The real upload.php answers with the number of bytes it received.
        self._reply(200, f"size={received}".encode(), "text/html")
