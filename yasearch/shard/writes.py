"""Writes to the shard store: upsert with per-origin quotas, records, withdrawal, expiry.

Every batch is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``): a ``kill -9``
mid-batch leaves either the whole batch or none of it. The values are trusted:
they were validated once, where they entered this peer (:mod:`yasearch.wire`).
What this module guards is the store's own invariants: an origin's quota, the
per-origin counts (kept in the same transaction as the postings, so they never
drift), and that one origin can neither overwrite nor withdraw another's postings
or records.
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
        signed_at: float | None = None,
        batch: tuple[bytes, bytes] | None = None,
    ) -> UpsertResult:
        """Store postings from ``origin``, replacing its own with the same (term, doc_id).

        The batch is written in one transaction. Its values were validated where
        they entered the peer (:mod:`yasearch.wire`, which also checked that
        ``origin`` signed them); here the store's rules are enforced, in order:

        * a (term, doc_id) held for another origin is never overwritten
          (``refused_owner``); one ``origin`` holds already is replaced only by a
          batch signed at least as late (``signed_at``; an older one replayed is
          skipped);
        * once ``origin`` holds ``quota_per_origin`` postings, further *new*
          postings are refused and counted, while updates are still accepted;
        * ``source`` is the sender's IP address (None: this peer itself). New
          postings are also refused once the store holds ``caps.max_postings`` and
          once the sender's address holds ``caps.quota_per_source`` (:mod:`.quotas`).

        ``batch`` is ``(hash, compressed body)`` of the origin's signed batch, kept
        so a holder can hand the postings on verifiably. ``ts`` (default: the
        signing time, at most now) is the freshness stamp :meth:`expire` reads,
        so a batch handed on does not live longer than its origin made it.
        """
        items = list(postings)
        now = time.time()
        signed = signed_at if signed_at is not None else (now if ts is None else ts)
        updated = min(signed, now) if ts is None else ts
        quota = self.quota_per_origin
        caps = self.caps
        src = caps.source_key(source)

        def body(conn: sqlite3.Connection) -> UpsertResult:
            held = self._held(conn, origin)
            batch_id = self._keep_batch(conn, batch) if batch is not None else None
            accepted = refused = created = owned = full = 0
            total = self._total_held(conn)
            if src is not None:
                quotas.bind(conn, origin, src, held)
            src_held = quotas.source_held(conn, src) if src is not None else 0
            for term, p in items:
                row = conn.execute(
                    "SELECT origin, signed FROM postings WHERE term=? AND doc_id=?", (term, p.doc_id)
                ).fetchone()
                if row is None:
                    if held >= quota or (src is not None and src_held >= caps.quota_per_source):
                        refused += 1
                        continue
                    if total >= caps.max_postings:
                        refused += 1
                        full += 1
                        continue
                    held += 1
                    src_held += 1
                    created += 1
                    total += 1
                elif row[0] != origin:
                    owned += 1
                    continue
                elif row[1] > signed:
                    continue  # a replay of an older batch
                conn.execute(
                    "INSERT INTO postings(term, doc_id, origin, tf, flags, length, impact, updated, signed, batch) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(term, doc_id) DO UPDATE SET "
                    "tf=excluded.tf, flags=excluded.flags, length=excluded.length, impact=excluded.impact, "
                    "updated=excluded.updated, signed=excluded.signed, batch=excluded.batch",
                    (term, p.doc_id, origin, p.tf, p.flags, p.length, impact(p), updated, signed, batch_id),
                )
                accepted += 1
            if created:
                self._save_counts(conn, {origin: held})
            return UpsertResult(
                accepted=accepted, refused_quota=refused, created=created, refused_full=full, refused_owner=owned
            )

        if not items:
            return UpsertResult(0, 0, 0)
        return await self._tx(body)

    @staticmethod
    def _keep_batch(conn: sqlite3.Connection, batch: tuple[bytes, bytes]) -> int:
        digest, blob = batch
        conn.execute("INSERT OR IGNORE INTO batches(hash, body) VALUES (?,?)", (digest, blob))
        return int(conn.execute("SELECT id FROM batches WHERE hash=?", (digest,)).fetchone()[0])

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

    async def put_docs(self, records: Sequence[RecordLike], ts: float | None = None) -> int:
        """Store document records; returns how many were stored.

        Each record is stored under its own ``origin``, which the p2p boundary has
        checked signed it (a holder handing records on sends other origins'). A
        record is kept only when that origin holds a posting here naming the
        document (records follow postings, the YaCy exchange, so records cannot
        get around the posting quota), and it replaces a stored record only of
        the same origin and a crawl at least as recent. One transaction.
        """
        batch = list(records)
        updated = time.time() if ts is None else ts

        def body(conn: sqlite3.Connection) -> int:
            stored = 0
            for r in batch:
                if conn.execute(
                    "SELECT 1 FROM postings WHERE doc_id=? AND origin=? LIMIT 1", (r.doc_id, r.origin)
                ).fetchone() is None:
                    continue
                cur = conn.execute(
                    "INSERT INTO docs(doc_id, url, title, description, language, length, crawled_at, origin, "
                    "host, updated, pubkey, sig) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(doc_id) DO UPDATE SET "
                    "url=excluded.url, title=excluded.title, description=excluded.description, "
                    "language=excluded.language, length=excluded.length, crawled_at=excluded.crawled_at, "
                    "host=excluded.host, updated=excluded.updated, pubkey=excluded.pubkey, sig=excluded.sig "
                    "WHERE docs.origin=excluded.origin AND docs.crawled_at<=excluded.crawled_at",
                    (
                        r.doc_id, r.url, r.title, r.description, r.language, r.length, float(r.crawled_at),
                        r.origin, r.host, updated, getattr(r, "pubkey", ""), getattr(r, "sig", ""),
                    ),
                )
                stored += cur.rowcount > 0
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
        signed_at: float = float("inf"),
    ) -> int:
        """Remove ``origin``'s postings of the given documents; returns how many went.

        With ``only_terms[doc_id]`` given, only the postings of those terms go (the
        origin withdraws the terms a re-crawled page lost, from each term's holders).

        With ``keep_terms[doc_id]`` given, the postings of those terms stay (a
        re-crawl: the origin sends the document's current terms, and every term it
        no longer contains stops matching). A document record goes when no posting
        (of any origin) names the document any more. Only postings signed before
        the withdrawal's ``signed_at`` go (a withdrawal replayed later cannot remove
        what the origin published since). One transaction.
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
                        "SELECT term FROM postings WHERE doc_id=? AND origin=? AND signed<=?", (d, origin, signed_at)
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
            # signed batches no posting comes from any more (superseded or withdrawn)
            conn.execute(
                "DELETE FROM batches WHERE id NOT IN (SELECT batch FROM postings WHERE batch IS NOT NULL)"
            )
            return total

        return await self._tx(body)
