"""Writes to the shard store: upsert with per-origin quotas, records, withdrawal, expiry.

Every batch is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``): a ``kill -9``
mid-batch leaves either the whole batch or none of it. The values are trusted:
they were validated once, where they entered this peer (:mod:`yasearch.wire`).
What this module guards is the store's own invariants: an origin's quota, the
per-origin counts (kept in the same transaction as the postings, so they never
drift), and that one origin cannot withdraw another's postings.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Iterable, Mapping, Sequence

from yasearch.shard import quotas
from yasearch.shard.schema import PostingLike, RecordLike, StoreBase, UpsertResult, impact


class ShardWrites(StoreBase):
    async def upsert(
        self,
        origin: str,
        postings: Sequence[tuple[str, PostingLike]],
        ts: float | None = None,
        *,
        source: str | None = None,
    ) -> UpsertResult:
        """Store postings from ``origin``, replacing any with the same (term, doc_id).

        The batch is written in one transaction. Its values were validated where
        they entered the peer (:mod:`yasearch.wire`); here only the quota is
        enforced. Entries are applied in order; once ``origin``
        holds ``quota_per_origin`` postings, further *new* postings are refused and
        counted, while updates of postings it already holds are still accepted
        (they do not grow its share). A posting taken over from another origin
        moves to this origin's count. ``ts`` (default now) is the freshness stamp
        that :meth:`expire` looks at.

        ``source`` is the sender's IP address (None: this peer itself). New
        postings are also refused once the store holds ``caps.max_postings`` and
        once the sender's address holds ``caps.quota_per_source`` (:mod:`.quotas`).
        """
        batch = list(postings)
        updated = time.time() if ts is None else ts
        quota = self.quota_per_origin
        caps = self.caps
        src = caps.source_key(source)

        def body(conn: sqlite3.Connection) -> UpsertResult:
            counts: dict[str, int] = {}

            def count(o: str) -> int:
                if o not in counts:
                    counts[o] = self._held(conn, o)
                return counts[o]

            accepted = refused = created = full = 0
            total = self._total_held(conn)
            if src is not None:
                quotas.bind(conn, origin, src, count(origin))
            src_held = quotas.source_held(conn, src) if src is not None else 0
            for term, p in batch:
                row = conn.execute(
                    "SELECT origin FROM postings WHERE term=? AND doc_id=?", (term, p.doc_id)
                ).fetchone()
                prev = row[0] if row else None
                if prev != origin:
                    if count(origin) >= quota or (src is not None and src_held >= caps.quota_per_source):
                        refused += 1
                        continue
                    if prev is None and total >= caps.max_postings:
                        refused += 1
                        full += 1
                        continue
                    counts[origin] += 1
                    src_held += 1
                    if prev is None:
                        created += 1
                        total += 1
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
            return UpsertResult(accepted=accepted, refused_quota=refused, created=created, refused_full=full)

        if not batch:
            return UpsertResult(0, 0, 0)
        return await self._tx(body)

    def _save_counts(self, conn: sqlite3.Connection, counts: dict[str, int]) -> None:
        changes = [(o, self._held(conn, o), n) for o, n in counts.items()]
        quotas.moved(conn, changes)
        if self._total is not None:
            self._total += sum(new - old for _o, old, new in changes)
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
        self, origin: str, records: Sequence[RecordLike], ts: float | None = None
    ) -> int:
        """Store document records sent by ``origin``; returns how many were stored.

        Only records of documents that some posting here names are kept: records
        follow postings (the YaCy exchange: postings, then :meth:`missing_docs`, then
        the missing records), and refusing orphans means records cannot be used to
        get around the posting quota. The stored ``origin`` is the sender, not the
        record's own ``origin`` field, so a peer cannot attribute pages to another.
        One transaction, like :meth:`upsert`.
        """
        batch = list(records)
        updated = time.time() if ts is None else ts

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
        keep_terms: Mapping[str, Collection[str]] | None = None,
        only_terms: Mapping[str, Collection[str]] | None = None,
    ) -> int:
        """Remove ``origin``'s postings of the given documents; returns how many went.

        With ``only_terms[doc_id]`` given, only the postings of those terms go (the
        origin withdraws the terms a re-crawled page lost, from each term's holders).

        With ``keep_terms[doc_id]`` given, the postings of those terms stay (a
        re-crawl: the origin sends the document's current terms, and every term it
        no longer contains stops matching). A document record goes when no posting
        (of any origin) names the document any more. One transaction.
        """
        ids = list(dict.fromkeys(doc_ids))
        keep = keep_terms or {}
        only = only_terms or {}

        def body(conn: sqlite3.Connection) -> int:
            removed = 0
            for d in ids:
                held = [
                    r[0]
                    for r in conn.execute(
                        "SELECT term FROM postings WHERE doc_id=? AND origin=?", (d, origin)
                    )
                ]
                kept = set(keep.get(d, ()))
                if d in only:
                    wanted = set(only[d])
                    gone = [(t, d) for t in held if t in wanted]
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
