"""Optional public-internet throughput backend (`sessionready check --speedtest`).

It drives the `speedtest` module of speedtest-cli 2.1.3 (the `speedtest` extra): the legacy
speedtest.net HTTP protocol - a configuration document, a server list, `latency.txt` to pick
the best server, `random{N}x{N}.jpg` downloads and `upload.php` uploads.

The library is unmaintained and speedtest.net often refuses it, so every failure, including a
missing extra, becomes the `error` sentence of a result; nothing raises out of
`measure_speedtest`.

Output: the library prints only from its command-line entry point (`shell()`) and from
`printer(..., debug=True)`, which is silent unless `speedtest.DEBUG` is set (only `shell()` sets
it). This probe never calls `shell()` and passes no progress callback (the one that prints dots),
so nothing reaches stdout. Redirecting streams instead would not work anyway: the library writes
through its own wrapper of file descriptor 1 that it builds at import, and redirecting the
descriptor is process-wide and would swallow the check's own progress output as well.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import http.client
import os.path
import socket
import ssl
import threading
import time
import urllib.error
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

NOT_INSTALLED = "speedtest-cli is not installed (pip install 'sessionready[speedtest]')"

# The library's own socket timeout; capped by the overall budget below.
_LIBRARY_SOCKET_TIMEOUT_S = 10.0

# get_best_server() scores each of its three latency.txt requests that fails as 3600 s and
# divides the sum by 6, so one failed request alone gives 600,000 ms.
_FAILED_LATENCY_MS = 3600 / 6 * 1000

# Where the library asks for its server list first (see Speedtest.get_servers).
_SERVER_LIST_URL = "://www.speedtest.net/speedtest-servers-static.php"


@dataclass(frozen=True)
class SpeedtestResult:
    """One run of the speedtest.net backend.

    A failure part-way keeps what was measured before it (e.g. ping and download when the
    upload fails); `available` is True only when the whole test ran.
    """

    available: bool  # False when the backend could not run at all or failed
    download_mbps: float | None  # megabits per second (10^6 bit/s), >= 0
    upload_mbps: float | None  # megabits per second (10^6 bit/s), >= 0
    # Latency to the chosen server as speedtest-cli reports it: the sum of three HTTP request
    # times divided by 6, i.e. half their mean. Kept as the library computes it so it stays
    # comparable with speedtest-cli's own output.
    ping_ms: float | None
    server: str | None  # "sponsor (name, country)" or host:port; never client data
    error: str | None  # one plain sentence when something failed
    duration_s: float  # wall time of the whole probe, monotonic clock


@dataclass(frozen=True)
class SpeedtestConfig:
    """How to run the backend; validated once, on construction."""

    timeout_s: float = 30.0  # overall budget; the probe returns a failed result when exceeded
    # A seam for tests and for private deployments: server entry URLs as the legacy protocol
    # lists them (".../speedtest/upload.php"). When set, speedtest.net is not contacted at all.
    servers: tuple[str, ...] = ()
    # How long the download and the upload phase each run at most, in seconds. speedtest.net's
    # configuration says 10; both phases must fit in timeout_s with room for the rest.
    phase_s: float = 10.0
    threads: int | None = None  # concurrent transfers; None: what the configuration dictates
    secure: bool = False  # HTTPS for speedtest.net's configuration and server list

    def __post_init__(self) -> None:
        # Accept any iterable of URLs, keep an immutable tuple.
        object.__setattr__(self, "servers", tuple(self.servers))
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, not {self.timeout_s!r}")
        if not self.phase_s > 0:
            raise ValueError(f"phase_s must be positive, not {self.phase_s!r}")
        if not 2 * self.phase_s < self.timeout_s:
            raise ValueError(
                f"phase_s ({self.phase_s:g}) is too long for timeout_s ({self.timeout_s:g}): "
                "the download and upload phases (2 x phase_s) must fit in the timeout"
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, not {self.threads!r}")
        for url in self.servers:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"servers: {url!r} is not an http:// or https:// URL")


class _Stage(enum.Enum):
    """What the worker is doing; the value completes "it was still ..."."""

    STARTING = "starting"
    CONFIG = "fetching the speedtest.net configuration"
    SERVERS = "fetching the speedtest.net server list"
    LATENCY = "measuring latency"
    DOWNLOAD = "measuring download"
    UPLOAD = "measuring upload"


@dataclass
class _Progress:
    """What the worker thread has measured so far, for a partial result if time runs out.

    One per call; the worker writes, the coroutine reads after the worker settles or times out.
    """

    stage: _Stage = _Stage.STARTING
    target: str = "speedtest.net"  # who failure sentences blame, e.g. "the speedtest server h:p"
    server: str | None = None
    ping_ms: float | None = None
    download_mbps: float | None = None
    upload_mbps: float | None = None


class _Failed(Exception):
    """A failure this module detected itself; its message is the result's error sentence."""


