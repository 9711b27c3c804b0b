"""Graceful degradation: when every replica of a query term is down, global search
answers with the other terms and names the one it skipped (JSON API, web UI).

Real peers in one process on 127.0.0.1 (make_network); the replicas of one term
are stopped the way a crashed peer stops: DHT and HTTP site gone, no goodbye.
"""

from __future__ import annotations

import contextlib

from bs4 import BeautifulSoup

from yasearch.analysis import analyze
from yasearch.crawler.types import CrawlSpec
from yasearch.peer import Peer

WORDS = "apple river mountain forest ocean castle engine garden window silver copper marble thunder lantern".split()


def pages() -> dict[str, str]:
    out = {"/": "<html><body>" + " ".join(f'<a href="/p{i}">p{i}</a>' for i in range(12)) + "</body></html>"}
    for i in range(12):
        body = " ".join(WORDS) + " " + " ".join(WORDS[: 1 + i % len(WORDS)])
        out[f"/p{i}"] = f"<html><head><title>page {i}</title></head><body><p>{body}</p></body></html>"
    return out


async def replicas(peer: Peer, term: str) -> set[bytes]:
    return {c.node_id for c in await peer.resolver.responsible(term, skip_failed=False)}


async def test_a_term_whose_replicas_are_all_down_is_skipped_and_named(make_network, make_server, static_site, http) -> None:
    peers = await make_network([f"d{i}" for i in range(6)], replication=2, search_budget=10.0)
    crawler, searcher = peers[0], peers[-1]
    site = await static_site(pages())
    job = await crawler.start_crawl(CrawlSpec(urls=[site.url + "/"], depth=1, max_pages=20, delay=0.0))
    await crawler.jobs.wait(job.id)
    for p in peers:
        await p.settle()
    await searcher.dht.refresh_info()
    spared = {crawler.identity.node_id, searcher.identity.node_id}
    terms = [analyze(w)[0] for w in WORDS]
    reps = {t: await replicas(searcher, t) for t in terms}
    # a term to lose (replicas neither the crawler nor the searcher) and one kept (other replicas)
    lose = next(t for t in terms if not reps[t] & spared)
    keep = next(t for t in terms if t != lose and not reps[t] & reps[lose])
    query = f"{keep} {lose}"
    before = await searcher.search(query, scope="global", limit=20)
    alone = await searcher.search(keep, scope="global", limit=20)
    assert before.total == alone.total == 12 and before.skipped_terms == []

    dead = [p for p in peers if p.identity.node_id in reps[lose]]
    for p in dead:
        await p.dht.stop()
        await make_server.of(p).close_site()
    after = await searcher.search(query, scope="global", limit=20)
    assert after.skipped_terms == [lose]
    assert {h.url for h in after.results} == {h.url for h in alone.results}
    assert after.peers["failed"] >= len(dead)

    async with http.get(searcher.url + "/api/v1/search", params={"q": query, "scope": "global"}) as r:
        body = await r.json()
    assert body["skipped_terms"] == [lose] and body["total"] == 12
    async with http.get(searcher.url + "/search", params={"q": query, "scope": "global"}) as r:
        soup = BeautifulSoup(await r.text(), "html.parser")
    note = soup.select_one("#skipped-terms")
    assert note is not None and lose in note.get_text()
    for p in dead:  # half-stopped: stopping them may fail
        with contextlib.suppress(Exception):
            await p.stop()


async def test_a_global_query_takes_at_most_two_round_trips(make_network, static_site) -> None:
    """Once routing is cached: one round trip for one term (its replica sends the top
    postings with their records), two for more (the candidates' other postings and the
    page's records in the second); the answer ranks like the crawler's own index."""
    peers = await make_network([f"r{i}" for i in range(4)], replication=2, search_budget=10.0)
    crawler, searcher = peers[0], peers[-1]
    site = await static_site(pages())
    job = await crawler.start_crawl(CrawlSpec(urls=[site.url + "/"], depth=1, max_pages=20, delay=0.0))
    await crawler.jobs.wait(job.id)
    for p in peers:
        await p.settle()
    for p in peers:
        await p.dht.refresh_info()
    terms = [analyze(w)[0] for w in WORDS]
    for q in (terms[0], terms[1], f"{terms[0]} {terms[3]}", f"{terms[1]} {terms[2]} {terms[4]}"):
        await searcher.search(q, scope="global")  # routing cached
        got = await searcher.search(q, scope="global", limit=5)
        want = await crawler.search(q, scope="local", limit=5)
        assert got.round_trips == (1 if " " not in q else 2), q
        assert [h.url for h in got.results] == [h.url for h in want.results], q
        assert got.total == want.total == 12 and got.skipped_terms == []


async def test_a_relaxed_query_counts_the_round_trips_of_its_words(make_network, static_site) -> None:
    peers = await make_network([f"x{i}" for i in range(3)], replication=2)
    site = await static_site(pages())
    job = await peers[0].start_crawl(CrawlSpec(urls=[site.url + "/"], depth=1, max_pages=20, delay=0.0))
    await peers[0].jobs.wait(job.id)
    for p in peers:
        await p.settle()
    q = f"{analyze(WORDS[0])[0]} zzzunknownword"
    await peers[-1].search(q, scope="global")
    got = await peers[-1].search(q, scope="global")
    # AND (1: one term is unknown, nothing to check), the words side by side (1 each), their postings (1)
    assert got.relaxed and got.round_trips == 3
