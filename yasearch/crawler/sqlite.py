"""One SQLite database, one connection, one thread: how the peer's stores use SQLite.

A sqlite3 connection must stay on the thread that made it, and a slow commit
must never stall the event loop, so every statement of a store runs on its own
single worker thread. WAL with synchronous=NORMAL makes each commit durable
against process death (not power loss) without an fsync per transaction.
It lives in the crawler package, the lowest floor, because the crawler's own
frontier store uses it and the crawler imports nothing else of yasearch; the
peer's stores (shard store, publish outbox) import it from here.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class SqliteThread:
    def __init__(self, path: str | Path, schema: str, name: str) -> None:
        self.path = str(path)
        self.schema = schema
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None
        self.closed = False

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
        return await loop.run_in_executor(self._executor, lambda: fn(self._db()))

    async def tx(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in one write transaction: all of it is committed or none."""

        def do(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = body(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return out

        return await self.run(do)

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
