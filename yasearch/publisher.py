"""Publishing: the postings of every indexed page go to the peers responsible for its terms.

The outbox is a SQLite table (``publish.db``), so publishing survives restarts:
a page enters it when its index commit is durable and leaves the pending state
only when every responsible peer of every one of its terms has acknowledged its
postings. A peer that is down makes the batch fail for now; the resolver routes
around it and the batch is retried with backoff, which also restores r copies
when a peer leaves for good. Periodic republishing (and a full republish when the
membership changes) refreshes the postings' expiry clock on the holders and hands
them to peers that joined.

A re-crawled page withdraws the terms it no longer has; a removed page withdraws
all of them (``withdrawals`` table, retried like postings).

A full disk loses nothing: every outbox change is one transaction; pages that
could not enter the outbox wait in memory, in order, and every round tries to
write them again (backing off from 0.5 s to 10 s); a round whose bookkeeping
could not be written leaves its pages pending, so they are sent again. The
outbox reports into the peer's fault registry (``health``): ``faults.outbox``.

Documents are kept in the outbox (zlib-compressed) because their postings must be
recomputed for republishing, and the Whoosh index keeps neither term vectors nor
the full text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

from yasearch.identity import Identity
from yasearch.limits import MAX_DESCRIPTION_CHARS, MAX_LANGUAGE_CHARS, MAX_TITLE_CHARS
from yasearch.network import Contact, PeerCallError, Resolver
from yasearch.p2pclient import P2PClient
from yasearch.ranking import document_length, postings_for_document
from yasearch.records import Document
from yasearch.crawler.sqlite import Health, SqliteThread, StorageFullError
from yasearch.wire import MAX_POSTINGS, PostingEntry, PostingsRequest, WirePosting, WireRecord, WithdrawRequest, sign

log = logging.getLogger(__name__)
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    doc_id TEXT PRIMARY KEY,
    doc BLOB NOT NULL,
    terms TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL,          -- pending | sent
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(state, next_try);
CREATE TABLE IF NOT EXISTS withdrawals (
    doc_id TEXT NOT NULL,
    term TEXT NOT NULL,
    PRIMARY KEY (doc_id, term)
) WITHOUT ROWID;
"""


def _pack(doc: Document) -> bytes:
    return zlib.compress(json.dumps(asdict(doc), separators=(",", ":")).encode(), 1)


def _unpack(blob: bytes) -> Document:
    return Document(**json.loads(zlib.decompress(blob)))


