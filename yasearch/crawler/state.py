"""Crash-safe persistence of crawl jobs and their frontiers (SQLite).

Every URL is written before it is queued in memory and its state is updated as it
progresses, so after a ``kill -9`` a restarted crawl reloads its seen set and pending
URLs and loses at most the pages that were in flight. WAL with synchronous=NORMAL
makes each commit durable against process death (not power loss) without an fsync
per page.

SQLite connections are not safe to share across threads and a slow commit must not
stall the event loop, so every statement runs on one dedicated worker thread.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sqlite import Health, SqliteThread
from .types import CrawlSpec

log = logging.getLogger(__name__)


JOB_STATES = ("running", "paused", "done", "cancelled", "failed")
URL_STATES = ("queued", "fetched", "done", "failed", "skipped")
#: Reason prefix of rows recording that a URL is the canonical (or redirect target)
#: of another fetched URL; the rest of the reason is that URL.
ALIAS_PREFIX = "alias:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    counters TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS urls (
    job_id TEXT NOT NULL,
    url TEXT NOT NULL,
    depth INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    PRIMARY KEY (job_id, url)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS urls_state ON urls(job_id, state);
"""


@dataclass
class JobRow:
    id: str
    spec: CrawlSpec
    state: str
    created: float
    counters: dict[str, Any] = field(default_factory=dict)


class FrontierStore:
    def __init__(self, path: str | Path, health: Health | None = None) -> None:
        self._db = SqliteThread(path, _SCHEMA, "crawl-store", health)

    # -- jobs --------------------------------------------------------------------

    async def create_job(self, spec: CrawlSpec, job_id: str | None = None) -> str:
        jid = job_id or secrets.token_hex(6)
        spec_json = json.dumps(spec.to_dict())
        now = time.time()

        def do(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO jobs(id, spec, state, created, counters) VALUES (?,?,?,?,?)",
                (jid, spec_json, "running", now, "{}"),
            )

        await self._db.run(do)
        return jid

    @staticmethod
    def _job_row(r: tuple[Any, ...]) -> JobRow:
        return JobRow(
            id=r[0],
            spec=CrawlSpec.from_dict(json.loads(r[1])),
            state=r[2],
            created=r[3],
            counters=json.loads(r[4] or "{}"),
        )

    async def jobs(self) -> list[JobRow]:
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT id, spec, state, created, counters FROM jobs ORDER BY created"
            ).fetchall()
        )
        return [self._job_row(r) for r in rows]

    async def job(self, job_id: str) -> JobRow | None:
        row = await self._db.run(
            lambda c: c.execute(
                "SELECT id, spec, state, created, counters FROM jobs WHERE id=?", (job_id,)
            ).fetchone()
        )
        return self._job_row(row) if row else None

    async def set_job_state(
        self, job_id: str, state: str, counters: dict[str, Any] | None = None
    ) -> None:
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        if counters is None:
            await self._db.run(
                lambda c: c.execute("UPDATE jobs SET state=? WHERE id=?", (state, job_id))
            )
        else:
            blob = json.dumps(counters, default=str)
            await self._db.run(
                lambda c: c.execute(
                    "UPDATE jobs SET state=?, counters=? WHERE id=?", (state, blob, job_id)
                )
            )

    async def delete_job(self, job_id: str) -> None:
        def do(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM urls WHERE job_id=?", (job_id,))
            conn.execute("DELETE FROM jobs WHERE id=?", (job_id,))

        await self._db.tx(do)

    # -- urls --------------------------------------------------------------------

    async def add_urls(
        self, job_id: str, items: Iterable[tuple[str, int]]
    ) -> list[tuple[str, int]]:
        """Insert new URLs as queued; returns those that were not known before."""
        batch = list(items)
        if not batch:
            return []

        def do(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            new: list[tuple[str, int]] = []
            for url, depth in batch:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO urls(job_id, url, depth, state) VALUES (?,?,?,'queued')",
                    (job_id, url, depth),
                )
                if cur.rowcount:
                    new.append((url, depth))
            return new

        return await self._db.tx(do)

    async def add_alias(self, job_id: str, url: str, depth: int, of_url: str) -> None:
        """Record that ``url`` (a canonical link or redirect target) was fetched as ``of_url``.

        A still-queued row is taken over, so a resumed crawl does not fetch the
        same document again under its canonical name.
        """
        reason = ALIAS_PREFIX + of_url

        def do(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO urls(job_id, url, depth, state, reason) VALUES (?,?,?,'skipped',?) "
                "ON CONFLICT(job_id, url) DO UPDATE SET state='skipped', reason=excluded.reason "
                "WHERE urls.state='queued'",
                (job_id, url, depth, reason),
            )

        await self._db.run(do)

    async def mark(self, job_id: str, items: Iterable[tuple[str, str, str | None]]) -> None:
        """Set the state of URLs. A 'done' row is never downgraded to 'fetched'.

        (The caller marks 'done' after its index commit; if that races with the
        crawler's own 'fetched' mark, 'done' must win.)
        """
        batch = list(items)
        for _, state, _ in batch:
            if state not in URL_STATES:
                raise ValueError(f"unknown url state {state!r}")
        if not batch:
            return
        rows = [(state, reason, job_id, url, state) for url, state, reason in batch]

        def do(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE urls SET state=?, reason=? WHERE job_id=? AND url=? "
                "AND NOT (state='done' AND ?='fetched')",
                rows,
            )

        await self._db.tx(do)

    async def pending(self, job_id: str) -> list[tuple[str, int]]:
        """URLs still to (re)fetch: queued, or fetched but not confirmed indexed."""
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT url, depth FROM urls WHERE job_id=? AND state IN ('queued','fetched') "
                "ORDER BY depth",
                (job_id,),
            ).fetchall()
        )
        return [(u, d) for u, d in rows]

    async def seen_urls(self, job_id: str) -> set[str]:
        rows = await self._db.run(
            lambda c: c.execute("SELECT url FROM urls WHERE job_id=?", (job_id,)).fetchall()
        )
        return {r[0] for r in rows}

    async def completed_urls(self, job_id: str) -> set[str]:
        """URLs whose document is indexed: 'done' rows and aliases of 'done' rows."""
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT url FROM urls WHERE job_id=?1 AND state='done' "
                "UNION SELECT a.url FROM urls a JOIN urls d ON d.job_id=a.job_id "
                "AND d.url=substr(a.reason, ?2) AND d.state='done' "
                "WHERE a.job_id=?1 AND a.state='skipped' AND a.reason LIKE ?3",
                (job_id, len(ALIAS_PREFIX) + 1, ALIAS_PREFIX + "%"),
            ).fetchall()
        )
        return {r[0] for r in rows}

    async def url_states(self, job_id: str) -> dict[str, tuple[str, str | None]]:
        """Every URL of a job with its (state, reason): for inspection and tests."""
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT url, state, reason FROM urls WHERE job_id=?", (job_id,)
            ).fetchall()
        )
        return {u: (s, r) for u, s, r in rows}

    async def url_counts(self, job_id: str) -> dict[str, int]:
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT state, count(*) FROM urls WHERE job_id=? GROUP BY state", (job_id,)
            ).fetchall()
        )
        return {s: n for s, n in rows}

    async def close(self) -> None:
        await self._db.close()
