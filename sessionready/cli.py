"""The ``sessionready`` command. Sub-commands import their heavy modules only when they run,
so ``sessionready check`` on a client never loads the monitor's or the dashboard's libraries."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sessionready import __version__
from sessionready.terms import EXIT_CANNOT_RUN, EXIT_OK


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one sentence and exits with EXIT_CANNOT_RUN."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_CANNOT_RUN, f"{self.prog}: error: {message}\nTry '{self.prog} --help'.\n")


def build_parser() -> Parser:
    from agents.cli import add_check_parser
    from agents.daemon_cli import add_agent_parser
    from agents.enroll import add_enroll_parser
    from dashboard.cli import add_dashboard_parser
    from monitor.cli.main import add_monitor_parser
    from sessionready.demo import add_demo_parser

    parser = Parser(
        prog="sessionready",
        description="Session-quality monitoring for online therapy.",
        epilog="Run 'sessionready COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"sessionready {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    add_check_parser(commands)
    add_agent_parser(commands)
    add_enroll_parser(commands)
    add_monitor_parser(commands)
    add_dashboard_parser(commands)
    add_demo_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_CANNOT_RUN
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("sessionready: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly. Point stdout at /dev/null so
        # the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
