"""Reads of the shard store: what a responsible peer answers and what handoff and status need.

* ``df(terms)``: exact document frequency (we hold *all* postings of our terms),
  kept per term (``terms.df``);
* ``top(term, m)``: the ``m`` postings with the highest static *impact*, so a
  frequent term never ships its whole posting list (an index range scan on
  the postings primary key ``(term, impact DESC, doc)`` that stops after M rows);
* ``postings_for(term, doc_ids)``: exact lookups for a candidate set (AND queries);
* ``docs(doc_ids)``: result rows.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from yasearch.records import DocRecord, Posting
from yasearch.shard import batchcodec
from yasearch.shard.batchcodec import unhex
from yasearch.shard.schema import StoreBase, chunks, doc_hex, doc_key
from yasearch.wire import WireRecord, batch_body


class ShardReads(StoreBase):
    async def missing_docs(self, doc_ids: Iterable[str]) -> list[str]:
        """Those of ``doc_ids`` we hold no record for (input order, no duplicates).

        The receiving half of the YaCy exchange: the publisher sends postings, we
        answer which records we lack, and only those travel.
        """
        ids = list(dict.fromkeys(doc_ids))

        def q(conn: sqlite3.Connection) -> list[str]:
            have: set[str] = set()
            for chunk in chunks(ids):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT d.key FROM docs d JOIN records r ON r.id = d.id WHERE d.key IN ({marks})"
                have.update(doc_hex(r[0]) for r in conn.execute(sql, [doc_key(d) for d in chunk]))
            return [d for d in ids if d not in have]

        return await self._run(q) if ids else []

    async def df(self, terms: Iterable[str]) -> dict[str, int]:
        """Document frequency of each term (0 for terms we hold nothing for): one
        read of ``terms.df`` each."""
        wanted = list(dict.fromkeys(terms))

        def q(conn: sqlite3.Connection) -> dict[str, int]:
            out = {}
            for t in wanted:
                row = conn.execute("SELECT df FROM terms WHERE term=?", (t,)).fetchone()
                out[t] = row[0] if row else 0
            return out

        return await self._run(q) if wanted else {}

    async def top(self, term: str, m: int) -> list[Posting]:
        """The ``m`` postings of ``term`` with the highest impact (ties: doc_id asc).

        Impact is stored rounded (:data:`~.schema.IMPACT_SCALE`), so postings whose
        impacts differ by less than that are ties, ordered by doc_id."""
        if m <= 0:
            return []

        def q(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            tid = self._term_id(conn, term)
            if tid is None:
                return []
            # the primary key gives impact order; SQLite sorts only each run of equal impact by key
            return conn.execute(
                "SELECT d.key, p.tf, p.flags, p.length FROM postings p JOIN docs d ON d.id = p.doc "
                "WHERE p.term=? ORDER BY p.impact DESC, d.key LIMIT ?",
                (tid, m),
            ).fetchall()

        return [Posting(doc_id=doc_hex(k), tf=tf, flags=f, length=n) for k, tf, f, n in await self._run(q)]

    async def postings_of_term(self, term: str) -> list[tuple[str, Posting]]:
        """Every posting of ``term`` with its origin (handoff to a newly responsible peer)."""

        def q(conn: sqlite3.Connection) -> list[tuple[str, Posting]]:
            rows = conn.execute(
                f"SELECT o.origin, {_POSTING} FROM terms t JOIN postings p ON p.term = t.id {_JOINS} WHERE t.term=?",
                (term,),
            ).fetchall()
            out = [(o, Posting(doc_id=doc_hex(k), tf=tf, flags=f, length=n)) for o, k, tf, f, n in rows]
            out.sort(key=lambda x: x[1].doc_id)
            return out

        return await self._run(q)

    async def postings_for(self, term: str, doc_ids: Iterable[str]) -> list[Posting]:
        """Postings of ``term`` in exactly these documents (those that exist), by doc_id.

        For AND queries: the querying peer sends a candidate set from a rarer term
        and gets back only the matching postings of the frequent one.
        """
        ids = list(dict.fromkeys(doc_ids))

        def q(conn: sqlite3.Connection) -> list[Posting]:
            out: list[Posting] = []
            tid = self._term_id(conn, term)
            if tid is None:
                return out
            # (doc, term) lookups in postings_doc, then the row: SQLite would rather
            # scan the whole term (the primary key's prefix) when not told
            for chunk in chunks(ids):
                marks = ",".join("?" * len(chunk))
                out.extend(
                    Posting(doc_id=doc_hex(k), tf=tf, flags=f, length=n)
                    for k, tf, f, n in conn.execute(
                        "SELECT d.key, p.tf, p.flags, p.length FROM docs d JOIN postings p INDEXED BY postings_doc "
                        f"ON p.doc = d.id AND p.term = ? WHERE d.key IN ({marks})",
                        [tid, *(doc_key(d) for d in chunk)],
                    )
                )
            out.sort(key=lambda p: p.doc_id)
            return out

        return await self._run(q) if ids else []

    async def docs(self, doc_ids: Iterable[str]) -> dict[str, DocRecord]:
        """Records of the given documents that we hold, by doc_id."""
        return {d: r.to_record() for d, r in (await self.signed_docs(doc_ids)).items()}

    async def signed_docs(self, doc_ids: Iterable[str]) -> dict[str, WireRecord]:
        """Records of the given documents with their origins' signatures (for lookup
        replies, which searching peers check, and for handoff)."""
        ids = list(dict.fromkeys(doc_ids))

        def q(conn: sqlite3.Connection) -> dict[str, WireRecord]:
            out: dict[str, WireRecord] = {}
            for chunk in chunks(ids):
                marks = ",".join("?" * len(chunk))
                for r in conn.execute(
                    "SELECT d.key, r.url, r.title, r.description, r.language, r.length, r.crawled_at, r.host, "
                    "s.origin, s.pubkey, r.sig FROM docs d JOIN records r ON r.id = d.id "
                    f"JOIN signers s ON s.id = r.signer WHERE d.key IN ({marks})",
                    [doc_key(d) for d in chunk],
                ):
                    d = doc_hex(r[0])
                    out[d] = WireRecord(d, *r[1:8], unhex(r[8]), unhex(r[9]), unhex(r[10]))
            return out

        return await self._run(q) if ids else {}

    async def held_batches(self, terms: list[str]) -> dict[int, list[tuple[str, str]]]:
        """The signed batches the postings of ``terms`` came from: batch id -> the
        (term, doc_id) pairs of ``terms`` still held from it (handoff)."""

        def q(conn: sqlite3.Connection) -> dict[int, list[tuple[str, str]]]:
            out: dict[int, list[tuple[str, str]]] = {}
            for chunk in chunks(terms):
                marks = ",".join("?" * len(chunk))
                for b, t, k in conn.execute(
                    "SELECT p.batch, t.term, d.key FROM terms t JOIN postings p ON p.term = t.id "
                    "JOIN batches b ON b.id = p.batch JOIN docs d ON d.id = p.doc "
                    f"WHERE t.term IN ({marks}) AND b.body IS NOT NULL",
                    chunk,
                ):
                    out.setdefault(b, []).append((t, doc_hex(k)))
            return out

        return await self._run(q) if terms else {}

    async def batch_body(self, batch_id: int) -> bytes | None:
        """One signed batch (see :meth:`held_batches`) as zlib-compressed JSON, the
        origin's fields and signature exactly (:func:`yasearch.wire.batch_body`)."""
        row = await self._run(lambda c: c.execute("SELECT body FROM batches WHERE id=?", (batch_id,)).fetchone())
        if row is None or row[0] is None:
            return None
        return zlib.compress(batch_body(batchcodec.unpack(row[0])), 1)

    async def origin_count(self, origin: str) -> int:
        """Postings ``origin`` holds here (what its quota is measured against)."""
        return await self._run(lambda c: self._held(c, origin))

    async def totals(self) -> dict[str, int]:
        """Postings and records held, cheaply (for status calls every few seconds)."""

        def q(conn: sqlite3.Connection) -> dict[str, int]:
            postings = conn.execute("SELECT coalesce(sum(postings), 0) FROM origins").fetchone()[0]
            docs = conn.execute("SELECT count(*) FROM records").fetchone()[0]
            return {"postings": int(postings), "docs": docs}

        return await self._run(q)

    async def stats(self) -> dict[str, Any]:
        """Figures for status pages: postings, distinct terms, records, per origin."""

        def q(conn: sqlite3.Connection) -> dict[str, Any]:
            origins = {o: n for o, n in conn.execute("SELECT origin, postings FROM origins WHERE postings > 0")}
            docs_by_origin = {
                unhex(o): n
                for o, n in conn.execute(
                    "SELECT s.origin, count(*) FROM records r JOIN signers s ON s.id = r.signer GROUP BY s.origin"
                )
            }
            return {
                "postings": sum(origins.values()),
                "terms": conn.execute("SELECT count(*) FROM terms").fetchone()[0],
                "docs": sum(docs_by_origin.values()),
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
            lambda c: c.execute(
                "SELECT term, df FROM terms WHERE term > ? ORDER BY term LIMIT ?", (after, limit)
            ).fetchall()
        )

    async def all_postings(
        self,
        batch: int = 1000,
        *,
        term_filter: Callable[[str], bool] | None = None,
        origin: str | None = None,
    ) -> AsyncIterator[tuple[str, str, Posting]]:
        """Every posting as ``(term, origin, Posting)``, in (term, doc_id) order.

        Reads about ``batch`` rows per round trip (whole terms: a term's postings
        are sorted by doc_id in one read), so no read transaction stays open across
        ``await`` and writes interleave; rows written meanwhile may or may not be
        seen. ``term_filter`` and ``origin`` narrow what is yielded.
        """
        if batch <= 0:
            raise ValueError("batch must be > 0")
        after = ""
        while True:
            terms = await self.terms(after, batch)
            if not terms:
                return
            page: list[str] = []
            size = 0
            for t, n in terms:
                if page and size + n > batch:
                    break
                page.append(t)
                size += n
            after = page[-1]
            wanted = [t for t in page if term_filter is None or term_filter(t)]
            for t in wanted:
                for o, p in await self.postings_of_term(t):
                    if origin is None or o == origin:
                        yield t, o, p


#: A posting's columns and the joins that give its doc_id and origin (``p`` is ``postings``).
_POSTING = "d.key, p.tf, p.flags, p.length"
_JOINS = "JOIN docs d ON d.id = p.doc JOIN batches b ON b.id = p.batch JOIN origins o ON o.id = b.origin"