class _ShutdownEvent(threading.Event):
    # The library polls the camelCase isSet(), deprecated since Python 3.10: its warning would be
    # noise, and under -W error an exception inside the library's threads.
    def isSet(self) -> bool:  # noqa: N802 - the library's spelling
        return self.is_set()


async def measure_speedtest(config: SpeedtestConfig) -> SpeedtestResult:
    """Measure download, upload and latency against speedtest.net (or `config.servers`).

    Never raises for measurement trouble: failures are the result's `error`. Returns within
    `config.timeout_s` plus scheduling slack.
    """
    started = time.monotonic()
    progress = _Progress()
    shutdown = _ShutdownEvent()
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[str | None] = loop.create_future()

    def settle(error: str | None) -> None:
        if not finished.done():  # it is cancelled when the timeout came first
            finished.set_result(error)

    def work() -> None:
        error = _measure_blocking(config, progress, shutdown)
        try:
            loop.call_soon_threadsafe(settle, error)
        except RuntimeError:
            pass  # the loop has closed: nobody waits for this result any more

    # A daemon thread rather than asyncio.to_thread: the default executor's threads are joined
    # by asyncio.run() and at interpreter exit, so a library call stuck on a silent server would
    # hold the check open long after its timeout. Threads the library starts inherit the daemon
    # flag from this one, so none of them can keep the process alive either.
    threading.Thread(target=work, name="sessionready-speedtest", daemon=True).start()
    try:
        error = await asyncio.wait_for(finished, config.timeout_s)
    except TimeoutError:
        error = (
            f"the speedtest did not finish within its {config.timeout_s:g} s timeout "
            f"(it was {progress.stage.value})"
        )
    finally:
        # Also on cancellation: the library's transfer threads stop at their next chunk.
        shutdown.set()
    return SpeedtestResult(
        available=error is None,
        download_mbps=progress.download_mbps,
        upload_mbps=progress.upload_mbps,
        ping_ms=progress.ping_ms,
        server=progress.server,
        error=error,
        duration_s=time.monotonic() - started,
    )


def _measure_blocking(
    config: SpeedtestConfig, progress: _Progress, shutdown: _ShutdownEvent
) -> str | None:
    """Run the library to the end in this thread; return the error sentence, or None."""
    try:
        # Imported here, not at module import: it is an optional extra, and importing it wraps
        # the process's stdout and stderr descriptors.
        import speedtest
    except ImportError:
        return NOT_INSTALLED
    except Exception as exc:  # e.g. its import-time wrapping of a missing sys.stdout
        return f"speedtest-cli could not be loaded ({type(exc).__name__})"
    try:
        _run_library(speedtest, config, progress, shutdown)
    except _Failed as failed:
        return str(failed)
    except Exception as exc:  # the library's boundary: any failure becomes one sentence
        sentence = _describe(speedtest, exc, progress.target)
        _close_response(_cause(exc))
        return sentence
    return None


