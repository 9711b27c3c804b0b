"""Per-page crawl metadata that survives a crash: validators, content hash, interval, next visit.

One SQLite table (``recrawl.db`` in the data dir), written by one worker thread
like the crawl store; rows are keyed by the page's canonical URL.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from yasearch.crawler.sqlite import Health, SqliteThread, StorageFullError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    url TEXT PRIMARY KEY,
    doc_id TEXT NOT NULL,
    etag TEXT NOT NULL DEFAULT '',
    last_modified TEXT NOT NULL DEFAULT '',
    hash TEXT NOT NULL DEFAULT '',
    interval REAL NOT NULL,
    next_visit REAL NOT NULL,
    last_visit REAL NOT NULL,
    last_change REAL NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pages_due ON pages(next_visit);
"""

_COLUMNS = "url, doc_id, etag, last_modified, hash, interval, next_visit, last_visit, last_change, failures"


@dataclass
class PageRow:
    url: str
    doc_id: str
    etag: str
    last_modified: str
    hash: str
    interval: float
    next_visit: float
    last_visit: float
    last_change: float
    failures: int = 0


class RecrawlStore:
    def __init__(self, path: str | Path, health: Health | None = None) -> None:
        self._db = SqliteThread(path, _SCHEMA, "recrawl-store", health)

    async def track(self, row: PageRow) -> None:
        """A crawl fetched this page: (re)start its schedule from now."""

        def do(c: sqlite3.Connection) -> None:
            c.execute(
                f"INSERT INTO pages({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(url) DO UPDATE SET "
                "doc_id=excluded.doc_id, etag=excluded.etag, last_modified=excluded.last_modified, "
                "last_change=CASE WHEN pages.hash=excluded.hash THEN pages.last_change ELSE excluded.last_change END, "
                "hash=excluded.hash, last_visit=excluded.last_visit, "
                "next_visit=excluded.last_visit + pages.interval, failures=0",
                (row.url, row.doc_id, row.etag, row.last_modified, row.hash, row.interval,
                 row.next_visit, row.last_visit, row.last_change, row.failures),
            )

        await self._db.tx(do)

    async def save(self, row: PageRow) -> None:
        def do(c: sqlite3.Connection) -> None:
            c.execute(
                f"INSERT OR REPLACE INTO pages({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (row.url, row.doc_id, row.etag, row.last_modified, row.hash, row.interval,
                 row.next_visit, row.last_visit, row.last_change, row.failures),
            )

        await self._db.tx(do)

    async def get(self, url: str) -> PageRow | None:
        rows = await self._db.run(lambda c: c.execute(f"SELECT {_COLUMNS} FROM pages WHERE url=?", (url,)).fetchall())
        return PageRow(*rows[0]) if rows else None

    async def due(self, limit: int, now: float | None = None) -> list[PageRow]:
        at = time.time() if now is None else now
        rows = await self._db.run(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM pages WHERE next_visit<=? ORDER BY next_visit LIMIT ?", (at, limit)
            ).fetchall()
        )
        return [PageRow(*r) for r in rows]

    async def delete(self, urls: list[str]) -> None:
        await self._db.tx(lambda c: c.executemany("DELETE FROM pages WHERE url=?", [(u,) for u in urls]))

    async def counts(self, now: float | None = None) -> tuple[int, int]:
        """(pages tracked, pages due now)."""
        at = time.time() if now is None else now
        try:
            return await self._db.run(
                lambda c: c.execute("SELECT COUNT(*), COALESCE(SUM(next_visit<=?), 0) FROM pages", (at,)).fetchone()
            )
        except StorageFullError:  # not even created yet, on a full disk: it holds nothing
            return 0, 0

    async def close(self) -> None:
        await self._db.close()
