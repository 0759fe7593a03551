"""``sessionready monitor`` (serve), ``sessionready monitor token ...`` (manage agent tokens) and
``sessionready monitor enroll ...`` (one-time enrollment codes that agents trade for a token)."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sessionready.terms import AGENT_ROLES, DEFAULT_TTL_HOURS, ENROLL_ROLES, EXIT_CANNOT_RUN, EXIT_OK, ID_PATTERN, MAX_TTL_HOURS, MIN_TTL_HOURS

if TYPE_CHECKING:  # the store is imported when a command runs, not when the CLI is built
    from monitor.store.protocols import Store, TokenStore

PARTICIPANT = re.compile(ID_PATTERN)


def _ttl_hours(text: str) -> int:
    if not text.isdigit() or not MIN_TTL_HOURS <= int(text) <= MAX_TTL_HOURS:
        raise argparse.ArgumentTypeError(f"must be a whole number of hours from {MIN_TTL_HOURS} to {MAX_TTL_HOURS}, got '{text}'")
    return int(text)


def _add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", type=Path, help="monitor config file (TOML, table [monitor])")
    parser.add_argument("--data-dir", metavar="DIR", help="where the store lives (overrides the config)")


def add_monitor_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "monitor",
        help="run the central monitor, or manage its agent tokens, enrollment codes, dashboard users, caseloads and check links",
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
    create.add_argument("--role", required=True, choices=AGENT_ROLES)
    create.add_argument("--participant", required=True, metavar="ID", help="pseudonymous participant id (never a name)")
    _add_location(create)
    create.set_defaults(run=run_token_create)
    revoke = token_actions.add_parser("revoke", help="revoke a token by its id", description="Revoke a token; it stops working at once (report ingest within 10 s: docs/monitor.md).")
    revoke.add_argument("token_id", metavar="TOKEN_ID")
    _add_location(revoke)
    revoke.set_defaults(run=run_token_revoke)
    listing = token_actions.add_parser("list", help="list tokens (ids, roles, participants; never the secrets)")
    _add_location(listing)
    listing.set_defaults(run=run_token_list)
    _add_enroll_parser(actions, type(parser))
    from monitor.cli.sessions import add_sessions_parser  # stdlib-only at build time

    add_sessions_parser(actions, type(parser), _add_location)
    from monitor.cli import users  # here, not at the top: it imports this module's helpers

    users.add_user_parser(actions, type(parser))
    from monitor.cli import caseloads

    caseloads.add_caseload_parser(actions, type(parser))
    from monitor.cli import links

    links.add_link_parser(actions, type(parser))
    from monitor.cli.migrate import add_migrate_parser

    add_migrate_parser(actions)


def _add_enroll_parser(actions: argparse._SubParsersAction, parser_class: type) -> None:
    enroll = actions.add_parser(
        "enroll",
        help="create, list or revoke one-time enrollment codes",
        description="Manage one-time enrollment codes: a person runs 'sessionready enroll --monitor URL CODE' "
        "and their machine gets its own token, without anyone passing a token around.",
    )
    enroll_actions = enroll.add_subparsers(dest="enroll_action", metavar="ACTION", parser_class=parser_class, required=True)
    create = enroll_actions.add_parser(
        "create",
        help="create a code (printed once, as the last line)",
        description="Create a one-time enrollment code. It is printed once, as the last line of stdout; "
        "only its hash is stored. It works once, until it expires.",
    )
    create.add_argument("--role", required=True, choices=ENROLL_ROLES)
    create.add_argument("--participant", required=True, metavar="ID", help="pseudonymous participant id (never a name)")
    create.add_argument("--ttl-hours", type=_ttl_hours, default=DEFAULT_TTL_HOURS, metavar="H", help=f"hours until the code expires, {MIN_TTL_HOURS} to {MAX_TTL_HOURS} (default {DEFAULT_TTL_HOURS})")
    _add_location(create)
    create.set_defaults(run=run_enroll_create)
    listing = enroll_actions.add_parser("list", help="list codes (ids, roles, participants, states; never the codes)")
    _add_location(listing)
    listing.set_defaults(run=run_enroll_list)
    revoke = enroll_actions.add_parser("revoke", help="revoke an unused code by its id", description="Revoke an unused enrollment code; it stops working at once.")
    revoke.add_argument("code_id", metavar="CODE_ID")
    _add_location(revoke)
    revoke.set_defaults(run=run_enroll_revoke)


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
    from monitor.store.core import StoreUnavailable
    from monitor.store.migrations import StoreTooNew
    from sessionready.config import ConfigError

    try:
        config = _config(args, host=args.host, port=args.port, advertise_udp=args.advertise_udp)
    except ConfigError as error:
        return _fail(str(error))
    configure_logging(config.log_level)
    log = logging.getLogger("sessionready.monitor")

    def ready(url: str, udp: tuple[str, int]) -> None:
        # Config is logged field by field, never whole: it may one day hold secrets.
        store = "postgresql" if config.store_url else "sqlite"  # never the URL: it may hold a password
        log.info("listening", extra={"fields": {"url": url, "udp": f"{udp[0]}:{udp[1]}", "data_dir": str(config.data_path), "store": store, "tls": config.tls}})
        print(f"sessionready monitor listening on {url} (UDP reflector on port {udp[1]}); Ctrl-C stops it", flush=True)

    try:
        asyncio.run(serve(config, ready))
    except (ConfigError, StoreTooNew, StoreUnavailable) as error:  # found while building the app, e.g. an unreadable secret file
        return _fail(str(error))
    except OSError as error:
        return _fail(f"cannot start: {error.strerror or error} (address {config.host}:{config.port})")
    except Exception as error:  # noqa: BLE001 - the last line of defence: one sentence, details in the log
        log.exception("monitor failed")
        return _fail(f"stopped after an internal error ({error.__class__.__name__}); see the log above")
    return EXIT_OK


def _with_store(args: argparse.Namespace, action: Callable[[Store], int]) -> int:
    """Open the configured store, run ``action`` on it, close it; one sentence if it cannot open."""
    from monitor.store.core import StoreUnavailable, open_store_from_config
    from monitor.store.migrations import StoreTooNew
    from sessionready.config import ConfigError

    try:
        store = open_store_from_config(_config(args))
    except (ConfigError, OSError, StoreTooNew, StoreUnavailable) as error:
        return _fail(str(error))
    try:
        return action(store)
    finally:
        store.close()


def _bad_participant(participant: str) -> bool:
    return not PARTICIPANT.fullmatch(participant)


PARTICIPANT_RULE = "--participant must be 1-64 letters, digits, '.', '_' or '-' (a pseudonymous id, never a name)"


def _utc(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix_s))


def run_token_create(args: argparse.Namespace) -> int:
    if _bad_participant(args.participant):
        return _fail(PARTICIPANT_RULE)

    def create(store: TokenStore) -> int:
        info, token = store.create_token(args.role, args.participant)
        print(f"created {info.role} token {info.token_id} for participant {info.participant_id}; it is shown only once:")
        print(token)
        return EXIT_OK

    return _with_store(args, create)


def run_token_revoke(args: argparse.Namespace) -> int:
    def revoke(store: TokenStore) -> int:
        if not store.revoke_token(args.token_id):
            return _fail(f"no active token with id '{args.token_id}'")
        print(f"revoked token {args.token_id}")
        return EXIT_OK

    return _with_store(args, revoke)


def run_token_list(args: argparse.Namespace) -> int:
    def listing(store: TokenStore) -> int:
        print(f"{'TOKEN_ID':14} {'ROLE':10} {'PARTICIPANT':24} {'CREATED (UTC)':20} STATE")
        for t in store.list_tokens():
            print(f"{t.token_id:14} {t.role:10} {t.participant_id:24} {_utc(t.created_at):20} {'revoked' if t.revoked_at else 'active'}")
        return EXIT_OK

    return _with_store(args, listing)


def run_enroll_create(args: argparse.Namespace) -> int:
    from monitor.http.enroll import create_code

    if _bad_participant(args.participant):
        return _fail(PARTICIPANT_RULE)

    def create(store: TokenStore) -> int:
        from monitor.store.sessions import SessionConflict

        try:
            info, code = create_code(store, args.role, args.participant, args.ttl_hours)
        except SessionConflict as error:
            return _fail(error.message)
        print(
            f"created enrollment code {info.code_id} for {info.role} participant {info.participant_id}, "
            f"valid once until {_utc(info.expires_at)} UTC; it is shown only once:"
        )
        print(code)
        return EXIT_OK

    return _with_store(args, create)


def run_enroll_list(args: argparse.Namespace) -> int:
    def listing(store: TokenStore) -> int:
        now = time.time()
        print(f"{'CODE_ID':14} {'ROLE':10} {'PARTICIPANT':24} {'CREATED (UTC)':20} {'EXPIRES (UTC)':20} STATE")
        for c in store.list_enrollments():
            print(f"{c.code_id:14} {c.role:10} {c.participant_id:24} {_utc(c.created_at):20} {_utc(c.expires_at):20} {c.state(now)}")
        return EXIT_OK

    return _with_store(args, listing)


def run_enroll_revoke(args: argparse.Namespace) -> int:
    def revoke(store: TokenStore) -> int:
        if not store.revoke_enrollment(args.code_id):
            return _fail(f"no unused enrollment code with id '{args.code_id}'")
        print(f"revoked enrollment code {args.code_id}")
        return EXIT_OK

    return _with_store(args, revoke)
