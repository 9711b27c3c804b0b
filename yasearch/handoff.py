"""Handoff: when the membership changes, holders pass postings to newly responsible peers.

Origins republish their own pages on every membership change, but an origin may
be gone for good while its pages are still held by the network. So each holder
also compares, for every term it holds, the r closest peers before and after the
change, and sends the term's postings (with their origins and records) to the
peers that became responsible. That is what restores r copies when a holder
leaves and what a joining peer receives without waiting for every origin.

A holder cannot sign for an origin, so it hands on what the origin signed: each
signed batch the postings came from, unchanged, with ``only`` naming the entries
the new holder is to store, and the records with their origins' signatures. The
receiver checks them exactly as if the origin had sent them.

The comparison uses the peers this node knows (its routing table): exact while
the network has at most k (20) peers, a good approximation beyond. Peers the
liveness checks found dead (``gone``, :mod:`yasearch.repair`) are not members,
so a term whose replica lost a peer is handed to the next-closest live peer
seconds after the failure, not after the membership's grace period.

Only one holder of a term sends it: the closest of its old replicas that is
still a member (or, when none is, every holder that still has it). Every
holder sees the same change, so without that rule each new replica would get
the term r-1 times over, and a mass failure would become a storm. Peers that
die at once are found in different rounds, and a replica that became
responsible in the first round may never have got the term from a sender that
was already dead; so until a failure is over (no loss for ``calm`` seconds),
both the sender and the receivers are decided against the replicas from
*before* it began: the closest of them still alive sends to every member of
the new set that was not one of them. Sends go to at
most ``in_flight`` peers at once, one batch at a time each. Terms whose every
replica died are the origins' to send again
(:meth:`yasearch.publisher.Publisher.replicas_lost`).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable

from yasearch.analysis import term_key
from yasearch.network import Contact, PeerCallError, xor_distance
from yasearch.p2pclient import P2PClient
from yasearch.shard import ShardStore
from yasearch.wire import BadMessage, PostingsRequest, WireRecord, decode

log = logging.getLogger(__name__)


def closest(members: set[bytes], key: bytes, r: int) -> list[bytes]:
    return sorted(members, key=lambda n: xor_distance(n, key))[:r]


class Ranked:
    """Node IDs as integers, for the r closest to many keys in turn."""

    def __init__(self, members: set[bytes]) -> None:
        self._ids = [(int.from_bytes(n, "big"), n) for n in members]

    def closest(self, key: int, r: int) -> list[bytes]:
        return [n for _i, n in heapq.nsmallest(r, self._ids, key=lambda e: e[0] ^ key)]


class Handoff:
    """Hands held postings on: ``node_id`` is this peer, ``shard`` what it holds,
    ``url_of`` finds a peer's HTTP URL by node ID (hex), ``client`` sends."""

    def __init__(
        self,
        node_id: bytes,
        shard: ShardStore,
        client: P2PClient,
        url_of: Callable[[str], str | None],
        *,
        replication: int = 3,
        gone: Callable[[], frozenset[bytes]] = frozenset,
        in_flight: int = 4,
        calm: float = 30.0,
    ) -> None:
        self.node_id = node_id
        self.shard = shard
        self.client = client
        self.url_of = url_of
        self.replication = replication
        self.gone = gone
        self.in_flight = in_flight
        self._members: set[bytes] | None = None
        self._baseline: set[bytes] | None = None
        self._last_loss = 0.0
        #: Seconds without a loss after which a failure is over (see _episode).
        self.calm = calm
        self._lock = asyncio.Lock()
        self.sent = 0
        self.failed = 0
        #: Terms this peer left to another holder (a closer old replica still alive).
        self.left_to_others = 0

    async def membership_changed(self, members: set[bytes]) -> int:
        """Send held postings to peers that became responsible; returns postings sent.

        ``members`` is the steady membership (this peer included); the peers found
        dead are taken out here. Calls run one at a time."""
        async with self._lock:
            return await self._changed(set(members) - self.gone())

    def baseline(self) -> set[bytes] | None:
        """The membership before the peers lost in the current failure began to go
        (None when no failure is under way)."""
        return self._baseline

    def _episode(self, old: set[bytes], members: set[bytes]) -> set[bytes] | None:
        """Track failures: peers that die at once are found over several rounds, and
        until ``calm`` seconds pass without a loss, replica sets are compared with
        the membership from before the first of them (whose replicas really hold)."""
        now = time.monotonic()
        if self._baseline is not None and now - self._last_loss > self.calm:
            self._baseline = None
        if old - members:
            if self._baseline is None:
                self._baseline = set(old)
            self._last_loss = now
        return self._baseline

    async def _changed(self, members: set[bytes]) -> int:
        old, self._members = self._members, members
        if old is None or old == members:
            return 0
        base_members = self._episode(old, members)
        r = self.replication
        me = self.node_id
        sent = 0
        after = ""
        gate = asyncio.Semaphore(self.in_flight)
        now_rank, old_rank = Ranked(members), Ranked(old)
        base_rank = Ranked(base_members) if base_members is not None else old_rank

        async def send(node: bytes, node_terms: list[str]) -> int:
            async with gate:
                return await self._send(node, node_terms)

        # every target's terms first, then one send per target: each origin batch goes
        # to a target once, with ``only`` naming all its entries that target is to hold
        targets: dict[bytes, list[str]] = defaultdict(list)
        while True:
            terms = await self.shard.terms(after, 1000)
            if not terms:
                break
            after = terms[-1][0]
            for term, _n in terms:
                key = int.from_bytes(term_key(term), "big")
                now_set, old_set = now_rank.closest(key, r), old_rank.closest(key, r)
                if now_set == old_set:
                    continue
                base = base_rank.closest(key, r)
                lost = any(n not in members for n in base)
                # the one sender: the closest replica (from before the failure) still alive
                survivors = [n for n in (base if lost else old_set) if n in members]
                if survivors and survivors[0] != me:
                    self.left_to_others += 1
                    continue
                # after a loss every member of the new set that was no replica before the
                # failure gets the term: one that became a replica in an earlier round of
                # it may never have got the term from a holder that was already dead
                held = base if lost else old_set
                for node in now_set:
                    if node != me and node not in held:
                        targets[node].append(term)
        sent += sum(await asyncio.gather(*(send(n, ts) for n, ts in targets.items())))
        self.sent += sent
        if sent:
            log.info("handoff: %d postings to newly responsible peers", sent)
        return sent

    async def _send(self, node: bytes, terms: list[str]) -> int:
        url = self.url_of(node.hex())
        if url is None:
            return 0
        contact = Contact(node, url)

        async def held(ids: list[str]) -> list[WireRecord]:
            records = await self.shard.signed_docs(ids)
            return [records[d] for d in ids if d in records]

        sent = 0
        try:
            async for req in self._batches(terms):
                async for accepted in self.client.place(contact, [req], held):
                    sent += accepted
        except PeerCallError as e:
            # the origins' periodic republish repairs what could not be handed off now
            log.debug("handoff to %s failed: %s", url, e)
            self.failed += 1
        return sent

    async def _batches(self, terms: list[str]) -> AsyncIterator[PostingsRequest]:
        """The origins' signed batches holding postings of ``terms``, each with
        ``only`` set to the entries of those terms still held from it."""
        for batch_id, pairs in (await self.shard.held_batches(terms)).items():
            body = await self.shard.batch_body(batch_id)
            if body is None:
                continue
            try:  # checked again, as the receiver will: a batch too old to pass is not sent
                req = decode(zlib.decompress(body), PostingsRequest)
            except (BadMessage, zlib.error):
                continue
            want = set(pairs)
            req.only = [i for i, e in enumerate(req.postings) if (e.term, e.posting.doc_id) in want]
            if req.only:
                yield req
