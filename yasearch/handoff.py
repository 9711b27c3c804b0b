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
from typing import TYPE_CHECKING, Any

from yasearch.analysis import term_key
from yasearch.network import Contact, PeerCallError, xor_distance
from yasearch.p2p import MAX_DOCS, MAX_POSTINGS, PROTOCOL_VERSION, posting_to_wire, record_to_wire
from yasearch.publisher import PUBLISH_TIMEOUT

if TYPE_CHECKING:
    from yasearch.peer import Peer

log = logging.getLogger(__name__)


def closest(members: set[bytes], key: bytes, r: int) -> list[bytes]:
    return sorted(members, key=lambda n: xor_distance(n, key))[:r]


class Handoff:
    def __init__(self, peer: "Peer") -> None:
        self.peer = peer
        self._members: set[bytes] | None = None
        self.sent = 0
        self.failed = 0

    async def membership_changed(self, members: set[bytes]) -> int:
        """Send held postings to peers that became responsible; returns postings sent."""
        old, self._members = self._members, set(members)
        if old is None or old == members:
            return 0
        r = self.peer.config.replication
        me = self.peer.identity.node_id
        sent = 0
        after = ""
        while True:
            terms = await self.peer.shard.terms(after, 1000)
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
        url = self.peer.http_url_of(node.hex())
        if url is None:
            return 0
        contact = Contact(node, url)
        by_origin: dict[str, list[list[Any]]] = defaultdict(list)
        for term in terms:
            for origin, p in await self.peer.shard.postings_of_term(term):
                by_origin[origin].append([term, posting_to_wire(p)])
        sent = 0
        try:
            for origin, entries in by_origin.items():
                for i in range(0, len(entries), MAX_POSTINGS):
                    chunk = entries[i : i + MAX_POSTINGS]
                    reply = await self.peer.transport.call(
                        contact,
                        "/p2p/v1/postings",
                        {"v": PROTOCOL_VERSION, "origin": origin, "postings": chunk},
                        timeout=PUBLISH_TIMEOUT,
                    )
                    sent += int(reply.get("accepted", 0))
                    missing = [d for d in reply.get("missing_docs", []) if isinstance(d, str)]
                    records = await self.peer.shard.docs(missing)
                    wire = [record_to_wire(records[d]) for d in missing if d in records]
                    for j in range(0, len(wire), MAX_DOCS):
                        await self.peer.transport.call(
                            contact,
                            "/p2p/v1/docs",
                            {"v": PROTOCOL_VERSION, "origin": origin, "docs": wire[j : j + MAX_DOCS]},
                            timeout=PUBLISH_TIMEOUT,
                        )
        except PeerCallError as e:
            # the origins' periodic republish repairs what could not be handed off now
            log.debug("handoff to %s failed: %s", url, e)
            self.failed += 1
        return sent
