"""``sessionready monitor`` (serve) and ``sessionready monitor token ...`` (manage agent tokens)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from sessionready.cli import EXIT_CANNOT_RUN, EXIT_OK

PARTICIPANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", type=Path, help="monitor config file (TOML, table [monitor])")
    parser.add_argument("--data-dir", metavar="DIR", help="where the store lives (overrides the config)")


def add_monitor_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "monitor",
        help="run the central monitor, or manage its agent tokens",
        description="Run the sessionready monitor: UDP reflector, throughput endpoints, ingest API, /metrics. "
        "Flags override the config file. Stops cleanly on SIGTERM or Ctrl-C.",
    )
    _add_location(parser)
    parser.add_argument("--host", metavar="ADDR", help="address to bind HTTP and UDP to (default 127.0.0.1)")
    parser.add_argument("--port", metavar="N", type=int, help="port for HTTP and the UDP reflector (default 8470)")
    parser.add_argument("--advertise-udp", metavar="HOST:PORT", help="where clients should send UDP probes (NAT, load balancer)")
    parser.set_defaults(run=run_serve)
    actions = parser.add_subparsers(dest="monitor_action", metavar="ACTION", parser_class=type(parser))
    token = actions.add_parser("token", help="create, list or revoke agent tokens", description="Manage agent tokens.")
    token_actions = token.add_subparsers(dest="token_action", metavar="ACTION", parser_class=type(parser), required=True)
    create = token_actions.add_parser(
        "create",
        help="create a token (printed once, as the last line)",
        description="Create an agent token. It is printed once, as the last line of stdout; "
        "only its hash is stored. Role 'metrics' is for Prometheus scraping /metrics.",
    )
    create.add_argument("--role", required=True, choices=("client", "therapist", "metrics"))
    create.add_argument("--participant", required=True, metavar="ID", help="pseudonymous participant id (never a name)")
    _add_location(create)
    create.set_defaults(run=run_token_create)
    revoke = token_actions.add_parser("revoke", help="revoke a token by its id", description="Revoke a token; it stops working at once.")
    revoke.add_argument("token_id", metavar="TOKEN_ID")
    _add_location(revoke)
    revoke.set_defaults(run=run_token_revoke)
    listing = token_actions.add_parser("list", help="list tokens (ids, roles, participants; never the secrets)")
    _add_location(listing)
    listing.set_defaults(run=run_token_list)


def _fail(message: str) -> int:
    print(f"sessionready monitor: {message}", file=sys.stderr)
    return EXIT_CANNOT_RUN


def _config(args: argparse.Namespace, **overrides: object):  # noqa: ANN202
    from monitor.config import load_config

    return load_config(args.config, data_dir=args.data_dir, **overrides)


def run_serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from monitor.app import serve
    from monitor.logs import configure_logging
    from sessionready.config import ConfigError

    try:
        config = _config(args, host=args.host, port=args.port, advertise_udp=args.advertise_udp)
    except ConfigError as error:
        return _fail(str(error))
    configure_logging(config.log_level)
    log = logging.getLogger("sessionready.monitor")

    def ready(url: str, udp: tuple[str, int]) -> None:
        # Config is logged field by field, never whole: it may one day hold secrets.
        log.info("listening", extra={"fields": {"url": url, "udp": f"{udp[0]}:{udp[1]}", "data_dir": str(config.data_path), "tls": config.tls}})
        print(f"sessionready monitor listening on {url} (UDP reflector on port {udp[1]}); Ctrl-C stops it", flush=True)

    try:
        asyncio.run(serve(config, ready))
    except OSError as error:
        return _fail(f"cannot start: {error.strerror or error} (address {config.host}:{config.port})")
    except Exception as error:  # noqa: BLE001 - the last line of defence: one sentence, details in the log
        log.exception("monitor failed")
        return _fail(f"stopped after an internal error ({error.__class__.__name__}); see the log above")
    return EXIT_OK


def _store(args: argparse.Namespace):  # noqa: ANN202
    from monitor.store import open_store

    return open_store(_config(args).data_path)


def run_token_create(args: argparse.Namespace) -> int:
    from sessionready.config import ConfigError

    if not PARTICIPANT.fullmatch(args.participant):
        return _fail("--participant must be 1-64 letters, digits, '.', '_' or '-' (a pseudonymous id, never a name)")
    try:
        store = _store(args)
    except (ConfigError, OSError) as error:
        return _fail(str(error))
    try:
        info, token = store.create_token(args.role, args.participant)
    finally:
        store.close()
    print(f"created {info.role} token {info.token_id} for participant {info.participant_id}; it is shown only once:")
    print(token)
    return EXIT_OK


def run_token_revoke(args: argparse.Namespace) -> int:
    from sessionready.config import ConfigError

    try:
        store = _store(args)
    except (ConfigError, OSError) as error:
        return _fail(str(error))
    try:
        revoked = store.revoke_token(args.token_id)
    finally:
        store.close()
    if not revoked:
        return _fail(f"no active token with id '{args.token_id}'")
    print(f"revoked token {args.token_id}")
    return EXIT_OK


def run_token_list(args: argparse.Namespace) -> int:
    import time

    from sessionready.config import ConfigError

    try:
        store = _store(args)
    except (ConfigError, OSError) as error:
        return _fail(str(error))
    try:
        tokens = store.list_tokens()
    finally:
        store.close()
    print(f"{'TOKEN_ID':14} {'ROLE':10} {'PARTICIPANT':24} {'CREATED (UTC)':20} STATE")
    for t in tokens:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t.created_at))
        print(f"{t.token_id:14} {t.role:10} {t.participant_id:24} {created:20} {'revoked' if t.revoked_at else 'active'}")
    return EXIT_OK
