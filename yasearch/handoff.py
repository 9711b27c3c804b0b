"""Handoff: when the membership changes, holders pass postings to newly responsible peers.

Origins republish their own pages on every membership change, but an origin may
be gone for good while its pages are still held by the network. So each holder
also compares, for every term it holds, the r closest peers before and after the
change, and sends the term's postings (with their origins and records) to the
peers that became responsible. That is what restores r copies when a holder
leaves and what a joining peer receives without waiting for every origin.

The comparison uses the peers this node knows (its routing table): exact while
the network has at most k (20) peers, a good approximation beyond.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

from yasearch.analysis import term_key
from yasearch.network import Contact, PeerCallError, xor_distance
from yasearch.p2pclient import P2PClient
from yasearch.shard import ShardStore
from yasearch.wire import PostingEntry, WirePosting, WireRecord

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
        by_origin: dict[str, list[PostingEntry]] = defaultdict(list)
        for term in terms:
            for origin, p in await self.shard.postings_of_term(term):
                by_origin[origin].append(PostingEntry(term, WirePosting.of(p)))

        async def held(ids: list[str]) -> list[WireRecord]:
            records = await self.shard.docs(ids)
            return [WireRecord.of(records[d]) for d in ids if d in records]

        sent = 0
        try:
            for origin, entries in by_origin.items():
                async for accepted in self.client.place(contact, origin, entries, held):
                    sent += accepted
        except PeerCallError as e:
            # the origins' periodic republish repairs what could not be handed off now
            log.debug("handoff to %s failed: %s", url, e)
            self.failed += 1
        return sent
