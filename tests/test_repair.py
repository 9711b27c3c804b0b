"""Repair after failures: the survivors restore r live copies of every term they hold.

Real peers in one process (UDP Kademlia, HTTP p2p on 127.0.0.1). A peer "dies" by
losing its UDP socket and its HTTP site at once, without a word to anyone. The
membership's grace period is an hour, so nothing but the liveness checks and the
repair they start (:mod:`yasearch.repair`) can notice the dead in time.
"""

from __future__ import annotations

import contextlib

from peerutil import eventually, linked_pages
from yasearch.analysis import analyze, term_key
from yasearch.handoff import closest
from yasearch.peer import Peer

WORDS = ("apple river mountain forest ocean castle engine garden window silver copper marble thunder lantern "
         "harbor meadow canyon glacier volcano desert island valley prairie falcon otter badger heron salmon").split()


async def die(make_server, peer: Peer) -> None:
    await peer.dht.stop()
    await make_server.of(peer).close_site()


def replicas(peers: list[Peer], term: str, r: int = 3) -> list[Peer]:
    by_id = {p.identity.node_id: p for p in peers}
    return [by_id[n] for n in closest(set(by_id), term_key(term), r)]


async def test_survivors_restore_every_replica_of_a_term_after_two_of_its_three_holders_die(
        make_network, make_server, crawl_site) -> None:
    peers = await make_network([f"p{i}" for i in range(8)], replication=3, membership_grace=3600.0)
    origin, searcher = peers[0], peers[1]
    url = await crawl_site(origin, linked_pages(len(WORDS), WORDS))
    for p in peers:
        await p.settle()
    # a word on one page each, two of whose three holders are neither origin nor searcher
    term = next(t for t in (analyze(w)[0] for w in WORDS)
                if len([p for p in replicas(peers, t) if p not in (origin, searcher)]) >= 2)
    holders = replicas(peers, term)
    assert [(await p.shard.df([term]))[term] for p in holders] == [1, 1, 1]
    victims = [p for p in holders if p not in (origin, searcher)][:2]
    for p in victims:
        await die(make_server, p)
    live = [p for p in peers if p not in victims]

    async def repaired() -> bool:
        return [(await p.shard.df([term]))[term] for p in replicas(live, term)] == [1, 1, 1]

    await eventually(repaired, timeout=90.0)
    # the searcher routes around the dead and finds the page (the origin answers for it)
    i = next(i for i, w in enumerate(WORDS) if analyze(w)[0] == term)
    got = await searcher.search(term, scope="global")
    assert [h.url for h in got.results] == [url + ("/" if i == 0 else f"/p{i}")]
    # every survivor knows who is gone: publishing and queries leave them out

    async def known_gone() -> bool:
        return all({v.identity.node_id for v in victims} <= p.resolver.gone() for p in live)

    await eventually(known_gone, timeout=30.0)
    for p in victims:
        with contextlib.suppress(Exception):
            await p.stop()


async def test_the_origin_sends_again_what_no_surviving_holder_has(make_network, make_server, crawl_site) -> None:
    peers = await make_network([f"p{i}" for i in range(8)], replication=3, membership_grace=3600.0)
    origin, searcher = peers[0], peers[1]
    url = await crawl_site(origin, linked_pages(len(WORDS), WORDS))
    for p in peers:
        await p.settle()
    # a word whose three holders are all neither origin nor searcher: all three die
    i, term = next((i, analyze(w)[0]) for i, w in enumerate(WORDS)
                   if not {origin, searcher} & set(replicas(peers, analyze(w)[0])))
    victims = replicas(peers, term)
    for p in victims:
        await die(make_server, p)
    live = [p for p in peers if p not in victims]

    async def repaired() -> bool:
        return [(await p.shard.df([term]))[term] for p in replicas(live, term)] == [1, 1, 1]

    await eventually(repaired, timeout=90.0)
    # once the searcher, too, has found the three dead, it asks the new replicas

    async def searcher_knows() -> bool:
        return {v.identity.node_id for v in victims} <= searcher.resolver.gone()

    await eventually(searcher_knows, timeout=30.0)
    got = await searcher.search(term, scope="global")
    assert [h.url for h in got.results] == [url + ("/" if i == 0 else f"/p{i}")]
    for p in victims:
        with contextlib.suppress(Exception):
            await p.stop()


async def test_a_peer_whose_pings_go_unanswered_but_whose_http_answers_is_not_dead(make_network) -> None:
    """A loaded peer can miss its UDP pings and still be there: before a peer counts
    as dead, its HTTP server is asked too."""
    peers = await make_network([f"p{i}" for i in range(4)], replication=3, membership_grace=3600.0)
    mute = peers[3]
    await mute.dht.stop()  # no UDP any more; its HTTP server still answers
    others = peers[:3]

    async def checked() -> bool:
        return all(p.liveness.busy > 0 for p in others)

    await eventually(checked, timeout=60.0)
    assert all(mute.identity.node_id not in p.resolver.gone() for p in others)
    assert all(p.liveness.found_dead == 0 for p in others)
    with contextlib.suppress(Exception):  # half-stopped: stopping it may fail
        await mute.stop()
