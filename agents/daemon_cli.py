"""``sessionready agent``: argument parsing, config, signals and exit codes of the daemon
(the daemon itself is ``agents/daemon/agent.py``).

This module is imported whenever the command line is built, so everything beyond the light
standard modules (asyncio included: a tenth of a second) is imported only when the daemon runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sessionready.terms import EXIT_CANNOT_RUN

if TYPE_CHECKING:
    from agents.client import Connection
    from agents.config import AgentConfig
    from agents.daemon.agent import Daemon

AGENT_EPILOG = """\
modes (docs/agent.md):
  background   a short UDP burst to the monitor every [agent] background_interval_s (300),
               the machine's health every machine_interval_s (60)
  pre-session  a full check [agent] pre_session_lead_minutes (15) before each of your
               sessions; a desktop notification when it is not "ready"
  live         while a session is in progress, one report every live_interval_s (2)

signals: SIGTERM/SIGINT deliver what is pending (up to 5 s) and exit 0; SIGHUP reloads the
config file (a bad file is logged and the running config kept).

The monitor's URL and the token can also come from SESSIONREADY_MONITOR_URL and
SESSIONREADY_TOKEN; the config file from SESSIONREADY_CONFIG. Give the token by a token file
(the config's token_file, or a systemd credential named "token") or SESSIONREADY_TOKEN, not
--token: every user of the machine can read a process's arguments.

exit codes: 0 stopped by a signal; 1 stopped on an unexpected error; 3 could not start
(bad config, no token, bad URL, unusable spool: one sentence on stderr says why)
"""


def add_agent_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "agent",
        help="run the always-on agent: background, pre-session and live monitoring",
        description="Run in the background on this computer: light connection and machine samples, a full "
        "check before each of your sessions, and live reports while a session is in progress; everything is "
        "kept on disk until the monitor has it.",
        epilog=AGENT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", type=Path, help="agent config file (TOML; every key in agents/agent.sample.toml and docs/agent.md)")
    parser.add_argument("--monitor", metavar="URL", help="the monitor's URL, or several separated by commas, tried in order (default: $SESSIONREADY_MONITOR_URL, else [monitor] url in the config)")
    parser.add_argument(
        "--token", metavar="T", help="this agent's token; visible to other users in 'ps': prefer $SESSIONREADY_TOKEN or the config's token file"
    )
    parser.add_argument("--ca-file", metavar="FILE", help="CA certificate(s) to trust for an https:// monitor with a private certificate")
    parser.add_argument("--allow-insecure-http", action="store_true", help="allow plain http:// to a monitor that is not on this machine (sends the token unencrypted)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info", help="least important log lines to show (default info; debug shows every live report)")
    parser.add_argument("--log-format", choices=("auto", "json", "text"), default="auto", help="JSON lines, or plain text; auto: text on a terminal, JSON otherwise")
    parser.set_defaults(run=run_agent_command)


def load(args: argparse.Namespace) -> tuple[AgentConfig, Connection]:
    """The config and connection, validated; ConfigError/UsageError/ValueError with one sentence."""
    from agents.check import CheckOptions
    from agents.config import load_agent_config

    config = load_agent_config(args.config)
    connection = connection_for(config, args)
    CheckOptions.from_config(config)  # a bad [check] target fails now, not at the first session
    return config, connection


def connection_for(config: AgentConfig, args: argparse.Namespace) -> Connection:
    from agents.client import resolve_connection

    return resolve_connection(config, monitor=args.monitor, token=args.token, ca_file=args.ca_file, allow_insecure_http=args.allow_insecure_http)


def _fail(message: str) -> int:
    print(f"sessionready agent: {message}", file=sys.stderr)
    return EXIT_CANNOT_RUN


def run_agent_command(args: argparse.Namespace) -> int:
    import asyncio

    from agents.client import UsageError, warn_token_argument
    from agents.daemon.agent import Daemon, configure_logging
    from agents.daemon.notify import Notifier
    from agents.daemon.spool import Spool, SpoolError
    from sessionready.config import ConfigError

    warn_token_argument(args.token)
    try:
        config, connection = load(args)
    except (ConfigError, UsageError, ValueError) as error:
        return _fail(str(error))
    try:
        spool = Spool(config.spool_file, int(config.agent.spool_max_mb * 1_000_000))
    except SpoolError as error:
        return _fail(error.message)
    logger = configure_logging(args.log_level, args.log_format)
    try:
        daemon = Daemon(config, connection, spool, reload=lambda: load(args), notifier=Notifier(logger=logger), logger=logger)
        return asyncio.run(_serve(daemon))
    finally:
        spool.close()


async def _serve(daemon: Daemon) -> int:
    import asyncio

    loop = asyncio.get_running_loop()
    handlers = {signal.SIGTERM: daemon.request_stop, signal.SIGINT: daemon.request_stop}
    if hasattr(signal, "SIGHUP"):
        handlers[signal.SIGHUP] = daemon.request_reload
    for signum, handler in handlers.items():
        try:
            loop.add_signal_handler(signum, handler)
        except (NotImplementedError, RuntimeError):
            pass  # Windows: Ctrl-C arrives as KeyboardInterrupt instead; there is no SIGHUP
    return await daemon.run()
