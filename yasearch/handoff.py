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
the network has at most k (20) peers, a good approximation beyond.
"""

from __future__ import annotations

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
    ) -> None:
        self.node_id = node_id
        self.shard = shard
        self.client = client
        self.url_of = url_of
        self.replication = replication
        self._members: set[bytes] | None = None
        self.sent = 0
        self.failed = 0

    async def membership_changed(self, members: set[bytes]) -> int:
        """Send held postings to peers that became responsible; returns postings sent."""
        old, self._members = self._members, set(members)
        if old is None or old == members:
            return 0
        r = self.replication
        me = self.node_id
        sent = 0
        after = ""
        while True:
            terms = await self.shard.terms(after, 1000)
            if not terms:
                break
            after = terms[-1][0]
            targets: dict[bytes, list[str]] = defaultdict(list)
            for term, _n in terms:
                key = term_key(term)
                before = set(closest(old, key, r))
                for node in closest(members, key, r):
                    if node != me and node not in before:
                        targets[node].append(term)
            for node, node_terms in targets.items():
                sent += await self._send(node, node_terms)
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
