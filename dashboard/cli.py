"""``sessionready dashboard``: argparse only here; Dash and Flask load when the command runs,
so agents installed without the dashboard extra never import them."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from sessionready.terms import EXIT_CANNOT_RUN, EXIT_OK


def add_dashboard_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "dashboard",
        help="serve the web dashboard (Today, Live, check results, Trends, Agents, Caseloads) for therapists and IT",
        description="Serve the dashboard. It talks only to the monitor's HTTP API: logins, sessions and "
        "measurements all come from there. Put it behind a TLS proxy when it is reached from other machines "
        "(docs/dashboard.md).",
    )
    parser.add_argument("--config", metavar="FILE", type=Path, help="config file (TOML, table [dashboard]; see dashboard/dashboard.sample.toml)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8050)")
    parser.add_argument("--monitor", metavar="URL", help="the monitor's URL, e.g. https://monitor.example.org:8470")
    parser.add_argument("--ca-file", metavar="FILE", help="CA certificate(s) to trust for an https:// monitor with a private certificate")
    parser.add_argument("--allow-insecure-http", action="store_true", default=None, help="allow plain http:// to a monitor on another machine (passwords and tokens then cross the network unencrypted)")
    parser.set_defaults(run=run_dashboard_command)


def run_dashboard_command(args: argparse.Namespace) -> int:
    from sessionready.config import ConfigError

    try:
        from dashboard.config import load_dashboard_config
    except ImportError:  # pragma: no cover - the package is always present; its extra may not be
        print("sessionready dashboard: the dashboard extra is not installed: pip install 'sessionready[dashboard]'", file=sys.stderr)
        return EXIT_CANNOT_RUN
    try:
        config = load_dashboard_config(args.config, host=args.host, port=args.port, monitor_url=args.monitor, ca_file=args.ca_file, allow_insecure_http=args.allow_insecure_http)
    except ConfigError as error:
        print(f"sessionready dashboard: {error}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    try:
        from dashboard.app import create_app
    except ImportError as error:
        print(f"sessionready dashboard: the dashboard extra is not installed ({error.name}): pip install 'sessionready[dashboard]'", file=sys.stderr)
        return EXIT_CANNOT_RUN
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(config)
    except ConfigError as error:
        print(f"sessionready dashboard: {error}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    from dashboard.server import build_server

    try:
        server = build_server(app.server, config)
    except OSError as error:
        print(f"sessionready dashboard: cannot listen on {config.host}:{config.port}: {error.strerror}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    host, port = server.effective_host, server.effective_port  # type: ignore[attr-defined]
    print(f"sessionready dashboard listening on http://{host}:{port} (monitor {config.monitor_url})", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    return EXIT_OK
