"""``sessionready demo``: a monitor on loopback, a token, one check, then the monitor keeps running."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sessionready.cli import EXIT_CANNOT_RUN, EXIT_OK


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="start a monitor on this machine, run one check against it, keep the monitor running",
        description="Start a monitor on 127.0.0.1 with its embedded store in DATA_DIR, create a client "
        "token, run a check and print its verdict, then leave the monitor running until Ctrl-C.",
    )
    parser.add_argument("--data-dir", metavar="DIR", type=Path, default=Path(".demo"), help="where the demo keeps its store (default ./.demo)")
    parser.add_argument("--port", metavar="N", type=int, default=8470, help="monitor port (default 8470)")
    parser.set_defaults(run=run_demo)


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sessionready.cli", *args]


def _wait_healthy(url: str, monitor: subprocess.Popen, timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if monitor.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def run_demo(args: argparse.Namespace) -> int:
    data_dir = args.data_dir.resolve()
    url = f"http://127.0.0.1:{args.port}"
    print(f"Starting a monitor on {url} with its store in {data_dir} ...", flush=True)
    monitor = subprocess.Popen(_command("monitor", "--data-dir", str(data_dir), "--port", str(args.port)), stderr=subprocess.DEVNULL)
    try:
        if not _wait_healthy(url, monitor):
            print(f"sessionready demo: the monitor did not start (is port {args.port} free? try --port)", file=sys.stderr)
            return EXIT_CANNOT_RUN
        created = subprocess.run(
            _command("monitor", "token", "create", "--role", "client", "--participant", "demo-client", "--data-dir", str(data_dir)),
            capture_output=True,
            text=True,
            check=False,
        )
        if created.returncode != 0:
            print(f"sessionready demo: could not create a token: {created.stderr.strip()}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        token = created.stdout.strip().splitlines()[-1]
        print("Created a client token; running a check (about 15 seconds) ...\n", flush=True)
        subprocess.run(_command("check", "--monitor", url), env={**os.environ, "SESSIONREADY_TOKEN": token}, check=False)
        print(f"\nThe monitor keeps running at {url} (metrics: {url}/metrics, API: {url}/api/v1/openapi.json).")
        print("Press Ctrl-C to stop it.", flush=True)
        monitor.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if monitor.poll() is None:
            monitor.send_signal(signal.SIGTERM)
            try:
                monitor.wait(timeout=10)
            except subprocess.TimeoutExpired:
                monitor.kill()
        print("Monitor stopped.")
    return EXIT_OK
