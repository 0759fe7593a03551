"""The sessions part of the SQLite store (a mixin of ``monitor.store.SQLiteStore``).

Methods use the store's ``_transaction()`` (a write transaction under the lock),
``_lock``, ``_db`` (sqlite3 connection, autocommit) and ``_clock`` (unix seconds).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager


class SessionStoreMixin:
    SCHEMA = ""

    _db: sqlite3.Connection
    _lock: threading.Lock
    _clock: Callable[[], float]
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