def _run_library(
    speedtest: ModuleType,
    config: SpeedtestConfig,
    progress: _Progress,
    shutdown: _ShutdownEvent,
) -> None:
    socket_timeout = min(_LIBRARY_SOCKET_TIMEOUT_S, config.timeout_s)
    options: dict[str, Any] = {
        # Applied by Speedtest.__init__ over whatever get_config() produced.
        "config": {"length": {"download": config.phase_s, "upload": config.phase_s}},
        "timeout": socket_timeout,
        "secure": config.secure,
        "shutdown_event": shutdown,
    }
    if config.servers:
        client = _local_config_speedtest(speedtest)(**options)
        candidates = [_server_entry(index, url) for index, url in enumerate(config.servers)]
    else:
        progress.stage = _Stage.CONFIG
        client = speedtest.Speedtest(**options)
        _check(shutdown)
        progress.stage = _Stage.SERVERS
        client.get_servers()
        if not client.servers:
            # get_servers() tries four URLs and drops their errors; ask once more to learn why.
            reason = _diagnose(speedtest, _SERVER_LIST_URL, socket_timeout, config.secure)
            raise _Failed(
                _transport_sentence(reason, "speedtest.net")
                if reason
                else "speedtest.net returned no servers"
            )
        candidates = client.get_closest_servers()
    _check(shutdown)

    progress.stage = _Stage.LATENCY
    best = client.get_best_server(candidates)
    host = urlsplit(best["url"]).netloc
    progress.target = f"the speedtest server {host}"
    progress.server = _server_name(best, host)
    if best["latency"] >= _FAILED_LATENCY_MS:
        # The library scores a refused, failed or wrong answer alike and keeps going; one plain
        # request tells which it was.
        url = os.path.dirname(best["url"]) + "/latency.txt"
        reason = _diagnose(speedtest, url, socket_timeout, config.secure)
        raise _Failed(
            _transport_sentence(reason, progress.target)
            if reason
            else f"{progress.target} did not answer the latency test correctly"
        )
    progress.ping_ms = float(best["latency"])
    _check(shutdown)

    progress.stage = _Stage.DOWNLOAD
    bits_per_s = client.download(threads=config.threads)
    if client.results.bytes_received == 0:
        # The download threads drop their errors too.
        size = client.config["sizes"]["download"][0]
        url = f"{os.path.dirname(best['url'])}/random{size}x{size}.jpg"
        reason = _diagnose(speedtest, url, socket_timeout, config.secure)
        raise _Failed(
            _transport_sentence(reason, progress.target)
            if reason
            else f"the download test received no data from {progress.target}"
        )
    progress.download_mbps = bits_per_s / 1e6
    _check(shutdown)

    progress.stage = _Stage.UPLOAD
    # No pre-allocation: it builds every upload body up front (about 150 MB with speedtest.net's
    # settings) although a short phase sends only a few of them.
    bits_per_s = client.upload(threads=config.threads, pre_allocate=False)
    if client.results.bytes_sent == 0:
        raise _Failed(f"the upload test could not send any data to {progress.target}")
    progress.upload_mbps = bits_per_s / 1e6


def _check(shutdown: _ShutdownEvent) -> None:
    """Stop between stages once the coroutine has given up, instead of starting the next."""
    if shutdown.is_set():
        raise _Failed("the speedtest was stopped")


def _local_config_speedtest(speedtest: ModuleType) -> type:
    """A Speedtest that takes its configuration from this module instead of speedtest.net.

    Speedtest.__init__ calls get_config() unconditionally, before it applies its own `config`
    argument, so no constructor argument avoids the request to speedtest-config.php.
    get_config() is the one method that both fetches and fills `config` and `lat_lon`, so
    overriding it is the narrowest cut: latency, download and upload stay the library's own
    code. The server list needs no override, as get_best_server() takes server entries
    directly and then never calls get_servers(). Built per call because the library is
    imported lazily.
    """

    class LocalConfigSpeedtest(speedtest.Speedtest):  # type: ignore[name-defined,misc]
        def get_config(self) -> dict[str, Any]:
            self.config.update(_legacy_settings())
            self.lat_lon = (0.0, 0.0)  # unused: given servers are not ranked by distance
            return self.config

    return LocalConfigSpeedtest


