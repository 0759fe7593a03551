"""``sessionready monitor link create|list|revoke``: check links, on the monitor's machine.

The same links as ``/api/v1/check-links`` (monitor/http/check_links.py, docs/browser-check.md):
a client opens the link in a browser and runs the check without installing anything. The
secret is printed once; the store keeps only its hash.
"""

from __future__ import annotations

import argparse
import re
import time
from typing import TYPE_CHECKING

from monitor.cli.main import PARTICIPANT, _add_location, _config, _fail, _ttl_hours, _utc, _with_store
from sessionready.terms import DEFAULT_TTL_HOURS, EXIT_OK, MAX_TTL_HOURS, MIN_TTL_HOURS

if TYPE_CHECKING:
    from monitor.http.check_links import LinkMakingStore
    from monitor.store.protocols import CheckLinkStore

ID_RULE = "must be 1-64 letters, digits, '.', '_' or '-' (a pseudonymous id, never a name)"
BASE_URL = re.compile(r"https?://[^\s?#]+")


def add_link_parser(actions: argparse._SubParsersAction, parser_class: type) -> None:
    link = actions.add_parser(
        "link",
        help="create, list or revoke check links (a client's check in a browser)",
        description="Manage check links: whoever opens one runs the check in a browser for that client, "
        "and sees only the checks made through it.",
    )
    link_actions = link.add_subparsers(dest="link_action", metavar="ACTION", parser_class=parser_class, required=True)
    create = link_actions.add_parser(
        "create",
        help="create a link (its URL printed once, as the last line)",
        description="Create a check link for a registered client. Its URL is printed once, as the last line "
        "of stdout (in full with --base-url or [monitor] public_url, else the path); only a hash is stored.",
    )
    create.add_argument("--participant", required=True, metavar="ID", help="the client's pseudonymous id (never a name)")
    create.add_argument("--session", metavar="ID", help="the client's session the checks are for")
    create.add_argument(
        "--ttl-hours", type=_ttl_hours, default=DEFAULT_TTL_HOURS, metavar="N",
        help=f"hours until the link expires, {MIN_TTL_HOURS} to {MAX_TTL_HOURS} (default {DEFAULT_TTL_HOURS})",
    )  # fmt: skip
    create.add_argument("--base-url", metavar="URL", help="the address people open the monitor at, e.g. https://monitor.example.org")
    _add_location(create)
    create.set_defaults(run=run_create)
    listing = link_actions.add_parser("list", help="list links (ids, clients, states; never the secrets)", description="List check links.")
    listing.add_argument("--participant", metavar="ID", help="only this client's links")
    _add_location(listing)
    listing.set_defaults(run=run_list)
    revoke = link_actions.add_parser("revoke", help="revoke a link by its id", description="Revoke a check link; it stops working at once.")
    revoke.add_argument("link_id", metavar="LINK_ID")
    _add_location(revoke)
    revoke.set_defaults(run=run_revoke)


def _base_url(args: argparse.Namespace) -> str | None:
    """The URL prefix for the link, or None (print the path); ValueError for a bad --base-url."""
    if args.base_url is not None:
        if not BASE_URL.fullmatch(args.base_url):
            raise ValueError("--base-url must be http:// or https:// and a host, e.g. https://monitor.example.org")
        return args.base_url.rstrip("/")
    return _config(args).public_url.rstrip("/") or None


def run_create(args: argparse.Namespace) -> int:
    from sessionready.config import ConfigError

    for flag in ("participant", "session"):
        value = getattr(args, flag)
        if value is not None and not PARTICIPANT.fullmatch(value):
            return _fail(f"--{flag} {ID_RULE}")
    try:
        base = _base_url(args)
    except (ValueError, ConfigError) as error:
        return _fail(str(error))

    def create(store: LinkMakingStore) -> int:
        from monitor.http.check_links import create_link
        from monitor.store.sessions import SessionStoreError

        try:
            info, secret = create_link(store, args.participant, args.session, args.ttl_hours)
        except SessionStoreError as error:
            return _fail(error.message)
        session = f" for session {info.session_id}" if info.session_id else ""
        print(f"created check link {info.link_id} for client {info.participant_id}{session}, valid until {_utc(info.expires_at)} UTC; it is shown only once:")
        print(f"{base or ''}/c/{secret}")
        return EXIT_OK

    return _with_store(args, create)


def run_list(args: argparse.Namespace) -> int:
    if args.participant is not None and not PARTICIPANT.fullmatch(args.participant):
        return _fail(f"--participant {ID_RULE}")

    def listing(store: CheckLinkStore) -> int:
        now = time.time()
        print(f"{'LINK_ID':14} {'CLIENT':24} {'SESSION':24} {'EXPIRES (UTC)':20} {'STATE':8} CHECKS")
        for link in store.list_check_links(None if args.participant is None else {args.participant}):
            print(f"{link.link_id:14} {link.participant_id:24} {link.session_id or '-':24} {_utc(link.expires_at):20} {link.state(now):8} {link.checks}")
        return EXIT_OK

    return _with_store(args, listing)


def run_revoke(args: argparse.Namespace) -> int:
    def revoke(store: CheckLinkStore) -> int:
        link = store.get_check_link(args.link_id)
        if link is None:
            return _fail(f"no check link with id '{args.link_id}'")
        if not store.revoke_check_link(args.link_id):
            print(f"check link {args.link_id} was already revoked; nothing changed")
            return EXIT_OK
        print(f"revoked check link {args.link_id}")
        return EXIT_OK

    return _with_store(args, revoke)
