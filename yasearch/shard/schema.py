"""The shard store's tables, its impact score, and the plumbing reads and writes share.

Schema (version 3, ``PRAGMA user_version``), built so a held posting costs about 50
bytes of disk with every index (``python -m bench shard``; the text-keyed schema
before it cost ~300):

``postings(term, impact, doc, tf, flags, length, batch)``, primary key ``(term, impact DESC, doc)``, WITHOUT ROWID
    One row per held posting, integers only: ``term`` is ``terms.id``, ``doc`` is
    ``docs.id``, ``impact`` is :func:`impact` times :data:`IMPACT_SCALE`, rounded
    (a small integer), ``batch`` is ``batches.id`` (the upsert that stored it). The
    posting's origin, signing time and freshness are its batch's. The table is
    stored in its primary key's order, so a term's postings lie together in impact
    order: a top-M read is one range scan that stops after M rows. To iterate a
    term's postings in impact order as ``(doc_id, tf, flags, length)``::

        SELECT d.key, p.tf, p.flags, p.length FROM postings p JOIN docs d ON d.id = p.doc
        WHERE p.term = (SELECT id FROM terms WHERE term = ?) ORDER BY p.impact DESC

    (``d.key`` is the 20-byte id: ``.hex()`` it; see :func:`doc_key` / :func:`doc_hex`).
    A changed impact moves the row (delete + insert), done by :mod:`.writes`.
``postings_doc`` on ``postings(doc, term)`` (UNIQUE; SQLite appends ``impact``)
    A document's postings (withdrawal, records) and exact (doc, term) lookups
    (upsert, ``postings_for``: ``INDEXED BY postings_doc``).
``terms(id, term UNIQUE, df)``
    The term dictionary. ``df`` is the term's held postings, kept in the same
    transaction as the postings, so df is one index read
    (``SELECT df FROM terms WHERE term = ?``). A term goes when its df reaches 0.
``docs(id, key UNIQUE)``
    One row per document any held posting names: ``key`` is the 20-byte document
    id. Narrow, so the ``docs.id -> key`` lookups of a top-M read stay in few pages.
    The row goes with the document's last posting, and its record with it.
``records(id, url, title, description, language, length, crawled_at, signer, host, sig)``
    The document's record once it arrived (``id`` is ``docs.id``). ``signer`` is
    ``signers.id`` (the record's origin and public key, stored once per origin).
``signers(id, origin, pubkey)``
    The origins (20 bytes) and public keys (32 bytes) of the records held; rows no
    record names go at expiry.
``origins(id, origin UNIQUE, postings)``
    Every origin holding postings here and its count (the quota's O(1) check).
``batches(id, origin, signed, updated, live, hash UNIQUE, body)``
    One row per upsert: its origin (``origins.id``), the origin's signing time,
    the freshness stamp expiry reads, ``live`` = postings still held from it; with
    the origin's signed batch (``body``, :mod:`.batchcodec`, 5-8 bytes an entry)
    when it came signed, so handoff can forward what the origin signed. A batch
    goes when nothing is held from it.

``origin_sources`` and ``sources`` (:mod:`.quotas`) bind origins to addresses.

An older store (any version before 3) is not migrated: it is emptied on open,
with one warning line, and refilled by the origins' republishing and by other
holders' handoff (both already run on every membership change and periodically).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from yasearch.ranking import B, DEFAULT_WEIGHTS, K1
from yasearch.records import DocRecord, Posting
from yasearch.crawler.sqlite import Health, SqliteThread
from yasearch.shard import quotas
from yasearch.shard.batchcodec import hexbytes, unhex
from yasearch.shard.quotas import Caps
from yasearch.wire import WirePosting, WireRecord

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Average document length (analyzed tokens) assumed by the stored impact score.
#: The true network-wide average is only known at query time and changes as peers
#: join, but impact is written once per posting, so it uses a fixed estimate. It only
#: decides which postings a top-M read returns first (the final score is computed
#: by :func:`yasearch.ranking.bm25_scores` with the real average), so a wrong
#: estimate costs a little recall at the edge of M, never a wrong score. 500 tokens is
#: the order of magnitude of a typical web page's analyzed text.
IMPACT_AVG_LENGTH = 500.0

#: Stored impact = round(impact * IMPACT_SCALE): a 1-2 byte integer (impact < K1 + 1).
IMPACT_SCALE = 10_000

DEFAULT_QUOTA_PER_ORIGIN = 2_000_000
DEFAULT_MAX_AGE = 3 * 24 * 3600.0

#: Parameters per ``IN (...)`` query; well below SQLite's variable limit everywhere.
_CHUNK = 500

VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS terms (
    id INTEGER PRIMARY KEY,
    term TEXT NOT NULL UNIQUE,
    df INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS docs (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    language TEXT NOT NULL,
    length INTEGER NOT NULL,
    crawled_at REAL NOT NULL,
    signer INTEGER NOT NULL,
    host TEXT NOT NULL,
    sig BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS signers (
    id INTEGER PRIMARY KEY,
    origin BLOB NOT NULL,
    pubkey BLOB NOT NULL,
    UNIQUE (origin, pubkey)
);
CREATE TABLE IF NOT EXISTS origins (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL UNIQUE,
    postings INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    origin INTEGER NOT NULL,
    signed REAL NOT NULL,
    updated REAL NOT NULL,
    live INTEGER NOT NULL,
    hash BLOB UNIQUE,
    body BLOB
);
CREATE TABLE IF NOT EXISTS postings (
    term INTEGER NOT NULL,
    impact INTEGER NOT NULL,
    doc INTEGER NOT NULL,
    tf INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    length INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    PRIMARY KEY (term, impact DESC, doc)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS postings_doc ON postings(doc, term);
"""

