"""Per-page crawl metadata that survives a crash: validators, content hash, interval, next visit.

One SQLite table (``recrawl.db`` in the data dir), written by one worker thread
like the crawl store; rows are keyed by the page's canonical URL.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
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
    failures INTEGER NOT NULL DEFAULT 0,
    revisits INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    changed INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pages_due ON pages(next_visit);
"""

_COLUMNS = (
    "url, doc_id, etag, last_modified, hash, interval, next_visit, last_visit, last_change, failures, "
    "revisits, unchanged, changed"
)
_PLACES = ",".join("?" * 13)
#: Columns a recrawl.db of an earlier version lacks (added on open).
_ADDED = ("revisits", "unchanged", "changed")
#: The host[:port] of a stored URL (canonical: scheme://host[:port]/path).
_HOST = "substr(url, instr(url, '://') + 3, instr(substr(url, instr(url, '://') + 3) || '/', '/') - 1)"


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
    revisits: int = 0
    unchanged: int = 0
    changed: int = 0

    def values(self) -> tuple:
        return (self.url, self.doc_id, self.etag, self.last_modified, self.hash, self.interval, self.next_visit,
                self.last_visit, self.last_change, self.failures, self.revisits, self.unchanged, self.changed)


@dataclass
class HostFigures:
    """The recrawl figures of one host's tracked pages."""

    tracked: int = 0
    due: int = 0
    next_visit: float | None = None
    last_change: float | None = None
    revisits: int = 0
    unchanged: int = 0
    changed: int = 0
    failing: int = 0


def _upgrade(c: sqlite3.Connection) -> None:
    have = {r[1] for r in c.execute("PRAGMA table_info(pages)")}
    for col in _ADDED:
        if col not in have:
            c.execute(f"ALTER TABLE pages ADD COLUMN {col} INTEGER NOT NULL DEFAULT 0")


class RecrawlStore:
    def __init__(self, path: str | Path, health: Health | None = None) -> None:
        self._db = SqliteThread(path, _SCHEMA, "recrawl-store", health)
        self._upgraded = False

    async def _ready(self) -> SqliteThread:
        if not self._upgraded:
            await self._db.tx(_upgrade)
            self._upgraded = True
        return self._db

    async def track(self, row: PageRow) -> None:
        """A crawl fetched this page: (re)start its schedule from now."""

        def do(c: sqlite3.Connection) -> None:
            c.execute(
                f"INSERT INTO pages({_COLUMNS}) VALUES ({_PLACES}) ON CONFLICT(url) DO UPDATE SET "
                "doc_id=excluded.doc_id, etag=excluded.etag, last_modified=excluded.last_modified, "
                "last_change=CASE WHEN pages.hash=excluded.hash THEN pages.last_change ELSE excluded.last_change END, "
                "hash=excluded.hash, last_visit=excluded.last_visit, "
                "next_visit=excluded.last_visit + pages.interval, failures=0",
                row.values(),
            )

        await (await self._ready()).tx(do)

    async def save(self, row: PageRow) -> None:
        def do(c: sqlite3.Connection) -> None:
            c.execute(
                f"INSERT OR REPLACE INTO pages({_COLUMNS}) VALUES ({_PLACES})",
                row.values(),
            )

        await (await self._ready()).tx(do)

    async def get(self, url: str) -> PageRow | None:
        rows = await (await self._ready()).run(lambda c: c.execute(f"SELECT {_COLUMNS} FROM pages WHERE url=?", (url,)).fetchall())
        return PageRow(*rows[0]) if rows else None

    async def due(self, limit: int, now: float | None = None) -> list[PageRow]:
        at = time.time() if now is None else now
        rows = await (await self._ready()).run(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM pages WHERE next_visit<=? ORDER BY next_visit LIMIT ?", (at, limit)
            ).fetchall()
        )
        return [PageRow(*r) for r in rows]

    async def delete(self, urls: list[str]) -> None:
        await (await self._ready()).tx(lambda c: c.executemany("DELETE FROM pages WHERE url=?", [(u,) for u in urls]))

    async def counts(self, now: float | None = None) -> tuple[int, int]:
        """(pages tracked, pages due now)."""
        at = time.time() if now is None else now
        try:
            return await (await self._ready()).run(
                lambda c: c.execute("SELECT COUNT(*), COALESCE(SUM(next_visit<=?), 0) FROM pages", (at,)).fetchone()
            )
        except StorageFullError:  # not even created yet, on a full disk: it holds nothing
            return 0, 0

    async def rows(self, urls: list[str]) -> dict[str, PageRow]:
        """The rows of those of ``urls`` that are tracked, by URL."""
        marks = ",".join("?" * len(urls))
        rows = await (await self._ready()).run(
            lambda c: c.execute(f"SELECT {_COLUMNS} FROM pages WHERE url IN ({marks})", urls).fetchall() if urls else []
        )
        return {r[0]: PageRow(*r) for r in rows}

    async def update(self, urls: list[str], change: Callable[[PageRow], bool]) -> int:
        """Apply ``change`` to the tracked rows of ``urls`` in one transaction; the rows it
        returns True for are saved. Returns how many were saved."""

        def do(c: sqlite3.Connection) -> int:
            saved = 0
            for i in range(0, len(urls), 500):
                chunk = urls[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for r in c.execute(f"SELECT {_COLUMNS} FROM pages WHERE url IN ({marks})", chunk).fetchall():
                    row = PageRow(*r)
                    if change(row):
                        c.execute(f"INSERT OR REPLACE INTO pages({_COLUMNS}) VALUES ({_PLACES})", row.values())
                        saved += 1
            return saved

        return await (await self._ready()).tx(do)

    async def host_figures(self, host: str, now: float | None = None) -> HostFigures:
        """The figures of ``host``'s (``host[:port]``) pages, over http and https."""
        at = time.time() if now is None else now
        ranges: list[str] = []
        for scheme in ("http", "https"):
            ranges += [f"{scheme}://{host}/", f"{scheme}://{host}0"]  # '0' follows '/': the URL range

        def do(c: sqlite3.Connection) -> tuple:
            return c.execute(
                "SELECT COUNT(*), COALESCE(SUM(next_visit<=?), 0), MIN(next_visit), MAX(last_change), "
                "COALESCE(SUM(revisits), 0), COALESCE(SUM(unchanged), 0), COALESCE(SUM(changed), 0), "
                "COALESCE(SUM(failures>0), 0) FROM pages WHERE (url>=? AND url<?) OR (url>=? AND url<?)",
                (at, *ranges),
            ).fetchone()

        return HostFigures(*await (await self._ready()).run(do))

    async def due_by_host(self, now: float | None = None) -> dict[str, int]:
        """host[:port] -> pages due at ``now``."""
        at = time.time() if now is None else now
        rows = await (await self._ready()).run(
            lambda c: c.execute(f"SELECT {_HOST}, COUNT(*) FROM pages WHERE next_visit<=? GROUP BY 1", (at,)).fetchall()
        )
        return dict(rows)

    async def close(self) -> None:
        await self._db.close()
