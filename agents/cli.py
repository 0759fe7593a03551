"""``sessionready check``: argument parsing, config, output and exit codes."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from sessionready.terms import EXIT_AT_RISK, EXIT_CANNOT_RUN, EXIT_NOT_READY, EXIT_READY

CHECK_EPILOG = """\
exit codes:
  0  ready      - the connection is fine for a video session
  1  at risk    - the session may have glitches; fixes are printed
  2  not ready  - a video session is likely to fail; fixes are printed
  3  could not run - monitor unreachable, token rejected, bad arguments or config
  130 interrupted (Ctrl-C)

The token: best from 'sessionready enroll' (a token file only you can read) or the environment
variable SESSIONREADY_TOKEN. --token works but every user of the machine can see it in 'ps'.
"""

VERDICT_EXIT = {"ready": EXIT_READY, "at_risk": EXIT_AT_RISK, "not_ready": EXIT_NOT_READY}
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 600 seconds, got {text}")
    return value


def _streams(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 32:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 32, got '{text}'")
    return int(text)


def add_check_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "check",
        help="run a pre-session check of this computer's connection",
        description="Measure this computer's connection with the sessionready monitor (delay, jitter, "
        "packet loss, throughput, delay under load) and say whether it is ready for a video session.",
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--monitor", metavar="URL", help="the monitor's URL, e.g. https://monitor.example.org:8470, or several separated by commas, tried in order (or [monitor] url in the config)")
    parser.add_argument("--token", metavar="T", help="this agent's token; visible to other users in 'ps': prefer $SESSIONREADY_TOKEN or 'sessionready enroll'")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout instead of the summary")
    parser.add_argument("--session", metavar="ID", help="the session this check is for (a pseudonymous id)")
    parser.add_argument("--speedtest", action="store_true", help="also measure against public speedtest.net servers (needs the 'speedtest' extra)")
    parser.add_argument("--target", metavar="HOST:PORT", action="append", default=None, help="also time TCP connects to this server of your video platform (repeatable)")
    parser.add_argument("--config", metavar="FILE", type=Path, help="agent config file (TOML; every key in agents/agent.sample.toml and docs/check.md)")
    parser.add_argument("--ca-file", metavar="FILE", help="CA certificate(s) to trust for an https:// monitor with a private certificate")
    parser.add_argument("--allow-insecure-http", action="store_true", help="allow plain http:// to a monitor that is not on this machine (sends the token unencrypted)")
    parser.add_argument("--udp-seconds", type=_positive, metavar="S", help="a fixed length for the idle delay/loss measurement (default: adaptive, 2 to 10 s; 5 with --fixed-length)")
    parser.add_argument("--load-seconds", type=_positive, metavar="S", help="a fixed length for each throughput phase (default: adaptive, 2 to 6 s; 4 with --fixed-length)")
    parser.add_argument("--fixed-length", action="store_true", help="run every phase its fixed length ([check] udp_seconds, load_seconds) instead of stopping each once its figures are settled")
    parser.add_argument("--streams", type=_streams, metavar="N", help="parallel connections per throughput phase (default 4)")
    parser.add_argument("--no-throughput", action="store_true", help="skip the download/upload phases (and so the delay-under-load measurement)")
    parser.add_argument("--no-audio", action="store_true", help="do not open the microphone: skip the room (noise, other voices, speech-to-noise)")
    parser.add_argument("--no-prompt", action="store_true", help="measure the room passively; do not ask you to stay quiet and read a sentence")
    parser.add_argument("--no-machine", action="store_true", help="skip the computer's health (CPU, memory, battery, Wi-Fi, other traffic)")
    parser.add_argument("--no-submit", action="store_true", help="do not send the result to the monitor")
    parser.set_defaults(run=run_check_command)


def _fail(message: str) -> int:
    print(f"sessionready check: {message}", file=sys.stderr)
    return EXIT_CANNOT_RUN


def run_check_command(args: argparse.Namespace) -> int:
    import asyncio

    from agents.client import UsageError, warn_token_argument
    from agents.config import load_agent_config
    from sessionready.config import ConfigError

    warn_token_argument(args.token)
    try:
        config = load_agent_config(args.config)
        options, url, token = _options(args, config)
    except (ConfigError, UsageError, ValueError) as error:
        return _fail(str(error))
    try:
        return asyncio.run(_check(args, options, url, token, config.ca_file))
    except KeyboardInterrupt:
        print("sessionready check: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError) as error:
        return _fail(str(error))
    except Exception as error:  # noqa: BLE001 - the last line of defence: one sentence, never a traceback
        return _fail(f"the check stopped on an unexpected error ({error.__class__.__name__}); please report it")


def _options(args: argparse.Namespace, config):
    from agents.check import CheckOptions
    from agents.client import resolve_connection

    connection = resolve_connection(
        config, monitor=args.monitor, token=args.token, ca_file=args.ca_file, allow_insecure_http=args.allow_insecure_http
    )
    url, token = connection.base_urls(), connection.token
    if args.session is not None and not SESSION_ID.fullmatch(args.session):
        raise ValueError("--session must be 1-64 letters, digits, '.', '_' or '-' (a pseudonymous id, never a name)")
    options = CheckOptions.from_config(
        config,
        session_id=args.session,
        udp_seconds=args.udp_seconds,
        load_seconds=args.load_seconds,
        fixed_length=args.fixed_length,
        streams=args.streams,
        targets=args.target,
        speedtest=args.speedtest,
        measure_throughput=not args.no_throughput,
        measure_machine=not args.no_machine,
        audio=not args.no_audio,
        # The room is measured passively unless a person is at a terminal.
        interactive=not args.no_prompt and sys.stdin.isatty() and sys.stderr.isatty(),
    )
    return options, url, token


async def _check(args: argparse.Namespace, options, url, token: str, ca_file: str | None) -> int:
    from rich.console import Console

    from agents.check import run_check
    from agents.client import MonitorClient, MonitorError
    from agents.render import TerminalProgress, TerminalPrompter, render_report
    from agents.runner import QuietProgress
    from sessionready.typed import encode

    stderr = Console(stderr=True)
    progress = TerminalProgress(stderr) if stderr.is_terminal else None
    async with MonitorClient(url, token, ca_file=args.ca_file or ca_file) as client:
        try:
            await client.whoami()  # fail fast, in one sentence, on a wrong URL or token
            if progress is not None:
                with progress:
                    run = await run_check(client, options, progress, TerminalPrompter(stderr))
            else:
                run = await run_check(client, options, QuietProgress())
            report = run.report
        except MonitorError as error:
            return _fail(error.message)
        submitted, submit_error = False, None
        if not args.no_submit:
            try:
                await client.post_check(encode(report))
                submitted = True
            except MonitorError as error:
                submit_error = error.message
    if args.json:
        output = dict(encode(report))  # type: ignore[arg-type]
        output["submitted"] = submitted
        output["submit_error"] = submit_error
        print(json.dumps(output, indent=None))
    else:
        if submitted:
            note = "The result was saved to the monitor."
        elif args.no_submit:
            note = "The result was not sent (--no-submit)."
        else:
            note = f"The result could not be saved to the monitor: {submit_error}"
        render_report(Console(), report, note, run.machine_hints, run.room_error)
    return VERDICT_EXIT[report.verdict]