_TABLES = ("postings", "docs", "records", "origins", "batches", "terms", "signers", "origin_sources", "sources")


def migrate(conn: sqlite3.Connection) -> None:
    """Create the tables; a store of an older schema is emptied first (one warning).

    Its postings are not converted: the origins' republishing and the other
    holders' handoff fill the store again (see the module docstring)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == VERSION:
        return
    if version > VERSION:
        where = conn.execute("PRAGMA database_list").fetchone()[2]
        raise RuntimeError(
            f"{where}: written by a newer yasearch (shard schema {version}, this one reads {VERSION}); "
            "run the newer version, or move the file away to start it anew (republish refills it)"
        )
    old = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")} & set(_TABLES)
    if old:
        log.warning(
            "shard store: schema %d is older than %d; starting it empty (republish and handoff refill it)",
            version, VERSION,
        )
        conn.executescript("".join(f"DROP TABLE IF EXISTS {t};" for t in _TABLES))
    conn.executescript(SCHEMA + quotas.SCHEMA + f"PRAGMA user_version={VERSION};")


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


def doc_key(doc_id: str) -> bytes | str:
    """A document id as ``docs.key``: its 20 bytes (an id that is not lowercase hex,
    which the p2p boundary never lets in, is kept as text)."""
    return hexbytes(doc_id)


def doc_hex(key: bytes | str) -> str:
    return unhex(key)


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
        # the tables are created by :func:`migrate` before the first statement (which may first
        # drop an older schema's), not by the connection: the old tables would clash with them
        self._sql = SqliteThread(path, "", "shard-store", health)
        self._migrated = False
        self.quota_per_origin = quota_per_origin
        self.max_age = float(max_age)
        #: The global cap and the per-source quota (:mod:`.quotas`).
        self.caps = caps or Caps()
        #: Postings held (cached sum of the origins table; None = read it again).
        self._total: int | None = None

    async def _ready(self) -> None:
        """The tables exist: :func:`migrate` has run (once, on the worker thread).

        Every statement waits for it, not only ``open()``: the HTTP side answers
        status calls before the peer has started (and opened this store)."""
        if self._migrated:
            return

        def once(conn: sqlite3.Connection) -> None:
            if not self._migrated:
                migrate(conn)
                self._migrated = True

        await self._sql.run(once)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        await self._ready()
        return await self._sql.run(fn)

    async def _tx(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in one write transaction: all of it is committed or none."""
        await self._ready()
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

    @staticmethod
    def _term_id(conn: sqlite3.Connection, term: str) -> int | None:
        row = conn.execute("SELECT id FROM terms WHERE term=?", (term,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def _doc_ids(conn: sqlite3.Connection, doc_ids: list[str]) -> dict[int, str]:
        """``docs.id -> doc_id`` of those of ``doc_ids`` that have a row."""
        out: dict[int, str] = {}
        for chunk in chunks(doc_ids):
            marks = ",".join("?" * len(chunk))
            for i, k in conn.execute(f"SELECT id, key FROM docs WHERE key IN ({marks})", [doc_key(d) for d in chunk]):
                out[i] = doc_hex(k)
        return out
