"""Reads of the shard store: what a responsible peer answers and what handoff and status need.

* ``df(terms)``: exact document frequency (we hold *all* postings of our terms);
* ``top(term, m)``: the ``m`` postings with the highest static *impact*, so a
  frequent term never ships its whole posting list (an index range scan on
  ``(term, impact DESC, doc_id)`` that stops after M rows);
* ``postings_for(term, doc_ids)``: exact lookups for a candidate set (AND queries);
* ``docs(doc_ids)``: result rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from yasearch.records import DocRecord, Posting
from yasearch.shard.schema import StoreBase, chunks
from yasearch.wire import WireRecord


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
            for chunk in chunks(ids):
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
                    "SELECT doc_id, url, title, description, language, length, crawled_at, host, origin, "
                    f"pubkey, sig FROM docs WHERE doc_id IN ({marks})",
                    chunk,
                ):
                    out[r[0]] = WireRecord(*r)
            return out

        return await self._run(q) if ids else {}

    async def held_batches(self, terms: list[str]) -> dict[int, list[tuple[str, str]]]:
        """The signed batches the postings of ``terms`` came from: batch id -> the
        (term, doc_id) pairs of ``terms`` still held from it (handoff)."""

        def q(conn: sqlite3.Connection) -> dict[int, list[tuple[str, str]]]:
            out: dict[int, list[tuple[str, str]]] = {}
            for chunk in chunks(terms):
                marks = ",".join("?" * len(chunk))
                for b, t, d in conn.execute(
                    f"SELECT batch, term, doc_id FROM postings WHERE term IN ({marks}) AND batch IS NOT NULL", chunk
                ):
                    out.setdefault(b, []).append((t, d))
            return out

        return await self._run(q) if terms else {}

    async def batch_body(self, batch_id: int) -> bytes | None:
        """The compressed body of one signed batch (see :meth:`held_batches`)."""
        row = await self._run(lambda c: c.execute("SELECT body FROM batches WHERE id=?", (batch_id,)).fetchone())
        return row[0] if row else None

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
