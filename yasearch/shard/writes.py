"""Writes to the shard store: upsert with per-origin quotas, records, withdrawal, expiry.

Every batch is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``): a ``kill -9``
mid-batch leaves either the whole batch or none of it. The values are trusted:
they were validated once, where they entered this peer (:mod:`yasearch.wire`).
What this module guards is the store's own invariants: an origin's quota, the
per-origin counts, the terms' df and the batches' live counts (all kept in the
same transaction as the postings, so they never drift), and that one origin can
neither overwrite nor withdraw another's postings or records. The tables are
described in :mod:`.schema`.
"""

from __future__ import annotations

import sqlite3
import time
import zlib
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence

import msgspec

from yasearch.shard import batchcodec, quotas
from yasearch.shard.schema import IMPACT_SCALE, PostingLike, RecordLike, StoreBase, UpsertResult, doc_key, impact
from yasearch.wire import PostingsRequest

_INSERT = "INSERT INTO postings(term, impact, doc, tf, flags, length, batch) VALUES (?,?,?,?,?,?,?)"
_DELETE = "DELETE FROM postings WHERE term=? AND impact=? AND doc=?"


class ShardWrites(StoreBase):
    async def upsert(
        self,
        origin: str,
        postings: Sequence[tuple[str, PostingLike]],
        ts: float | None = None,
        *,
        source: str | None = None,
        signed_at: float | None = None,
        batch: PostingsRequest | tuple[bytes, bytes] | None = None,
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

        ``batch`` is the origin's signed batch the postings come from (or, as
        before, ``(hash, zlib-compressed JSON body)`` of it), kept packed
        (:mod:`.batchcodec`) so a holder can hand the postings on verifiably.
        ``ts`` (default: the signing time, at most now) is the freshness stamp
        :meth:`expire` reads, so a batch handed on does not live longer than its
        origin made it.
        """
        items = list(postings)
        now = time.time()
        signed = signed_at if signed_at is not None else (now if ts is None else ts)
        updated = min(signed, now) if ts is None else ts
        quota = self.quota_per_origin
        caps = self.caps
        src = caps.source_key(source)
        packed = _packed(batch) if batch is not None else None

        def body(conn: sqlite3.Connection) -> UpsertResult:
            held = self._held(conn, origin)
            oid = _origin_id(conn, origin)
            bid = _batch_id(conn, oid, signed, updated, packed)
            accepted = refused = created = owned = full = 0
            total = self._total_held(conn)
            if src is not None:
                quotas.bind(conn, origin, src, held)
            src_held = quotas.source_held(conn, src) if src is not None else 0
            term_ids: dict[str, int | None] = {}
            doc_ids: dict[str, int | None] = {}
            df: Counter[int] = Counter()
            live: Counter[int] = Counter()
            for term, p in items:
                tid = term_ids[term] if term in term_ids else term_ids.setdefault(term, self._term_id(conn, term))
                did = doc_ids[p.doc_id] if p.doc_id in doc_ids else doc_ids.setdefault(p.doc_id, _doc_id(conn, p.doc_id))
                row = None
                if tid is not None and did is not None:
                    row = conn.execute(
                        "SELECT p.batch, b.origin, b.signed, p.impact FROM postings p INDEXED BY postings_doc "
                        "JOIN batches b ON b.id = p.batch WHERE p.doc=? AND p.term=?",
                        (did, tid),
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
                    if tid is None:
                        tid = term_ids[term] = conn.execute(
                            "INSERT INTO terms(term, df) VALUES (?, 0)", (term,)
                        ).lastrowid
                    if did is None:
                        did = doc_ids[p.doc_id] = conn.execute(
                            "INSERT INTO docs(key) VALUES (?)", (doc_key(p.doc_id),)
                        ).lastrowid
                    df[tid] += 1
                    live[bid] += 1
                elif row[1] != oid:
                    owned += 1
                    continue
                elif row[2] > signed:
                    continue  # a replay of an older batch
                elif row[0] != bid:
                    live[row[0]] -= 1
                    live[bid] += 1
                imp = round(impact(p) * IMPACT_SCALE)
                if row is not None and row[3] == imp:
                    conn.execute(
                        "UPDATE postings SET tf=?, flags=?, length=?, batch=? WHERE term=? AND impact=? AND doc=?",
                        (p.tf, p.flags, p.length, bid, tid, imp, did),
                    )
                else:
                    if row is not None:  # its place in the impact order moves
                        conn.execute(_DELETE, (tid, row[3], did))
                    conn.execute(_INSERT, (tid, imp, did, p.tf, p.flags, p.length, bid))
                accepted += 1
            _add_df(conn, df)
            _add_live(conn, live, also=bid)
            if created:
                self._save_counts(conn, {origin: held})
            elif held == 0:
                conn.execute("DELETE FROM origins WHERE origin=? AND postings=0", (origin,))
            return UpsertResult(
                accepted=accepted, refused_quota=refused, created=created, refused_full=full, refused_owner=owned
            )

        if not items:
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
            else:  # none of its batches is left either (every posting is in one of its batches)
                conn.execute("DELETE FROM origins WHERE origin=?", (o,))

    async def put_docs(self, records: Sequence[RecordLike], ts: float | None = None) -> int:
        """Store document records; returns how many were stored.

        Each record is stored under its own ``origin``, which the p2p boundary has
        checked signed it (a holder handing records on sends other origins'). A
        record is kept only when that origin holds a posting here naming the
        document (records follow postings, the YaCy exchange, so records cannot
        get around the posting quota), and it replaces a stored record only of
        the same origin and a crawl at least as recent. One transaction.
        (``ts`` is accepted for compatibility; records carry their crawl time.)
        """
        batch = list(records)

        def body(conn: sqlite3.Connection) -> int:
            stored = 0
            for r in batch:
                row = conn.execute(
                    "SELECT d.id FROM docs d JOIN postings p INDEXED BY postings_doc ON p.doc = d.id "
                    "JOIN batches b ON b.id = p.batch "
                    "JOIN origins o ON o.id = b.origin WHERE d.key=? AND o.origin=? LIMIT 1",
                    (doc_key(r.doc_id), r.origin),
                ).fetchone()
                if row is None:
                    continue
                who = batchcodec.hexbytes(r.origin)
                had = conn.execute(
                    "SELECT s.origin, r.crawled_at FROM records r JOIN signers s ON s.id = r.signer WHERE r.id=?",
                    (row[0],),
                ).fetchone()
                if had is not None and (had[0] != who or had[1] > float(r.crawled_at)):
                    continue
                signer = _signer_id(conn, who, batchcodec.hexbytes(getattr(r, "pubkey", "")))
                cur = conn.execute(
                    "INSERT OR REPLACE INTO records(id, url, title, description, language, length, crawled_at, "
                    "signer, host, sig) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        row[0], r.url, r.title, r.description, r.language, r.length, float(r.crawled_at), signer,
                        r.host, batchcodec.hexbytes(getattr(r, "sig", "")),
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
            row = conn.execute("SELECT id FROM origins WHERE origin=?", (origin,)).fetchone()
            if row is None:
                return 0
            oid = row[0]
            removed = 0
            df: Counter[int] = Counter()
            live: Counter[int] = Counter()
            for d in ids:
                did = _doc_id(conn, d)
                if did is None:
                    continue
                held = conn.execute(
                    "SELECT p.term, t.term, p.impact, p.batch FROM postings p INDEXED BY postings_doc "
                    "JOIN batches b ON b.id = p.batch JOIN terms t ON t.id = p.term "
                    "WHERE p.doc=? AND b.origin=? AND b.signed<=?",
                    (did, oid, signed_at),
                ).fetchall()
                if d in only:
                    wanted = set(only[d])
                    gone = [(tid, i, b) for tid, t, i, b in held if t in wanted]
                else:
                    kept = set(keep.get(d, ()))
                    gone = [(tid, i, b) for tid, t, i, b in held if t not in kept]
                if not gone:
                    continue
                conn.executemany(_DELETE, [(tid, i, did) for tid, i, _b in gone])
                removed += len(gone)
                for tid, _i, b in gone:
                    df[tid] -= 1
                    live[b] -= 1
                if conn.execute(
                    "DELETE FROM docs WHERE id=?1 AND NOT EXISTS "
                    "(SELECT 1 FROM postings INDEXED BY postings_doc WHERE doc=?1)",
                    (did,),
                ).rowcount:
                    conn.execute("DELETE FROM records WHERE id=?", (did,))
            if removed:
                _add_df(conn, df)
                _add_live(conn, live)
                self._save_counts(conn, {origin: self._held(conn, origin) - removed})
            return removed

        if not ids:
            return 0
        return await self._tx(body)

    async def expire(self, now: float | None = None) -> int:
        """Delete postings not refreshed within ``max_age`` and records left orphaned.

        Returns the number of postings deleted. Origins republish what they still
        hold, so anything older belongs to a peer that left or a page it dropped.
        Freshness is a batch's: every posting of a batch goes at once.
        """
        cutoff = (time.time() if now is None else now) - self.max_age

        def body(conn: sqlite3.Connection) -> int:
            stale = conn.execute(
                "SELECT b.id, o.origin, b.live FROM batches b JOIN origins o ON o.id = b.origin WHERE b.updated < ?",
                (cutoff,),
            ).fetchall()
            if not stale:
                return 0
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS stale(id INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM temp.stale")
            conn.executemany("INSERT INTO temp.stale(id) VALUES (?)", [(b,) for b, _o, _n in stale])
            per_term = conn.execute(
                "SELECT term, count(*) FROM postings WHERE batch IN (SELECT id FROM temp.stale) GROUP BY term"
            ).fetchall()
            total = conn.execute("DELETE FROM postings WHERE batch IN (SELECT id FROM temp.stale)").rowcount
            _add_df(conn, Counter({t: -n for t, n in per_term}))
            conn.execute("DELETE FROM batches WHERE id IN (SELECT id FROM temp.stale)")
            lost: Counter[str] = Counter()
            for _b, o, n in stale:
                lost[o] += n
            self._save_counts(conn, {o: self._held(conn, o) - n for o, n in lost.items()})
            conn.execute(
                "DELETE FROM docs WHERE NOT EXISTS (SELECT 1 FROM postings p INDEXED BY postings_doc WHERE p.doc = docs.id)"
            )
            conn.execute("DELETE FROM records WHERE id NOT IN (SELECT id FROM docs)")
            conn.execute("DELETE FROM signers WHERE id NOT IN (SELECT signer FROM records)")
            conn.execute("DELETE FROM temp.stale")
            return total

        return await self._tx(body)


def _packed(batch: PostingsRequest | tuple[bytes, bytes]) -> bytes:
    """The signed batch as :mod:`.batchcodec` keeps it (a ``(hash, zlib JSON)`` pair
    is decoded first; it was checked when it arrived)."""
    if isinstance(batch, tuple):
        batch = decode_unchecked(zlib.decompress(batch[1]))
    return batchcodec.pack(batch)


def decode_unchecked(raw: bytes) -> PostingsRequest:
    """A batch body this peer decoded (and checked) before, decoded again without the checks."""
    return msgspec.json.decode(raw, type=PostingsRequest)


def _origin_id(conn: sqlite3.Connection, origin: str) -> int:
    conn.execute("INSERT INTO origins(origin, postings) VALUES (?, 0) ON CONFLICT(origin) DO NOTHING", (origin,))
    return int(conn.execute("SELECT id FROM origins WHERE origin=?", (origin,)).fetchone()[0])


def _signer_id(conn: sqlite3.Connection, origin: bytes | str, pubkey: bytes | str) -> int:
    conn.execute("INSERT INTO signers(origin, pubkey) VALUES (?, ?) ON CONFLICT DO NOTHING", (origin, pubkey))
    return int(conn.execute("SELECT id FROM signers WHERE origin=? AND pubkey=?", (origin, pubkey)).fetchone()[0])


def _doc_id(conn: sqlite3.Connection, doc_id: str) -> int | None:
    row = conn.execute("SELECT id FROM docs WHERE key=?", (doc_key(doc_id),)).fetchone()
    return row[0] if row else None


def _batch_id(conn: sqlite3.Connection, oid: int, signed: float, updated: float, packed: bytes | None) -> int:
    """The batch row of this upsert: a new one, or the one of the same signed batch
    received before (its freshness renewed)."""
    digest = batchcodec.digest(packed) if packed is not None else None
    if digest is not None:
        row = conn.execute("SELECT id FROM batches WHERE hash=?", (digest,)).fetchone()
        if row is not None:
            conn.execute("UPDATE batches SET updated=max(updated, ?) WHERE id=?", (updated, row[0]))
            return int(row[0])
    cur = conn.execute(
        "INSERT INTO batches(origin, signed, updated, live, hash, body) VALUES (?,?,?,0,?,?)",
        (oid, signed, updated, digest, packed),
    )
    return int(cur.lastrowid or 0)


def _add_df(conn: sqlite3.Connection, df: Counter[int]) -> None:
    """Apply df changes; a term whose df reaches 0 leaves the dictionary."""
    conn.executemany("UPDATE terms SET df = df + ? WHERE id=?", [(n, t) for t, n in df.items() if n])
    conn.executemany("DELETE FROM terms WHERE id=? AND df <= 0", [(t,) for t, n in df.items() if n < 0])


def _add_live(conn: sqlite3.Connection, live: Counter[int], also: int | None = None) -> None:
    """Apply batches' live-count changes; a batch nothing is held from any more goes."""
    conn.executemany("UPDATE batches SET live = live + ? WHERE id=?", [(n, b) for b, n in live.items() if n])
    check = [b for b, n in live.items() if n < 0]
    if also is not None:
        check.append(also)
    conn.executemany("DELETE FROM batches WHERE id=? AND live <= 0", [(b,) for b in check])
