"""Publishing scales with the number of peers: one request per destination, no DHT lookup per term.

Real peers in one process (UDP Kademlia, HTTP p2p on 127.0.0.1). Every holder
counts the postings requests it receives; the origin publishes forty pages of
varied words at once.
"""

from __future__ import annotations

import random
from collections import Counter

from yasearch.analysis import doc_id, term_key
from yasearch.handoff import closest
from yasearch.ranking import postings_for_document
from yasearch.records import Document
from yasearch.wire import PostingsRequest

WORDS = ("apple river mountain forest ocean castle engine garden window silver copper marble thunder lantern "
         "harbor meadow canyon glacier volcano desert island valley prairie falcon otter badger heron salmon "
         "walrus beetle spider lizard turtle parrot dolphin violin trumpet guitar piano cello harp flute").split()


def pages(n: int) -> list[Document]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        url = f"http://127.0.0.1:9/page{i}"
        out.append(Document(doc_id=doc_id(url), url=url, host="127.0.0.1:9", title=f"page {i} {rng.choice(WORDS)}",
                            body=" ".join(rng.choices(WORDS, k=60)), crawled_at=1.0))
    return out


def count_requests(peer, into: Counter, entries: Counter) -> None:
    """Make ``peer`` count the postings requests it receives (and their entries), by origin."""
    real = peer.local.postings

    async def counting(req: PostingsRequest, remote: str | None = None):
        into[peer.peer_id] += 1
        entries[peer.peer_id] += len(req.postings)
        return await real(req, remote)

    peer.local.postings = counting


async def test_a_round_sends_each_destination_one_request_with_all_its_terms(make_network) -> None:
    peers = await make_network([f"p{i}" for i in range(6)], replication=3)
    origin = peers[0]
    requests: Counter = Counter()
    entries: Counter = Counter()
    for p in peers[1:]:
        count_requests(p, requests, entries)
    docs = pages(40)
    lookups = origin.resolver.lookups
    await origin.publisher.enqueue(docs)  # one outbox write: one round carries them all
    await origin.settle()

    # where every posting belongs: the r closest of the six peers to its term's key
    ids = {p.identity.node_id: p.peer_id for p in peers}
    want: Counter = Counter()
    for d in docs:
        for term in postings_for_document(d):
            for node in closest(set(ids), term_key(term), 3):
                want[ids[node]] += 1
    destinations = {pid for pid in want if pid != origin.peer_id}
    assert len(destinations) == 5
    assert set(requests) == destinations
    # one request per destination, carrying every posting that destination holds
    assert all(requests[pid] == 1 for pid in destinations), requests
    assert {pid: entries[pid] for pid in destinations} == {pid: want[pid] for pid in destinations}
    # and the origin's own share went in one call to itself (in process, no HTTP)
    assert origin.publisher.requests == len(destinations) + (1 if want[origin.peer_id] else 0)
    # the routing table of six peers is complete: routes came from it (and one sweep of
    # four lookups that would find a peer nobody introduced), not from a lookup per group
    assert origin.resolver.lookups - lookups <= 4 < origin.resolver.table_fills
