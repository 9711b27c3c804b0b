"""The shard store's tables, its impact score, and the plumbing reads and writes share.

Schema deviation from the first sketch: the secondary index is ``(doc_id, origin)``
rather than ``(origin, doc_id)``. Both serve "this origin's postings of this
document" (withdrawal), but only ``doc_id`` first serves "does any posting still
name this document?", which withdrawal, ``put_docs`` and orphan expiry all ask; the
per-origin counts that the quota needs come from the ``origins`` table instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from yasearch.ranking import B, DEFAULT_WEIGHTS, K1
from yasearch.records import DocRecord, Posting
from yasearch.crawler.sqlite import Health, SqliteThread
from yasearch.shard import quotas
from yasearch.shard.quotas import Caps
from yasearch.wire import WirePosting, WireRecord

T = TypeVar("T")

#: Average document length (analyzed tokens) assumed by the stored impact score.
#: The true network-wide average is only known at query time and changes as peers
#: join, but impact is written once per posting, so it uses a fixed estimate. It only
#: decides which postings a top-M read returns first (the final score is computed
#: by :func:`yasearch.ranking.bm25_scores` with the real average), so a wrong
#: estimate costs a little recall at the edge of M, never a wrong score. 500 tokens is
#: the order of magnitude of a typical web page's analyzed text.
IMPACT_AVG_LENGTH = 500.0

DEFAULT_QUOTA_PER_ORIGIN = 2_000_000
DEFAULT_MAX_AGE = 3 * 24 * 3600.0

#: Parameters per ``IN (...)`` query; well below SQLite's variable limit everywhere.
_CHUNK = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS postings (
    term TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    tf INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    length INTEGER NOT NULL,
    impact REAL NOT NULL,
    updated REAL NOT NULL,
    signed REAL NOT NULL DEFAULT 0,
    batch INTEGER,
    PRIMARY KEY (term, doc_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_impact ON postings(term, impact DESC, doc_id);
CREATE INDEX IF NOT EXISTS postings_doc ON postings(doc_id, origin);
CREATE TABLE IF NOT EXISTS docs (
    doc_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    language TEXT NOT NULL,
    length INTEGER NOT NULL,
    crawled_at REAL NOT NULL,
    origin TEXT NOT NULL,
    host TEXT NOT NULL,
    updated REAL NOT NULL,
    pubkey TEXT NOT NULL DEFAULT '',
    sig TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS origins (
    origin TEXT PRIMARY KEY,
    postings INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    body BLOB NOT NULL
);
"""


def migrate(conn: sqlite3.Connection) -> None:
    """A store from before signed postings (protocol 1) holds nothing anyone can
    verify: it is emptied once, and the origins' republishing fills it again."""
    if "signed" not in {r[1] for r in conn.execute("PRAGMA table_info(postings)")}:
        conn.executescript("DROP TABLE postings; DROP TABLE docs; DROP TABLE origins;" + SCHEMA)


#: A posting to store: one from this peer's own code or one decoded from a message.
PostingLike = Posting | WirePosting
#: A record to store (its ``origin`` is not read: the sender's is stored).
RecordLike = DocRecord | WireRecord


def impact(p: PostingLike) -> float:
    """Static score that orders a term's postings for top-M reads.

    The BM25 tf-part with the same field boosts and parameters as
    :func:`yasearch.ranking.bm25_scores` (imported, so the two cannot drift), and
    :data:`IMPACT_AVG_LENGTH` standing in for the average length. idf is left out:
    it is the same for every posting of a term, so it cannot change their order.
    """
    wtf = p.tf + DEFAULT_WEIGHTS.boost(p.flags)
    if wtf <= 0:
        return 0.0
    norm = 1.0 - B + B * (p.length / IMPACT_AVG_LENGTH)
    return (wtf * (K1 + 1.0)) / (wtf + K1 * norm)


@dataclass(frozen=True)
class UpsertResult:
    """What happened to one upsert batch."""

    accepted: int  # stored (new or updated)
    refused_quota: int  # not stored: the origin, its source address or the whole store is at its cap
    created: int = 0  # of ``accepted``, how many were new (term, doc_id) pairs
    refused_full: int = 0  # of ``refused_quota``, how many because the store is at ``max_postings``
    refused_owner: int = 0  # not stored: another origin holds that (term, doc_id)


def chunks(items: list[Any], n: int = _CHUNK) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class StoreBase:
    """The database on its worker thread, the store's settings, the per-origin counts."""

    def __init__(
        self,
        path: str | Path,
        *,
        quota_per_origin: int = DEFAULT_QUOTA_PER_ORIGIN,
        max_age: float = DEFAULT_MAX_AGE,
        caps: Caps | None = None,
        health: Health | None = None,
    ) -> None:
        if quota_per_origin < 0:
            raise ValueError("quota_per_origin must be >= 0")
        if max_age <= 0:
            raise ValueError("max_age must be > 0")
        self._sql = SqliteThread(path, SCHEMA + quotas.SCHEMA, "shard-store", health)
        self.quota_per_origin = quota_per_origin
        self.max_age = float(max_age)
        #: The global cap and the per-source quota (:mod:`.quotas`).
        self.caps = caps or Caps()
        #: Postings held (cached sum of the origins table; None = read it again).
        self._total: int | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._sql.run(fn)

    async def _tx(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in one write transaction: all of it is committed or none."""
        try:
            return await self._sql.tx(body)
        except BaseException:
            self._total = None  # the body may have counted what was rolled back
            raise

    def _total_held(self, conn: sqlite3.Connection) -> int:
        if self._total is None:
            self._total = quotas.total_postings(conn)
        return self._total

    @staticmethod
    def _held(conn: sqlite3.Connection, origin: str) -> int:
        """Postings ``origin`` holds, from the counts table (inside a transaction)."""
        row = conn.execute("SELECT postings FROM origins WHERE origin=?", (origin,)).fetchone()
        return row[0] if row else 0
