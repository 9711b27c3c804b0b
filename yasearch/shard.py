"""The shard store: the postings this peer holds for the network (SQLite, WAL).

Other peers publish to us the postings of the terms whose DHT keys are close to our
node ID, together with the records of the documents those postings name. This store
keeps them on disk so a restarted peer keeps its share of the global index, and
answers what the query path needs from a responsible peer:

* ``df(terms)``: exact document frequency (we hold *all* postings of our terms);
* ``top(term, m)``: the ``m`` postings with the highest static *impact*, so a
  frequent term never ships its whole posting list;
* ``postings_for(term, doc_ids)``: exact lookups for a candidate set (AND queries);
* ``docs(doc_ids)``: result rows.

Design points, each because of a failure it prevents:

* **One writer thread.** SQLite connections must not be shared between threads and
  a commit must not stall the event loop, so every statement runs on one dedicated
  worker thread (same house style as :mod:`crawler.state`).
* **Every batch is one transaction** (``BEGIN IMMEDIATE`` ... ``COMMIT``), and the
  whole batch is validated before the transaction starts. A malformed entry raises
  ``ValueError`` and nothing is written; a ``kill -9`` mid-batch leaves either the
  whole batch or none of it (WAL + synchronous=NORMAL is durable against process
  death, not power loss, without an fsync per batch).
* **Per-origin quotas** so one peer cannot flood another. The per-origin posting
  counts live in their own table, updated in the same transaction as the postings,
  so the quota check is O(1) instead of a ``count(*)`` over millions of rows, and it
  can never drift from the postings after a crash. Re-upserting a posting an origin
  already holds does not count twice; refused postings are counted and reported.
* **Impact-ordered index.** ``(term, impact DESC, doc_id)`` makes a top-M read an
  index range scan that stops after M rows.
* **Expiry.** Origins republish periodically; a posting not refreshed within
  ``max_age`` belongs to a peer that left or a page that was dropped, and goes.

Origin semantics: a posting is keyed by ``(term, doc_id)`` only, so when two peers
crawled the same URL the last writer wins and the posting moves to that origin's
quota. ``withdraw`` only removes postings that the withdrawing origin holds: one peer
cannot delete another's postings (the other's next republish would restore them
anyway, but it should not have to).

Schema deviation from the first sketch: the secondary index is ``(doc_id, origin)``
rather than ``(origin, doc_id)``. Both serve "this origin's postings of this
document" (withdrawal), but only ``doc_id`` first serves "does any posting still
name this document?", which withdrawal, ``put_docs`` and orphan expiry all ask; the
per-origin counts that the quota needs come from the ``origins`` table instead.
"""

from __future__ import annotations

import logging
import math
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from yasearch.analysis import MAX_TERM_CHARS
from yasearch.ranking import B, DEFAULT_WEIGHTS, K1
from yasearch.records import DocRecord, Posting
from yasearch.sqlitedb import SqliteThread

log = logging.getLogger(__name__)

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

# Bounds of what we accept. Generous for honest peers, small enough that a hostile
# one cannot make a single row huge.
MAX_ORIGIN_CHARS = 64
MAX_TF = 10_000_000
MAX_FLAGS = 0xFF
MAX_LENGTH = 100_000_000
MAX_URL_CHARS = 2048
MAX_TITLE_CHARS = 1024
MAX_DESCRIPTION_CHARS = 4096
MAX_LANGUAGE_CHARS = 32
MAX_HOST_CHARS = 255

#: Parameters per ``IN (...)`` query; well below SQLite's variable limit everywhere.
_CHUNK = 500

