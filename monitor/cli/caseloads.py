"""``sessionready monitor caseload assign|remove|list``: which clients each therapist works with.

The same caseloads as ``/api/v1/caseload`` (monitor/http/caseloads.py), managed on the monitor's
machine. A therapist creates sessions only with, and sees the checks only of, clients on their
caseload (docs/security.md).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from monitor.cli.main import PARTICIPANT, _add_location, _fail, _utc, _with_store
from sessionready.terms import EXIT_OK

if TYPE_CHECKING:
    from monitor.store.protocols import CaseloadStore

ID_RULE = "must be 1-64 letters, digits, '.', '_' or '-' (a pseudonymous id, never a name)"


def add_caseload_parser(actions: argparse._SubParsersAction, parser_class: type) -> None:
    caseload = actions.add_parser(
        "caseload",
        help="assign clients to therapists, remove or list assignments",
        description="Manage caseloads: a therapist creates sessions only with clients on their caseload and sees "
        "a client's checks only while the client is on it, for checks made around their own sessions with "
        "the client. Sessions that staff create or import assign their pair by themselves.",
    )
    caseload_actions = caseload.add_subparsers(dest="caseload_action", metavar="ACTION", parser_class=parser_class, required=True)
    for name, help_text, run in (
        ("assign", "put a client on a therapist's caseload", run_assign),
        ("remove", "take a client off a therapist's caseload (their sessions stay)", run_remove),
    ):
        action = caseload_actions.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        action.add_argument("--therapist", required=True, metavar="ID", help="pseudonymous therapist id")
        action.add_argument("--client", required=True, metavar="ID", help="pseudonymous client id")
        _add_location(action)
        action.set_defaults(run=run)
    listing = caseload_actions.add_parser("list", help="list assignments (all, or one therapist's)", description="List caseload assignments.")
    listing.add_argument("--therapist", metavar="ID", help="only this therapist's clients")
    _add_location(listing)
    listing.set_defaults(run=run_list)


def _bad_ids(args: argparse.Namespace) -> str | None:
    for flag in ("therapist", "client"):
        value = getattr(args, flag, None)
        if value is not None and not PARTICIPANT.fullmatch(value):
            return f"--{flag} {ID_RULE}"
    return None


def run_assign(args: argparse.Namespace) -> int:
    if problem := _bad_ids(args):
        return _fail(problem)

    def assign(store: CaseloadStore) -> int:
        from monitor.store.sessions import SessionStoreError

        try:
            entry, created = store.assign_client(args.therapist, args.client, "cli")
        except SessionStoreError as error:
            return _fail(error.message)
        if created:
            print(f"assigned client {entry.client_id} to therapist {entry.therapist_id}")
        else:
            print(f"client {entry.client_id} was already on therapist {entry.therapist_id}'s caseload (since {_utc(entry.assigned_at)} UTC); nothing changed")
        return EXIT_OK

    return _with_store(args, assign)


def run_remove(args: argparse.Namespace) -> int:
    if problem := _bad_ids(args):
        return _fail(problem)

    def remove(store: CaseloadStore) -> int:
        if not store.unassign_client(args.therapist, args.client):
            return _fail(f"client {args.client} is not on therapist {args.therapist}'s caseload")
        print(f"removed client {args.client} from therapist {args.therapist}'s caseload; their sessions stay, the client's checks are no longer shown to them")
        return EXIT_OK

    return _with_store(args, remove)


def run_list(args: argparse.Namespace) -> int:
    if problem := _bad_ids(args):
        return _fail(problem)

    def listing(store: CaseloadStore) -> int:
        print(f"{'THERAPIST':24} {'CLIENT':24} {'ASSIGNED (UTC)':20} SOURCE")
        for entry in store.caseload(args.therapist):
            print(f"{entry.therapist_id:24} {entry.client_id:24} {_utc(entry.assigned_at):20} {entry.source}")
        return EXIT_OK

    return _with_store(args, listing)
