"""One SQLite database, one connection, one thread: how the peer's stores use SQLite.

A sqlite3 connection must stay on the thread that made it, and a slow commit
must never stall the event loop, so every statement of a store runs on its own
single worker thread. WAL with synchronous=NORMAL makes each commit durable
against process death (not power loss) without an fsync per transaction.
It lives in the crawler package, the lowest floor, because the crawler's own
frontier store uses it and the crawler imports nothing else of yasearch; the
peer's stores (shard store, publish outbox) import it from here.

A full disk is not a crash: a write that fails with SQLITE_FULL or ENOSPC rolls
its transaction back whole (nothing half-written), is reported to the store's
``health`` callback (the peer's fault registry, :mod:`yasearch.faults`) and is
raised as :class:`StorageFullError`, which callers answer by keeping their work
and retrying later; the next transaction that commits reports the store healthy.
"""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: Told ``None`` after each committed write transaction, the error after a full disk.
Health = Callable[[BaseException | None], None]

_SQLITE_FULL = 13


class StorageFullError(Exception):
    """A store could not write because its filesystem is full (retry later)."""

    def __init__(self, store: str, error: BaseException) -> None:
        super().__init__(f"{store}: {error}")
        self.store = store
        self.error = error


def is_disk_full(e: BaseException) -> bool:
    """Whether ``e`` means "no space left": SQLITE_FULL, ENOSPC or EDQUOT."""
    if isinstance(e, StorageFullError):
        return True
    if isinstance(e, sqlite3.Error):
        code = getattr(e, "sqlite_errorcode", None)
        return (code is not None and code & 0xFF == _SQLITE_FULL) or "database or disk is full" in str(e)
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


class SqliteThread:
    def __init__(self, path: str | Path, schema: str, name: str, health: Health | None = None) -> None:
        self.path = str(path)
        self.schema = schema
        self.name = name
        self.health = health
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None
        self.closed = False
        # opened now, on its thread, while there is room (a failure is retried at first use)
        self._executor.submit(self._db)

    def _db(self) -> sqlite3.Connection:
        """The connection, opened lazily on the worker thread (so it lives there)."""
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(self.schema)
            self._conn = conn
        return self._conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the worker thread."""
        if self.closed:
            raise RuntimeError(f"{self.name} is closed")
        loop = asyncio.get_running_loop()

        def call() -> tuple[T, bool]:
            fresh = self._conn is None
            return fn(self._db()), fresh

        try:
            out, opened = await loop.run_in_executor(self._executor, call)
            if opened and self.health is not None:
                self.health(None)  # creating the database wrote its schema: it can write
            return out
        except Exception as e:
            if not is_disk_full(e):
                raise
            if self.health is not None:
                self.health(e)
            if isinstance(e, StorageFullError):
                raise
            raise StorageFullError(self.name, e) from e

    async def tx(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in one write transaction: all of it is committed or none.

        A failed COMMIT (a full disk) rolls back too; SQLite may already have
        rolled back by itself, so the rollback is only sent while one is open."""

        def do(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return out

        out = await self.run(do)
        if self.health is not None:
            self.health(None)
        return out

    async def close(self) -> None:
        if self.closed:
            return

        def do() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, do)
        self.closed = True
        self._executor.shutdown(wait=True)