class Outbox:
    """The persistent publish queue; SQLite on one dedicated thread."""

    def __init__(self, path: Path, health: Health | None = None) -> None:
        self._sql = SqliteThread(path, _SCHEMA, "outbox", health)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._sql.run(fn)

    async def close(self) -> None:
        await self._sql.close()

    async def put(self, docs: list[Document]) -> None:
        """Queue documents (replacing older versions); old terms they lost are withdrawn."""
        now = time.time()
        packed = [(d.doc_id, _pack(d)) for d in docs]

        def do(c: sqlite3.Connection) -> None:
            for doc_id, blob in packed:
                c.execute(
                    "INSERT INTO outbox(doc_id, doc, state, attempts, next_try, updated) VALUES (?,?,'pending',0,0,?) "
                    "ON CONFLICT(doc_id) DO UPDATE SET doc=excluded.doc, state='pending', attempts=0, next_try=0, "
                    "updated=excluded.updated",
                    (doc_id, blob, now),
                )

        await self._sql.tx(do)

    async def remove(self, doc_ids: list[str]) -> None:
        """Documents left the index: withdraw every term they were published with."""

        def do(c: sqlite3.Connection) -> None:
            for d in doc_ids:
                row = c.execute("SELECT terms, doc FROM outbox WHERE doc_id=?", (d,)).fetchone()
                if row:
                    # the terms it was published with, and those of its current version: a page
                    # pending after a partial send (or being sent right now) has postings out there too
                    terms = set(json.loads(row[0])) | set(postings_for_document(_unpack(row[1])))
                    c.executemany("INSERT OR IGNORE INTO withdrawals(doc_id, term) VALUES (?,?)", [(d, t) for t in terms])
                c.execute("DELETE FROM outbox WHERE doc_id=?", (d,))

        await self._sql.tx(do)

    async def documents(self, doc_ids: list[str]) -> list[Document]:
        """The documents of these ids the outbox holds (every indexed page: pending or sent)."""
        marks = ",".join("?" * len(doc_ids))
        rows = await self.run(lambda c: c.execute(f"SELECT doc FROM outbox WHERE doc_id IN ({marks})", doc_ids).fetchall())
        return [_unpack(blob) for (blob,) in rows]

    async def due(self, limit: int) -> list[tuple[str, bytes, list[str]]]:
        now = time.time()
        rows = await self.run(
            lambda c: c.execute(
                "SELECT doc_id, doc, terms FROM outbox WHERE state='pending' AND next_try<=? ORDER BY next_try LIMIT ?",
                (now, limit),
            ).fetchall()
        )
        return [(d, blob, json.loads(terms)) for d, blob, terms in rows]

    async def sent(self, published: dict[str, list[str]], withdrawn_old: dict[str, list[str]]) -> None:
        """Mark documents published with these terms; queue withdrawal of the terms they lost."""

        def do(c: sqlite3.Connection) -> None:
            for d, terms in published.items():
                c.execute("UPDATE outbox SET state='sent', attempts=0, terms=? WHERE doc_id=?", (json.dumps(terms), d))
            for d, terms in withdrawn_old.items():
                c.executemany("INSERT OR IGNORE INTO withdrawals(doc_id, term) VALUES (?,?)", [(d, t) for t in terms])
                c.executemany("DELETE FROM withdrawals WHERE doc_id=? AND term=?", [(d, t) for t in published.get(d, [])])

        await self._sql.tx(do)

    async def retry_later(self, doc_ids: list[str]) -> None:
        now = time.time()

        def do(c: sqlite3.Connection) -> None:
            for d in doc_ids:
                c.execute(
                    "UPDATE outbox SET attempts=attempts+1, next_try=?+min(300, 1 << min(attempts, 8)) WHERE doc_id=?",
                    (now, d),
                )

        await self._sql.tx(do)

    async def withdrawals(self, limit: int) -> list[tuple[str, str]]:
        return await self.run(lambda c: c.execute("SELECT doc_id, term FROM withdrawals LIMIT ?", (limit,)).fetchall())

    async def withdrawn(self, pairs: list[tuple[str, str]]) -> None:
        def do(c: sqlite3.Connection) -> None:
            c.executemany("DELETE FROM withdrawals WHERE doc_id=? AND term=?", pairs)

        await self._sql.tx(do)

    async def published_terms(self) -> list[tuple[str, list[str]]]:
        """(doc id, terms it was published with) of every page sent."""
        rows = await self.run(lambda c: c.execute("SELECT doc_id, terms FROM outbox WHERE state='sent'").fetchall())
        return [(d, json.loads(t)) for d, t in rows]

    async def requeue(self, doc_ids: list[str]) -> None:
        def do(c: sqlite3.Connection) -> None:
            c.executemany("UPDATE outbox SET state='pending', next_try=0 WHERE doc_id=?", [(d,) for d in doc_ids])

        await self._sql.tx(do)

    async def republish_all(self) -> int:
        return await self._sql.tx(lambda c: c.execute("UPDATE outbox SET state='pending', next_try=0 WHERE state='sent'").rowcount)

    async def counts(self) -> dict[str, int]:
        rows = await self.run(lambda c: c.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
        w = await self.run(lambda c: c.execute("SELECT count(*) FROM withdrawals").fetchone()[0])
        d = {s: n for s, n in rows}
        return {"pending": d.get("pending", 0), "published": d.get("sent", 0), "withdrawals": w}


def _record(doc: Document, origin: str) -> WireRecord:
    """The record holders keep of one of our pages, trimmed to what they accept."""
    return WireRecord(
        doc_id=doc.doc_id,
        url=doc.url,
        title=doc.title[:MAX_TITLE_CHARS],
        description=(doc.description or doc.body[:300])[:MAX_DESCRIPTION_CHARS],
        language=doc.language[:MAX_LANGUAGE_CHARS],
        length=document_length(doc),
        crawled_at=doc.crawled_at,
        origin=origin,
        host=doc.host,
    )


class Publisher:
    """Sends the outbox to the responsible peers: ``identity`` is the origin it
    publishes as and signs with (every batch, record and withdrawal), ``resolver``
    finds the holders, ``client`` talks to them."""

    def __init__(
        self,
        identity: Identity,
        resolver: Resolver,
        client: P2PClient,
        path: Path,
        *,
        batch_docs: int = 50,
        interval: float = 0.5,
        health: Health | None = None,
        in_flight: int = 8,
    ) -> None:
        self.identity = identity
        self.node_id = identity.hex
        self.resolver = resolver
        self.client = client
        self.outbox = Outbox(path, health)
        #: Outbox changes a full disk refused, in order: ("put", docs) or ("remove", doc ids).
        self._unsaved: list[tuple[str, list]] = []
        self._unsaved_lock = asyncio.Lock()
        self._full_wait = 0.0  # seconds to wait after a round the full disk stopped
        self.batch_docs = batch_docs
        self.interval = interval
        #: Destinations sent to at once in a round (each gets one request per batch).
        self.in_flight = in_flight
        self.requests = 0  # postings requests sent (one per destination and batch)
        self.sent = 0  # postings acknowledged
        self.failed = 0  # requests that failed
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        #: doc_id -> node ids that acknowledged its postings, after a partly failed send.
        self._acked: dict[str, set[bytes]] = {}
        #: doc_id -> the only peers its next send goes to (see resend()).
        self._only: dict[str, set[bytes]] = {}
        #: Called with the doc ids each round delivered to every responsible peer.
        self.on_published: list[Callable[[list[str]], None]] = []

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="publisher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._unsaved:
            log.warning("publisher stopped with the disk full: %d outbox changes not saved", len(self._unsaved))
        await self.outbox.close()

    async def documents(self, doc_ids: list[str]) -> list[Document]:
        """Complete copies of indexed pages, from the outbox (anchor text re-indexes them)."""
        return await self.outbox.documents(doc_ids) if doc_ids else []

    async def enqueue(self, docs: list[Document]) -> None:
        await self._save("put", docs)

    async def remove(self, doc_ids: list[str]) -> None:
        await self._save("remove", doc_ids)

    async def _save(self, kind: str, items: list) -> None:
        self._unsaved.append((kind, items))
        await self._save_unsaved()
        self._idle.clear()
        self._wake.set()

    async def _save_unsaved(self) -> bool:
        """Write the outbox changes a full disk refused, in order; False while it still does."""
        async with self._unsaved_lock:
            while self._unsaved:
                kind, items = self._unsaved[0]
                try:
                    await (self.outbox.put(items) if kind == "put" else self.outbox.remove(items))
                except StorageFullError as e:
                    log.debug("outbox change kept in memory: %s", e)
                    return False
                self._unsaved.pop(0)
        return True

    async def republish(self) -> None:
        try:
            await self.outbox.republish_all()
        except StorageFullError as e:  # the periodic republish comes again
            log.warning("republish skipped: %s", e)
            return
        self._idle.clear()
        self._wake.set()

    async def resend(self, only: dict[str, set[bytes]]) -> None:
        """Send these pages again, each only to the given peers (those of them still
        responsible for its terms): the new replicas of terms whose every holder died,
        which no holder is left to hand on (:mod:`yasearch.repair`)."""
        if not only:
            return
        for d, peers in only.items():
            self._only.setdefault(d, set()).update(peers)
        try:
            await self.outbox.requeue(list(only))
        except StorageFullError as e:  # the periodic republish repairs it later
            log.warning("resend skipped: %s", e)
            return
        self._idle.clear()
        self._wake.set()

    async def wait_idle(self) -> None:
        """Until nothing is due (tests and the demo use it)."""
        self._wake.set()
        await self._idle.wait()

    async def figures(self) -> dict[str, int]:
        c = await self.outbox.counts()
        unsaved = sum(len(items) for _kind, items in self._unsaved)
        return {"pending": c["pending"] + c["withdrawals"] + unsaved, "published_docs": c["published"], "sent": self.sent, "failed": self.failed}

    async def _loop(self) -> None:
        while True:
            full = False
            try:
                full = not await self._save_unsaved()
                did = not full and await self._round()
            except asyncio.CancelledError:
                raise
            except StorageFullError as e:
                log.warning("publisher round stopped by a full disk, retried later: %s", e)
                did, full = False, True
            except Exception:
                log.exception("publisher round failed")
                did = False
            if full:  # back off while the disk stays full; pages stay pending
                self._full_wait = min(10.0, max(self.interval, self._full_wait * 2))
                self._wake.clear()
                await asyncio.sleep(self._full_wait)
                continue
            self._full_wait = 0.0
            if not did:
                if self._alone():
                    self._idle.set()
                else:
                    c = await self.outbox.counts()
                    if c["withdrawals"] == 0 and not await self.outbox.due(1):
                        self._idle.set()
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
                except asyncio.TimeoutError:
                    pass

    def _alone(self) -> bool:
        """No other peer known: a network of one has nobody to publish to.

        Its own global search reads its local index, so postings would only be
        copied into its own shard store. Pages stay pending in the outbox and go
        out when the first peer appears (membership changes trigger a round).
        """
        return not self.resolver.others_known()

    async def _round(self) -> bool:
        """One batch of withdrawals and postings; True if there was work."""
        if self._alone():
            return False
        did = False
        pairs = await self.outbox.withdrawals(2000)
        if pairs:
            did = True
            await self._withdraw(pairs)
        rows = await self.outbox.due(self.docs_per_round())
        if rows:
            did = True
            await self._publish(rows)
        return did

    def docs_per_round(self) -> int:
        """Pages per round: ``batch_docs`` for up to 8 peers, more as the network grows,
        so that each destination still gets a batch worth a request (a page's terms
        spread over every peer: with 48 peers, 50 pages make ~2,000 postings per peer)."""
        peers = self.resolver.peers_known() + 1
        return max(self.batch_docs, min(8 * self.batch_docs, self.batch_docs * peers // 8))

    async def _routes(self, terms: set[str]) -> dict[str, list[Contact]]:
        """The responsible peers of each distinct term of a round, resolved once."""
        await self.resolver.prefetch(terms)
        return {t: await self.resolver.responsible(t, skip_failed=False) for t in terms}

    async def _withdraw(self, pairs: list[tuple[str, str]]) -> None:
        by_peer: dict[Contact, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        routes = await self._routes({term for _d, term in pairs})
        for doc_id, term in pairs:
            for c in routes[term]:
                by_peer[c][doc_id].append(term)
        ok: set[tuple[str, str]] = set(pairs)
        for contact, docs in by_peer.items():
            # withdraw exactly these terms (every other term the doc has there stays)
            req = WithdrawRequest(origin=self.node_id, doc_ids=list(docs), terms=dict(docs), signed_at=time.time())
            req = sign(req, self.identity)
            try:
                await self.client.withdraw(contact, req)
            except PeerCallError as e:
                log.debug("withdraw to %s failed: %s", contact.url, e)
                self.failed += 1
                self.resolver.mark_dead(contact)
                for d, ts in docs.items():
                    ok.difference_update((d, t) for t in ts)
        if ok:
            await self.outbox.withdrawn(sorted(ok))

    async def _publish(self, rows: list[tuple[str, bytes, list[str]]]) -> None:
        me = self.node_id
        docs = [(_unpack(blob), old_terms) for _d, blob, old_terms in rows]
        loop = asyncio.get_running_loop()
        computed = await loop.run_in_executor(None, lambda: [(d, postings_for_document(d), old) for d, old in docs])
        per_peer: dict[Contact, list[PostingEntry]] = defaultdict(list)
        records: dict[str, WireRecord] = {}
        published: dict[str, list[str]] = {}
        lost: dict[str, list[str]] = {}
        targets_of_doc: dict[str, set[Contact]] = defaultdict(set)
        routes = await self._routes({t for _d, plist, _o in computed for t in plist})
        for doc, plist, old_terms in computed:
            records[doc.doc_id] = sign(_record(doc, me), self.identity)
            published[doc.doc_id] = sorted(plist)
            gone = sorted(set(old_terms) - set(plist))
            if gone:
                lost[doc.doc_id] = gone
            # a retry goes only to the responsible peers that have not acknowledged yet:
            # re-sending to all would multiply the load on a network that is already
            # slow to answer; a peer that took the place of a dead one gets it all
            acked = self._acked.get(doc.doc_id, set())
            only = self._only.pop(doc.doc_id, None)
            for term, p in plist.items():
                for c in routes[term]:
                    if c.node_id not in acked and (only is None or c.node_id in only):
                        targets_of_doc[doc.doc_id].add(c)
                        per_peer[c].append(PostingEntry(term, WirePosting.of(p)))
        failed_peers: set[Contact] = set()

        async def have(ids: list[str]) -> list[WireRecord]:
            return [records[d] for d in ids if d in records]

        def batches(entries: list[PostingEntry]) -> list[PostingsRequest]:
            now = time.time()
            return [
                sign(PostingsRequest(origin=me, postings=entries[i : i + MAX_POSTINGS], signed_at=now), self.identity)
                for i in range(0, len(entries), MAX_POSTINGS)
            ]

        gate = asyncio.Semaphore(self.in_flight)

        async def send(contact: Contact, entries: list[PostingEntry]) -> None:
            try:
                async with gate:
                    reqs = batches(entries)
                    self.requests += len(reqs)
                    async for accepted in self.client.place(contact, reqs, have):
                        self.sent += accepted
            except PeerCallError as e:
                log.debug("publish to %s failed: %s", contact.url, e)
                self.failed += 1
                failed_peers.add(contact)
                self.resolver.mark_dead(contact)

        await asyncio.gather(*(send(c, e) for c, e in per_peer.items()))
        done = {d: terms for d, terms in published.items() if not (targets_of_doc[d] & failed_peers)}
        retry = [d for d in published if d not in done]
        for d in done:
            self._acked.pop(d, None)
        for d in retry:
            self._acked.setdefault(d, set()).update(c.node_id for c in targets_of_doc[d] - failed_peers)
        while len(self._acked) > 100_000:  # bounded; a forgotten entry only means a full re-send
            self._acked.pop(next(iter(self._acked)))
        await self.outbox.sent(done, {d: lost[d] for d in done if d in lost})
        if done:
            for callback in self.on_published:
                callback(list(done))
        if retry:
            await self.outbox.retry_later(retry)