_DOC_ID = re.compile(r"[0-9a-f]{40}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS postings (
    term TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    tf INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    length INTEGER NOT NULL,
    impact REAL NOT NULL,
    updated REAL NOT NULL,
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
    updated REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS origins (
    origin TEXT PRIMARY KEY,
    postings INTEGER NOT NULL
) WITHOUT ROWID;
"""


def impact(p: Posting) -> float:
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
    refused_quota: int  # not stored because the origin is at its quota
    created: int = 0  # of ``accepted``, how many were new (term, doc_id) pairs


# -- validation -------------------------------------------------------------------


def _is_int(v: object) -> bool:
    # bool is an int subclass; True as a term frequency is type confusion.
    return isinstance(v, int) and not isinstance(v, bool)


def _check_origin(origin: object) -> str:
    if not isinstance(origin, str) or not origin or len(origin) > MAX_ORIGIN_CHARS:
        raise ValueError(f"origin must be a non-empty string of at most {MAX_ORIGIN_CHARS} chars")
    return origin


def _check_doc_id(doc_id: object, where: str = "") -> str:
    if not isinstance(doc_id, str) or not _DOC_ID.fullmatch(doc_id):
        raise ValueError(f"{where}doc_id must be 40 lowercase hex chars, got {doc_id!r:.60}")
    return doc_id


def _check_term(term: object, where: str = "") -> str:
    if not isinstance(term, str) or not term or len(term) > MAX_TERM_CHARS:
        raise ValueError(
            f"{where}term must be a non-empty string of at most {MAX_TERM_CHARS} chars, "
            f"got {term!r:.80}"
        )
    return term


def _check_int(name: str, v: object, hi: int, where: str = "") -> int:
    if not _is_int(v) or not 0 <= v <= hi:  # type: ignore[operator]
        raise ValueError(f"{where}{name} must be an int in [0, {hi}], got {v!r:.40}")
    return v  # type: ignore[return-value]


def _check_time(name: str, v: object) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {v!r:.40}")
    return float(v)


def _check_str(name: str, v: object, hi: int, where: str = "") -> str:
    if not isinstance(v, str) or len(v) > hi:
        raise ValueError(f"{where}{name} must be a string of at most {hi} chars")
    return v


def _check_posting(i: int, entry: object) -> tuple[str, Posting]:
    where = f"posting #{i}: "
    if not isinstance(entry, tuple) or len(entry) != 2 or not isinstance(entry[1], Posting):
        raise ValueError(f"{where}expected a (term, Posting) tuple")
    term, p = entry
    _check_term(term, where)
    _check_doc_id(p.doc_id, where)
    _check_int("tf", p.tf, MAX_TF, where)
    _check_int("flags", p.flags, MAX_FLAGS, where)
    _check_int("length", p.length, MAX_LENGTH, where)
    return term, p


def _check_record(i: int, r: object) -> DocRecord:
    where = f"record #{i}: "
    if not isinstance(r, DocRecord):
        raise ValueError(f"{where}expected a DocRecord")
    _check_doc_id(r.doc_id, where)
    _check_str("url", r.url, MAX_URL_CHARS, where)
    if not r.url:
        raise ValueError(f"{where}url must not be empty")
    _check_str("title", r.title, MAX_TITLE_CHARS, where)
    _check_str("description", r.description, MAX_DESCRIPTION_CHARS, where)
    _check_str("language", r.language, MAX_LANGUAGE_CHARS, where)
    _check_str("host", r.host, MAX_HOST_CHARS, where)
    _check_int("length", r.length, MAX_LENGTH, where)
    _check_time(f"{where}crawled_at", r.crawled_at)
    return r


def _chunks(items: list[Any], n: int = _CHUNK) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


# -- the store --------------------------------------------------------------------


class ShardStore:
    """Postings and document records held for the network, on disk.

    Use ``await open()`` before anything else and ``await close()`` at shutdown. All
    methods are coroutines that run their SQL on the store's single worker thread.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        quota_per_origin: int = DEFAULT_QUOTA_PER_ORIGIN,
        max_age: float = DEFAULT_MAX_AGE,
    ) -> None:
        if quota_per_origin < 0:
            raise ValueError("quota_per_origin must be >= 0")
        if max_age <= 0:
            raise ValueError("max_age must be > 0")
        self._sql = SqliteThread(path, _SCHEMA, "shard-store")
        self.quota_per_origin = quota_per_origin
        self.max_age = float(max_age)

    # -- plumbing ----------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._sql.run(fn)

    async def _tx(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in one write transaction: all of it is committed or none."""
        return await self._sql.tx(body)

    async def open(self) -> ShardStore:
        """Open (creating if needed) the database; returns self for chaining."""
        await self._run(lambda c: None)
        return self

    async def close(self) -> None:
        await self._sql.close()

    async def __aenter__(self) -> ShardStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writes ------------------------------------------------------------------

    async def upsert(
        self,
        origin: str,
        postings: list[tuple[str, Posting]],
        ts: float | None = None,
    ) -> UpsertResult:
        """Store postings from ``origin``, replacing any with the same (term, doc_id).

        The whole batch is validated first (``ValueError``, nothing written) and then
        written in one transaction. Entries are applied in order; once ``origin``
        holds ``quota_per_origin`` postings, further *new* postings are refused and
        counted, while updates of postings it already holds are still accepted
        (they do not grow its share). A posting taken over from another origin
        moves to this origin's count. ``ts`` (default now) is the freshness stamp
        that :meth:`expire` looks at.
        """
        _check_origin(origin)
        batch = [_check_posting(i, e) for i, e in enumerate(postings)]
        updated = time.time() if ts is None else _check_time("ts", ts)
        quota = self.quota_per_origin

        def body(conn: sqlite3.Connection) -> UpsertResult:
            counts: dict[str, int] = {}

            def count(o: str) -> int:
                if o not in counts:
                    counts[o] = self._held(conn, o)
                return counts[o]

            accepted = refused = created = 0
            for term, p in batch:
                row = conn.execute(
                    "SELECT origin FROM postings WHERE term=? AND doc_id=?", (term, p.doc_id)
                ).fetchone()
                prev = row[0] if row else None
                if prev != origin:
                    if count(origin) >= quota:
                        refused += 1
                        continue
                    counts[origin] += 1
                    if prev is None:
                        created += 1
                    else:
                        counts[prev] = count(prev) - 1
                conn.execute(
                    "INSERT INTO postings(term, doc_id, origin, tf, flags, length, impact, "
                    "updated) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(term, doc_id) DO UPDATE SET "
                    "origin=excluded.origin, tf=excluded.tf, flags=excluded.flags, "
                    "length=excluded.length, impact=excluded.impact, updated=excluded.updated",
                    (term, p.doc_id, origin, p.tf, p.flags, p.length, impact(p), updated),
                )
                accepted += 1
            self._save_counts(conn, counts)
            return UpsertResult(accepted=accepted, refused_quota=refused, created=created)

        if not batch:
            return UpsertResult(0, 0, 0)
        return await self._tx(body)

    @staticmethod
    def _held(conn: sqlite3.Connection, origin: str) -> int:
        """Postings ``origin`` holds, from the counts table (inside a transaction)."""
        row = conn.execute("SELECT postings FROM origins WHERE origin=?", (origin,)).fetchone()
        return row[0] if row else 0

    @staticmethod
    def _save_counts(conn: sqlite3.Connection, counts: dict[str, int]) -> None:
        for o, n in counts.items():
            if n > 0:
                conn.execute(
                    "INSERT INTO origins(origin, postings) VALUES (?,?) "
                    "ON CONFLICT(origin) DO UPDATE SET postings=excluded.postings",
                    (o, n),
                )
            else:
                conn.execute("DELETE FROM origins WHERE origin=?", (o,))

    async def put_docs(
        self, origin: str, records: list[DocRecord], ts: float | None = None
    ) -> int:
        """Store document records sent by ``origin``; returns how many were stored.

        Only records of documents that some posting here names are kept: records
        follow postings (the YaCy exchange: postings, then :meth:`missing_docs`, then
        the missing records), and refusing orphans means records cannot be used to
        get around the posting quota. The stored ``origin`` is the sender, not the
        record's own ``origin`` field, so a peer cannot attribute pages to another.
        Validation is all-or-nothing like :meth:`upsert`.
        """
        _check_origin(origin)
        batch = [_check_record(i, r) for i, r in enumerate(records)]
        updated = time.time() if ts is None else _check_time("ts", ts)

        def body(conn: sqlite3.Connection) -> int:
            stored = 0
            for r in batch:
                if conn.execute(
                    "SELECT 1 FROM postings WHERE doc_id=? LIMIT 1", (r.doc_id,)
                ).fetchone() is None:
                    continue
                conn.execute(
                    "INSERT OR REPLACE INTO docs(doc_id, url, title, description, language, "
                    "length, crawled_at, origin, host, updated) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        r.doc_id, r.url, r.title, r.description, r.language,
                        r.length, float(r.crawled_at), origin, r.host, updated,
                    ),
                )
                stored += 1
            return stored

        if not batch:
            return 0
        return await self._tx(body)

    async def withdraw(
        self,
        origin: str,
        doc_ids: Iterable[str],
        keep_terms: dict[str, set[str]] | None = None,
        only_terms: dict[str, set[str]] | None = None,
    ) -> int:
        """Remove ``origin``'s postings of the given documents; returns how many went.

        With ``only_terms[doc_id]`` given, only the postings of those terms go (the
        origin withdraws the terms a re-crawled page lost, from each term's holders).

        With ``keep_terms[doc_id]`` given, the postings of those terms stay (a
        re-crawl: the origin sends the document's current terms, and every term it
        no longer contains stops matching). A document record goes when no posting
        (of any origin) names the document any more. One transaction.
        """
        _check_origin(origin)
        ids = list(dict.fromkeys(_check_doc_id(d) for d in doc_ids))
        keep = keep_terms or {}
        only = only_terms or {}
        for d, terms in list(keep.items()) + list(only.items()):
            _check_doc_id(d, "keep_terms: ")
            if not all(isinstance(t, str) for t in terms):
                raise ValueError("keep_terms values must be sets of strings")

        def body(conn: sqlite3.Connection) -> int:
            removed = 0
            for d in ids:
                held = [
                    r[0]
                    for r in conn.execute(
                        "SELECT term FROM postings WHERE doc_id=? AND origin=?", (d, origin)
                    )
                ]
                kept = keep.get(d, set())
                if d in only:
                    gone = [(t, d) for t in held if t in only[d]]
                else:
                    gone = [(t, d) for t in held if t not in kept]
                if gone:
                    conn.executemany("DELETE FROM postings WHERE term=? AND doc_id=?", gone)
                    removed += len(gone)
                conn.execute(
                    "DELETE FROM docs WHERE doc_id=?1 AND NOT EXISTS "
                    "(SELECT 1 FROM postings WHERE doc_id=?1)",
                    (d,),
                )
            if removed:
                self._save_counts(conn, {origin: self._held(conn, origin) - removed})
            return removed

        if not ids:
            return 0
        return await self._tx(body)

    async def expire(self, now: float | None = None) -> int:
        """Delete postings not refreshed within ``max_age`` and records left orphaned.

        Returns the number of postings deleted. Origins republish what they still
        hold, so anything older belongs to a peer that left or a page it dropped.
        """
        cutoff = (time.time() if now is None else now) - self.max_age

        def body(conn: sqlite3.Connection) -> int:
            per_origin = conn.execute(
                "SELECT origin, count(*) FROM postings WHERE updated < ? GROUP BY origin", (cutoff,)
            ).fetchall()
            total = sum(n for _, n in per_origin)
            if total:
                conn.execute("DELETE FROM postings WHERE updated < ?", (cutoff,))
                counts: dict[str, int] = {}
                for o, n in per_origin:
                    counts[o] = self._held(conn, o) - n
                self._save_counts(conn, counts)
            conn.execute(
                "DELETE FROM docs WHERE NOT EXISTS "
                "(SELECT 1 FROM postings p WHERE p.doc_id = docs.doc_id)"
            )
            return total

        return await self._tx(body)

    # -- reads -------------------------------------------------------------------

    async def missing_docs(self, doc_ids: Iterable[str]) -> list[str]:
        """Those of ``doc_ids`` we hold no record for (input order, no duplicates).

        The receiving half of the YaCy exchange: the publisher sends postings, we
        answer which records we lack, and only those travel.
        """
        ids = list(dict.fromkeys(doc_ids))

        def q(conn: sqlite3.Connection) -> list[str]:
            have: set[str] = set()
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT doc_id FROM docs WHERE doc_id IN ({marks})"
                have.update(r[0] for r in conn.execute(sql, chunk))
            return [d for d in ids if d not in have]

        return await self._run(q) if ids else []

    async def df(self, terms: Iterable[str]) -> dict[str, int]:
        """Document frequency of each term (0 for terms we hold nothing for)."""
        wanted = list(dict.fromkeys(terms))

        def q(conn: sqlite3.Connection) -> dict[str, int]:
            return {
                t: conn.execute("SELECT count(*) FROM postings WHERE term=?", (t,)).fetchone()[0]
                for t in wanted
            }

        return await self._run(q) if wanted else {}

    async def top(self, term: str, m: int) -> list[Posting]:
        """The ``m`` postings of ``term`` with the highest impact (ties: doc_id asc)."""
        if m <= 0:
            return []
        rows = await self._run(
            lambda c: c.execute(
                "SELECT doc_id, tf, flags, length FROM postings WHERE term=? "
                "ORDER BY impact DESC, doc_id LIMIT ?",
                (term, m),
            ).fetchall()
        )
        return [Posting(doc_id=d, tf=tf, flags=f, length=n) for d, tf, f, n in rows]

    async def postings_of_term(self, term: str) -> list[tuple[str, Posting]]:
        """Every posting of ``term`` with its origin (handoff to a newly responsible peer)."""
        rows = await self._run(
            lambda c: c.execute(
                "SELECT origin, doc_id, tf, flags, length FROM postings WHERE term=? ORDER BY doc_id", (term,)
            ).fetchall()
        )
        return [(o, Posting(doc_id=d, tf=tf, flags=f, length=n)) for o, d, tf, f, n in rows]

    async def postings_for(self, term: str, doc_ids: Iterable[str]) -> list[Posting]:
        """Postings of ``term`` in exactly these documents (those that exist), by doc_id.

        For AND queries: the querying peer sends a candidate set from a rarer term
        and gets back only the matching postings of the frequent one.
        """
        ids = list(dict.fromkeys(doc_ids))

        def q(conn: sqlite3.Connection) -> list[Posting]:
            out: list[Posting] = []
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                out.extend(
                    Posting(doc_id=d, tf=tf, flags=f, length=n)
                    for d, tf, f, n in conn.execute(
                        f"SELECT doc_id, tf, flags, length FROM postings "
                        f"WHERE term=? AND doc_id IN ({marks})",
                        [term, *chunk],
                    )
                )
            out.sort(key=lambda p: p.doc_id)
            return out

        return await self._run(q) if ids else []

    async def docs(self, doc_ids: Iterable[str]) -> dict[str, DocRecord]:
        """Records of the given documents that we hold, by doc_id."""
        ids = list(dict.fromkeys(doc_ids))

        def q(conn: sqlite3.Connection) -> dict[str, DocRecord]:
            out: dict[str, DocRecord] = {}
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                for r in conn.execute(
                    "SELECT doc_id, url, title, description, language, length, crawled_at, "
                    f"origin, host FROM docs WHERE doc_id IN ({marks})",
                    chunk,
                ):
                    out[r[0]] = DocRecord(
                        doc_id=r[0], url=r[1], title=r[2], description=r[3], language=r[4],
                        length=r[5], crawled_at=r[6], origin=r[7], host=r[8],
                    )
            return out

        return await self._run(q) if ids else {}

    async def origin_count(self, origin: str) -> int:
        """Postings ``origin`` holds here (what its quota is measured against)."""
        return await self._run(lambda c: self._held(c, origin))

    async def totals(self) -> dict[str, int]:
        """Postings and records held, cheaply (for status calls every few seconds)."""

        def q(conn: sqlite3.Connection) -> dict[str, int]:
            postings = conn.execute("SELECT coalesce(sum(postings), 0) FROM origins").fetchone()[0]
            return {"postings": int(postings), "docs": conn.execute("SELECT count(*) FROM docs").fetchone()[0]}

        return await self._run(q)

    async def stats(self) -> dict[str, Any]:
        """Figures for status pages: postings, distinct terms, records, per origin.

        ``terms`` scans the primary key, O(postings); fine for a status call, not
        for a hot path.
        """

        def q(conn: sqlite3.Connection) -> dict[str, Any]:
            origins = {o: n for o, n in conn.execute("SELECT origin, postings FROM origins")}
            docs_by_origin = {
                o: n for o, n in conn.execute("SELECT origin, count(*) FROM docs GROUP BY origin")
            }
            return {
                "postings": sum(origins.values()),
                "terms": conn.execute("SELECT count(DISTINCT term) FROM postings").fetchone()[0],
                "docs": conn.execute("SELECT count(*) FROM docs").fetchone()[0],
                "origins": {
                    o: {"postings": origins.get(o, 0), "docs": docs_by_origin.get(o, 0)}
                    for o in sorted(set(origins) | set(docs_by_origin))
                },
                "quota_per_origin": self.quota_per_origin,
            }

        return await self._run(q)

    async def terms(self, after: str = "", limit: int = 1000) -> list[tuple[str, int]]:
        """Distinct terms greater than ``after`` in term order, with their df.

        Page through with ``after`` = the last term returned. The handoff uses it to
        find the terms whose keys a newly joined peer is now closer to, without
        reading the postings of terms that stay.
        """
        if limit <= 0:
            return []
        return await self._run(
            lambda c: [
                (t, n)
                for t, n in c.execute(
                    "SELECT term, count(*) FROM postings WHERE term > ? "
                    "GROUP BY term ORDER BY term LIMIT ?",
                    (after, limit),
                )
            ]
        )

    async def all_postings(
        self,
        batch: int = 1000,
        *,
        term_filter: Callable[[str], bool] | None = None,
        origin: str | None = None,
    ) -> AsyncIterator[tuple[str, str, Posting]]:
        """Every posting as ``(term, origin, Posting)``, in (term, doc_id) order.

        For handoff and republish. Reads ``batch`` rows per round trip with keyset
        pagination, so no read transaction stays open across ``await`` and writes
        interleave; rows written meanwhile may or may not be seen. ``term_filter``
        and ``origin`` narrow what is yielded.
        """
        if batch <= 0:
            raise ValueError("batch must be > 0")
        last = ("", "")
        while True:
            rows = await self._run(
                lambda c, last=last: c.execute(
                    "SELECT term, doc_id, origin, tf, flags, length FROM postings "
                    "WHERE (term, doc_id) > (?, ?) ORDER BY term, doc_id LIMIT ?",
                    (last[0], last[1], batch),
                ).fetchall()
            )
            if not rows:
                return
            for term, d, o, tf, f, n in rows:
                if origin is not None and o != origin:
                    continue
                if term_filter is not None and not term_filter(term):
                    continue
                yield term, o, Posting(doc_id=d, tf=tf, flags=f, length=n)
            last = (rows[-1][0], rows[-1][1])
            if len(rows) < batch:
                return
