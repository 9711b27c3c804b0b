"""The shard store: the postings this peer holds for the network (SQLite, WAL).

Other peers publish to us the postings of the terms whose DHT keys are close to our
node ID, together with the records of the documents those postings name. This store
keeps them on disk so a restarted peer keeps its share of the global index, and
answers what the query path needs from a responsible peer (:mod:`.reads`).

The package's parts: :mod:`.schema` (tables, impact score, plumbing),
:mod:`.batchcodec` (the origins' signed batches, packed), :mod:`.writes`
(upsert, records, withdrawal, expiry), :mod:`.reads`, and :mod:`.service`, which
answers the /p2p/v1 calls addressed to this peer from this store.

Design points, each because of a failure it prevents:

* **One writer thread.** SQLite connections must not be shared between threads and
  a commit must not stall the event loop, so every statement runs on one dedicated
  worker thread (same house style as :mod:`crawler.state`).
* **Every batch is one transaction** (``BEGIN IMMEDIATE`` ... ``COMMIT``). A
  ``kill -9`` mid-batch leaves either the whole batch or none of it (WAL +
  synchronous=NORMAL is durable against process death, not power loss, without an
  fsync per batch). A malformed message never reaches the store: it is refused
  whole where it enters the peer (:mod:`yasearch.wire`), so it changes nothing.
* **Per-origin quotas** so one peer cannot flood another. The per-origin posting
  counts live in their own table, updated in the same transaction as the postings,
  so the quota check is O(1) instead of a ``count(*)`` over millions of rows, and it
  can never drift from the postings after a crash. Re-upserting a posting an origin
  already holds does not count twice; refused postings are counted and reported.
* **Impact-ordered rows.** The postings table's key is ``(term, impact DESC, doc)``,
  so a top-M read is a range scan that stops after M rows.
* **Compact.** Integer ids, per-batch origin and times, packed signed batches:
  ~50 bytes of disk per held posting with every index (:mod:`.schema`).
* **Expiry.** Origins republish periodically; a batch not refreshed within
  ``max_age`` belongs to a peer that left or a page that was dropped, and its
  postings go.

Origin semantics: a posting is keyed by ``(term, doc_id)`` only and belongs to the
origin that stored it first: only that origin (whose signed batches the p2p boundary
has verified, :mod:`yasearch.wire`) may overwrite or withdraw it, and only with a
batch signed later than the one stored. When two peers crawled the same URL, the
first one's postings stand until it withdraws them or they expire. Each posting
keeps the origin's signed batch it came from (``batches``), so a holder hands on
what the origin signed, never something of its own (:mod:`yasearch.handoff`).
"""

from __future__ import annotations

from yasearch.shard.reads import ShardReads
from yasearch.shard.schema import (
    DEFAULT_MAX_AGE,
    DEFAULT_QUOTA_PER_ORIGIN,
    IMPACT_AVG_LENGTH,
    PostingLike,
    RecordLike,
    UpsertResult,
    impact,
    migrate,
)
from yasearch.shard.writes import ShardWrites

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_QUOTA_PER_ORIGIN",
    "IMPACT_AVG_LENGTH",
    "PostingLike",
    "RecordLike",
    "ShardStore",
    "UpsertResult",
    "impact",
]


class ShardStore(ShardWrites, ShardReads):
    """Postings and document records held for the network, on disk.

    Use ``await open()`` before anything else and ``await close()`` at shutdown. All
    methods are coroutines that run their SQL on the store's single worker thread.
    """

    async def open(self) -> ShardStore:
        """Open (creating if needed) the database; returns self for chaining."""
        await self._ready()
        return self

    async def close(self) -> None:
        await self._sql.close()

    async def __aenter__(self) -> ShardStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
