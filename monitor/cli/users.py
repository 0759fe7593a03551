"""``sessionready monitor user create|list|disable|passwd``: dashboard users, managed on the
monitor's machine (``create`` makes the first admin).

Passwords are read from the terminal (asked twice, not echoed) or, for scripts, as one line
on stdin with ``--password-stdin``; never from the command line, where shell history and the
process list would keep them.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from monitor.cli.main import PARTICIPANT, _add_location, _fail, _utc, _with_store
from sessionready.terms import EXIT_OK, USER_ROLES

if TYPE_CHECKING:
    from monitor.store.protocols import UserStore

NO_ARGV_PASSWORD = (
    "passwords are never taken on the command line (shell history and the process list keep them); "
    "type it when asked, or pipe it in with --password-stdin"
)


def add_user_parser(actions: argparse._SubParsersAction, parser_class: type) -> None:
    user = actions.add_parser(
        "user",
        help="create, list, disable dashboard users or set their passwords",
        description="Manage dashboard users (roles therapist, it, admin). Run 'user create --role admin' for the first admin.",
    )
    user_actions = user.add_subparsers(dest="user_action", metavar="ACTION", parser_class=parser_class, required=True)
    create = user_actions.add_parser(
        "create",
        help="create a user (asks for the password)",
        description="Create a dashboard user. A therapist needs --participant: the pseudonymous therapist id "
        "whose sessions they will see. The password is asked twice on a terminal, or read as one line "
        "from stdin with --password-stdin.",
    )
    create.add_argument("--username", required=True, metavar="NAME", help="login name: 3-64 of a-z, 0-9, '.', '_', '-'")
    create.add_argument("--role", required=True, choices=USER_ROLES)
    create.add_argument("--participant", metavar="ID", help="therapist only: the pseudonymous therapist id (never a name)")
    _add_password_arguments(create)
    _add_location(create)
    create.set_defaults(run=run_create)
    listing = user_actions.add_parser("list", help="list users (names, roles, states; never password hashes)")
    _add_location(listing)
    listing.set_defaults(run=run_list)
    disable = user_actions.add_parser(
        "disable", help="disable a user; their logins end at once", description="Disable a user: they cannot log in, and their open logins end at once."
    )
    disable.add_argument("username", metavar="USERNAME")
    _add_location(disable)
    disable.set_defaults(run=run_disable)
    passwd = user_actions.add_parser(
        "passwd",
        help="set a user's password (ends their logins, clears a lockout)",
        description="Set a new password for a user. Their open logins end, and a lockout after wrong passwords is cleared.",
    )
    passwd.add_argument("username", metavar="USERNAME")
    _add_password_arguments(passwd)
    _add_location(passwd)
    passwd.set_defaults(run=run_passwd)


def _add_password_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-stdin", action="store_true", help="read the password as one line from stdin (for scripts)")
    # Accepted only to refuse it with a reason, instead of argparse echoing the password back
    # in an "unrecognized arguments" error.
    parser.add_argument("--password", help=argparse.SUPPRESS)


def read_password(args: argparse.Namespace, prompt: Callable[[str], str] = getpass.getpass) -> tuple[str | None, str | None]:
    """(password, None), or (None, why not) in one sentence. Checks the password rules."""
    from monitor.http.users import password_problem

    if args.password is not None:
        return None, NO_ARGV_PASSWORD
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not line:
            return None, "--password-stdin: stdin is empty; send the password as one line"
    elif sys.stdin.isatty():
        password = prompt("New password: ")
        if prompt("Repeat it: ") != password:
            return None, "the two passwords differ; nothing changed"
    else:
        return None, "there is no terminal to ask for the password on; pipe it in with --password-stdin"
    problem = password_problem(password)
    return (None, problem) if problem else (password, None)


def _hash(password: str) -> str:
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def run_create(args: argparse.Namespace) -> int:
    from monitor.http.users import USERNAME_RULE, valid_username

    if not valid_username(args.username):
        return _fail(USERNAME_RULE)
    if args.role == "therapist" and args.participant is None:
        return _fail("a therapist needs --participant: the pseudonymous therapist id whose sessions they see")
    if args.role != "therapist" and args.participant is not None:
        return _fail(f"--participant is for therapists only; an {args.role} user sees every session")
    if args.participant is not None and not PARTICIPANT.fullmatch(args.participant):
        return _fail("--participant must be 1-64 letters, digits, '.', '_' or '-' (a pseudonymous id, never a name)")
    password, problem = read_password(args)
    if password is None:
        return _fail(problem or "no password")
    password_hash = _hash(password)

    def create(store: UserStore) -> int:
        try:
            info = store.create_user(args.username, args.role, args.participant, password_hash)
        except ValueError as error:
            return _fail(str(error))
        scope = f"sees the sessions of therapist {info.participant_id}" if info.participant_id else "sees every session"
        print(f"created {info.role} user {info.username} (id {info.user_id}); {scope}")
        return EXIT_OK

    return _with_store(args, create)


def run_list(args: argparse.Namespace) -> int:
    def listing(store: UserStore) -> int:
        now = time.time()
        print(f"{'USERNAME':24} {'ROLE':10} {'PARTICIPANT':24} {'CREATED (UTC)':20} STATE")
        for u in store.list_users():
            state = u.state(now)
            if state == "active" and u.failed_logins:
                # Nothing locks; a count here says someone has been guessing (docs/users.md).
                state = f"active, {u.failed_logins} wrong logins since the last good one"
            print(f"{u.username:24} {u.role:10} {u.participant_id or '-':24} {_utc(u.created_at):20} {state}")
        return EXIT_OK

    return _with_store(args, listing)


def run_disable(args: argparse.Namespace) -> int:
    def disable(store: UserStore) -> int:
        if not store.disable_user(args.username):
            return _fail(f"no active user named '{args.username}'")
        print(f"disabled user {args.username}; their logins have ended")
        return EXIT_OK

    return _with_store(args, disable)


def run_passwd(args: argparse.Namespace) -> int:
    password, problem = read_password(args)
    if password is None:
        return _fail(problem or "no password")
    password_hash = _hash(password)

    def passwd(store: UserStore) -> int:
        if not store.set_user_password(args.username, password_hash):
            return _fail(f"no user named '{args.username}'")
        print(f"set a new password for {args.username}; their open logins have ended")
        return EXIT_OK

    return _with_store(args, passwd)
