"""``sessionready monitor migrate``: bring the store's schema to this version's, or say what
would change (``--check``). The monitor and every ``sessionready monitor`` command that opens
the store also migrate it by themselves; this command does it on purpose, before a restart,
and shows the steps. See docs/monitor.md, "Schema versions"."""

from __future__ import annotations

import argparse
import sqlite3

from monitor.cli.main import _add_location, _config, _fail
from sessionready.terms import EXIT_OK

EXIT_PENDING = 1  # --check: the store needs migrations


def add_migrate_parser(actions: argparse._SubParsersAction) -> None:
    migrate = actions.add_parser(
        "migrate",
        help="upgrade the store's schema to this version's (the monitor also does it at start)",
        description="Upgrade the store's schema to this version of sessionready, one step at a time, each in one "
        "transaction, after copying a SQLite store to sessionready.sqlite3.before-v<N> beside it (a PostgreSQL "
        "store, [monitor] store_url, is not copied: pg_dump it first). A store written by a "
        f"newer sessionready is refused and left untouched. Exit status: {EXIT_OK} up to date (or upgraded), "
        f"{EXIT_PENDING} with --check when steps are pending, 3 when the store cannot be used.",
    )
    migrate.add_argument("--check", action="store_true", help="only say which steps are pending; change nothing")
    _add_location(migrate)
    migrate.set_defaults(run=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    from monitor.store import migrations
    from monitor.store.core import open_store
    from sessionready.config import ConfigError

    try:
        config = _config(args)
    except ConfigError as error:
        return _fail(str(error))
    if config.store_url:
        return _migrate_postgres(config.store_url, args.check)
    data_dir = config.data_path
    path = data_dir / "sessionready.sqlite3"
    if not path.is_file():
        return _fail(f"there is no store at {path}: start the monitor once, or give --data-dir or --config")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:  # read-only: --check changes nothing
            found = migrations.check_not_newer(db, path)
            steps = migrations.pending(db)
    except migrations.StoreTooNew as error:
        return _fail(str(error))
    except sqlite3.Error as error:
        return _fail(f"cannot read the store {path}: {error}")
    latest = migrations.latest()
    print(f"store {path}: schema version {found or 'not recorded'}; this sessionready: {latest}")
    todo = [(step.version, step.summary) for step in steps]
    if found < migrations.BASELINE:
        todo.insert(0, (migrations.BASELINE, "record the schema version (the store is from before versions; nothing else changes)"))
    if not todo:
        print("nothing to do: the store is up to date")
        return EXIT_OK
    for version, summary in todo:
        print(f"  {'pending' if args.check else 'applying'} v{version}: {summary}")
    if args.check:
        return EXIT_PENDING
    try:
        store = open_store(data_dir)
    except (OSError, sqlite3.Error, migrations.StoreTooNew) as error:
        return _fail(f"the upgrade failed and was rolled back: {error}")
    store.close()
    kept = f"; the store before it is kept as {path.name}.before-v{steps[0].version}" if steps else ""
    print(f"the store is at version {latest}{kept}")
    return EXIT_OK


def _migrate_postgres(url: str, check: bool) -> int:
    """The same for a PostgreSQL store (``store_url``). No copy is made: take a pg_dump first
    (docs/postgresql.md); each step is one transaction, so a failed one changes nothing."""
    from monitor.store import migrations
    from monitor.store.core import StoreUnavailable

    try:
        from monitor.store import postgres
    except ImportError:
        return _fail("store_url is a postgresql:// URL, but the PostgreSQL driver is not installed: pip install 'sessionready[postgresql]'")
    where = postgres.describe(url)
    try:
        found, steps = postgres.pending(url)
    except (migrations.StoreTooNew, StoreUnavailable) as error:
        return _fail(str(error))
    latest = migrations.latest()
    print(f"store {where}: schema version {found or 'none (no tables yet)'}; this sessionready: {latest}")
    todo = [(step.version, step.summary) for step in steps]
    if found < migrations.BASELINE:
        todo.insert(0, (migrations.BASELINE, "create the store's tables"))
    if not todo:
        print("nothing to do: the store is up to date")
        return EXIT_OK
    for version, summary in todo:
        print(f"  {'pending' if check else 'applying'} v{version}: {summary}")
    if check:
        return EXIT_PENDING
    try:
        postgres.upgrade(url)
    except (migrations.StoreTooNew, StoreUnavailable) as error:
        return _fail(str(error))
    except postgres.psycopg.Error as error:
        return _fail(f"the upgrade failed and was rolled back: {type(error).__name__}")
    print(f"the store is at version {latest}")
    return EXIT_OK
