"""``sessionready demo``: the whole product on this machine. A monitor, the dashboard, and two
agents (a therapist's and a client's) with a few sessions between them starting in the next
minutes; as root on Linux the client's agent sits behind a shaped, lossy link so that a risky
session appears for real. docs/demo.md.

Only the command line is defined here: the command line is built for every ``sessionready``
command, and the demo's modules load only when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_PORT = 8470
DEFAULT_DASHBOARD_PORT = 8050

DEMO_EPILOG = """\
what starts (every part's output goes to DATA_DIR/logs/):
  the monitor         http://127.0.0.1:PORT, its store in DATA_DIR/monitor
  two agents          demo-therapist and demo-client, with short intervals: the first
                      measurements arrive within a minute, the first check soon after
  the dashboard       http://127.0.0.1:DASHBOARD_PORT
  three sessions      in about 2, 6 and 15 minutes, a few minutes long each
  two logins          demo-it (sees every session) and demo-therapist; new random
                      passwords at every start, printed once

shaped link (root on Linux, with ip, tc, nft and openssl): the client's agent runs in a
network namespace (srdemo-PID) behind 8 Mbit/s each way with 5 % of its probe packets
lost, so its sessions are flagged; the monitor then serves HTTPS on that link's host side
(198.18.x.1) with a certificate made for the run. Otherwise, or with --no-shaping, both
agents share this machine's own link.

Ctrl-C (or SIGTERM) stops every part and removes the namespace.

exit codes: 0 stopped by Ctrl-C or SIGTERM; 1 a part stopped on its own while running (its
log is named); 3 could not start (a bad option, a port in use, a part that did not start:
one sentence on stderr says which, and everything started is stopped again)
"""


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got '{text}'")
    return int(text)


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the whole product on this machine: monitor, dashboard, two agents, sessions",
        description="Start a monitor, the dashboard and two agents (a therapist's and a client's) on this machine, "
        "schedule a few sessions between them in the next minutes, print the dashboard's address and two logins, "
        "and keep everything running until Ctrl-C.",
        epilog=DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", type=Path, default=Path(".demo"), help="where the demo keeps its store, configs, tokens and logs (default ./.demo)"
    )
    parser.add_argument("--port", metavar="N", type=_port, default=DEFAULT_PORT, help=f"the monitor's port, HTTP and UDP (default {DEFAULT_PORT})")
    parser.add_argument("--dashboard-port", metavar="N", type=_port, default=DEFAULT_DASHBOARD_PORT, help=f"the dashboard's port (default {DEFAULT_DASHBOARD_PORT})")
    parser.add_argument("--no-shaping", action="store_true", help="do not put the client's agent behind a shaped, lossy link, even as root")
    parser.set_defaults(run=run_demo)


class DemoError(Exception):
    """The demo cannot go on; the message is one sentence for the person at the terminal."""


def run_demo(args: argparse.Namespace) -> int:
    from sessionready.demo.run import run

    return run(args.data_dir, args.port, args.dashboard_port, shaping_requested=not args.no_shaping)
