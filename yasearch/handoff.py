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
the term r-1 times over, and a mass failure would become a storm. Sends go to
at most ``in_flight`` peers at once, one batch at a time each.
"""

from __future__ import annotations

import asyncio
import logging
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
    ) -> None:
        self.node_id = node_id
        self.shard = shard
        self.client = client
        self.url_of = url_of
        self.replication = replication
        self.gone = gone
        self.in_flight = in_flight
        self._members: set[bytes] | None = None
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

    async def _changed(self, members: set[bytes]) -> int:
        old, self._members = self._members, members
        if old is None or old == members:
            return 0
        r = self.replication
        me = self.node_id
        sent = 0
        after = ""
        gate = asyncio.Semaphore(self.in_flight)

        async def send(node: bytes, node_terms: list[str]) -> int:
            async with gate:
                return await self._send(node, node_terms)

        while True:
            terms = await self.shard.terms(after, 1000)
            if not terms:
                break
            after = terms[-1][0]
            targets: dict[bytes, list[str]] = defaultdict(list)
            for term, _n in terms:
                key = term_key(term)
                before = closest(old, key, r)
                new = [n for n in closest(members, key, r) if n != me and n not in before]
                if not new:
                    continue
                survivors = [n for n in before if n in members]
                if survivors and survivors[0] != me:
                    self.left_to_others += 1
                    continue
                for node in new:
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