def _legacy_settings() -> dict[str, Any]:
    """What get_config() derives from speedtest.net's usual configuration document.

    That document says: download testlength=10 threadsperurl=4; upload testlength=10 ratio=5
    threads=2 maxchunkcount=50; server-config threadcount=4. A fresh dict each time, because
    the library changes it while it runs.
    """
    upload_sizes = [524288, 1048576, 7340032]  # the library's upload sizes from ratio 5 on
    upload_count = -(-50 // len(upload_sizes))  # ceil(maxchunkcount / sizes), as the library
    return {
        "client": {},  # no client document: nothing about the client is known or kept
        "ignore_servers": [],
        "sizes": {
            "upload": upload_sizes,
            "download": [350, 500, 750, 1000, 1500, 2000, 2500, 3000, 3500, 4000],
        },
        "counts": {"upload": upload_count, "download": 4},
        "threads": {"upload": 2, "download": 4 * 2},
        "length": {"upload": 10, "download": 10},
        "upload_max": upload_count * len(upload_sizes),
    }


def _server_entry(index: int, url: str) -> dict[str, Any]:
    """A server list entry as get_servers() would have parsed it from the XML."""
    return {"id": str(index), "url": url, "sponsor": "", "name": "", "country": "", "d": 0.0}


def _server_name(server: dict[str, Any], host: str) -> str:
    sponsor, name, country = server.get("sponsor"), server.get("name"), server.get("country")
    if sponsor and name:
        return f"{sponsor} ({name}, {country})" if country else f"{sponsor} ({name})"
    return host


def _diagnose(
    speedtest: ModuleType, url: str, timeout: float, secure: bool
) -> BaseException | None:
    """The error of one plain GET of `url` through the library's opener; None if it worked."""
    opener = speedtest.build_opener(timeout=timeout)
    response, error = speedtest.catch_request(
        speedtest.build_request(url, secure=secure), opener=opener
    )
    if response is not None:
        response.close()
    # Only the description is kept: let go of the connection an HTTPError still holds.
    _close_response(error)
    return error or None


def _close_response(error: BaseException | None) -> None:
    """Close the response an HTTPError carries; the library never does, leaking its socket."""
    if isinstance(error, urllib.error.HTTPError):
        error.close()


def _describe(speedtest: ModuleType, exc: Exception, target: str) -> str:
    """One plain sentence for an exception raised by the library; never a traceback."""
    if isinstance(exc, speedtest.ConfigRetrievalError):
        cause = _cause(exc)
        if cause is None:
            return "could not fetch the speedtest.net configuration"
        return _transport_sentence(cause, "speedtest.net")
    if isinstance(exc, speedtest.ServersRetrievalError):
        cause = _cause(exc)
        if cause is None:
            return "could not fetch the speedtest.net server list"
        return _transport_sentence(cause, "speedtest.net")
    if isinstance(exc, speedtest.SpeedtestConfigError):
        return "speedtest.net sent a configuration that speedtest-cli 2.1.3 cannot read"
    if isinstance(exc, speedtest.SpeedtestServersError):
        return "speedtest.net sent a server list that speedtest-cli 2.1.3 cannot read"
    if isinstance(exc, speedtest.NoMatchedServers):
        return "speedtest.net listed no usable servers"
    if isinstance(
        exc, (speedtest.SpeedtestBestServerFailure, speedtest.SpeedtestMissingBestServer)
    ):
        return "no speedtest server answered the latency test"
    if isinstance(exc, speedtest.SpeedtestException):
        return f"speedtest-cli failed ({type(exc).__name__})"
    if isinstance(exc, (OSError, http.client.HTTPException)):
        return _transport_sentence(exc, target)
    return f"the speedtest failed unexpectedly ({type(exc).__name__})"


def _cause(exc: BaseException) -> BaseException | None:
    """The exception the library wrapped, e.g. the URLError inside ConfigRetrievalError."""
    inner = exc.args[0] if exc.args else None
    return inner if isinstance(inner, BaseException) else None


def _transport_sentence(exc: BaseException, target: str) -> str:
    """One plain sentence for an HTTP or socket error while talking to `target`."""
    # urllib wraps the socket error in URLError.reason; HTTPError is a URLError with a status.
    while isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        if not isinstance(exc.reason, BaseException):
            break
        exc = exc.reason
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code == 403:
            return f"{target} refused the request (HTTP 403)"
        return f"{target} answered with an error (HTTP {exc.code})"
    if isinstance(exc, socket.gaierror):
        return f"could not look up the address of {target} (no internet connection or DNS failure)"
    if isinstance(exc, TimeoutError):
        return f"{target} did not answer in time (timeout)"
    if isinstance(exc, ConnectionRefusedError):
        return f"could not connect to {target} (connection refused)"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        return f"{target} closed the connection unexpectedly"
    if isinstance(exc, ssl.SSLError):
        return f"the secure connection to {target} failed"
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return f"could not reach {target} (no route: no internet connection?)"
    if isinstance(exc, OSError):
        return f"could not reach {target} ({exc.strerror or type(exc).__name__})"
    if isinstance(exc, http.client.HTTPException):
        return f"{target} sent an answer that is not valid HTTP"
    if isinstance(exc, urllib.error.URLError):
        return f"could not reach {target} ({exc.reason})"
    return f"the request to {target} failed ({type(exc).__name__})"
