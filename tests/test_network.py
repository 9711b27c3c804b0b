"""The network: postings published over the DHT, global search ranks like one big index.

Real peers in one process, talking over real UDP (Kademlia) and HTTP (p2p API)
on 127.0.0.1. Five peers crawl disjoint sites; a sixth that crawled nothing must
answer like one peer that crawled everything.
"""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path

import pytest

from yasearch.crawler.types import CrawlSpec
from peerutil import StaticSite, assert_json_error
import forger
from yasearch.analysis import analyze
from yasearch.identity import Identity
from yasearch.network import Contact, PeerCallError
from yasearch.peer import Peer
from yasearch.wire import LookupRequest, PostingEntry, PostingsRequest, WirePosting, WireRecord, sign

WORDS = (
    "apple river mountain forest ocean castle engine garden window silver copper marble "
    "thunder lantern harbor meadow canyon glacier volcano desert island valley prairie "
    "falcon otter badger heron salmon walrus beetle spider lizard turtle parrot dolphin "
    "violin trumpet guitar piano cello harp flute drum organ banjo "
    "pepper ginger cinnamon saffron vanilla nutmeg clove basil thyme mint "
    "granite basalt quartz amber coral pearl ivory jade onyx ruby "
    "comet planet nebula galaxy meteor quasar pulsar orbit crater eclipse"
).split()
TERMS = [analyze(w)[0] for w in WORDS]
SITES = 5
PAGES_PER_SITE = 30


def make_site_pages(site_no: int, rng: random.Random) -> dict[str, str]:
    """A root page linking to every page; pages of Zipf-ish random words."""
    pages: dict[str, str] = {}
    links = []
    for i in range(PAGES_PER_SITE):
        weights = [1.0 / (1 + k) for k in range(len(WORDS))]
        title = " ".join(rng.choices(WORDS, weights=weights, k=3))
        body = " ".join(rng.choices(WORDS, weights=weights, k=rng.randint(30, 120)))
        path = f"/s{site_no}/doc{i}"
        links.append(f'<a href="{path}">{path}</a>')
        pages[path] = f"<html><head><title>{title}</title></head><body><h2>{rng.choice(WORDS)}</h2><p>{body}</p></body></html>"
    pages["/"] = "<html><head><title>index</title></head><body>" + " ".join(links) + "</body></html>"
    return pages


@pytest.fixture
async def sites(static_site) -> list[StaticSite]:
    rng = random.Random(1234)
    return [await static_site(make_site_pages(i, rng)) for i in range(SITES)]


@pytest.fixture
def start_peers(make_network):
    """``await start_peers(n, **config)``: n joined peers named p0, p1, ..."""

    async def start(n: int, **config: object) -> list[Peer]:
        return await make_network([f"p{i}" for i in range(n)], **config)

    return start


async def crawl(peer: Peer, url: str):
    job = await peer.start_crawl(CrawlSpec(urls=[url + "/"], depth=1, max_pages=PAGES_PER_SITE + 1, delay=0.0))
    await peer.jobs.wait(job.id)
    return job


def queries() -> list[str]:
    rng = random.Random(99)
    qs = [w for w in WORDS[:20]]
    qs += [" ".join(rng.sample(WORDS[:30], 2)) for _ in range(15)]
    qs += [" ".join(rng.sample(WORDS[:12], 3)) for _ in range(5)]
    return qs


def top(resp, k: int = 10) -> list[tuple[str, float]]:
    return [(h.url, round(h.score, 6)) for h in resp.results[:k]]


async def test_global_search_ranks_like_one_big_index(start_peers, tmp_path: Path, sites: list[StaticSite], make_peer) -> None:
    peers = await start_peers(SITES + 1)
    reference = await make_peer(tmp_path / "reference")
    jobs = [await crawl(p, s.url) for p, s in zip(peers, sites)]
    for s in sites:
        await crawl(reference, s.url)
    for p in peers:
        await p.settle()
    # every crawled page was published to all its terms' responsible peers
    assert [j.progress.published for j in jobs] == [j.progress.indexed for j in jobs] == [PAGES_PER_SITE + 1] * SITES
    await reference.index.flush()
    searcher = peers[-1]
    assert searcher.index.doc_count() == 0
    await searcher.dht.refresh_info()  # current document counts for N
    n_docs, _ = searcher.network_totals()
    assert n_docs == reference.index.doc_count() == SITES * (PAGES_PER_SITE + 1)

    compared = 0
    for q in queries():
        want = await reference.search(q, scope="local", limit=10)
        got = await searcher.search(q, scope="global", limit=10)
        assert got.total == want.total, q
        assert top(got) == top(want), q
        assert got.peers["answered"] >= 1 and got.peers["failed"] == 0
        compared += 1 if want.total else 0
    assert compared >= 30

    # phrases, exclusions and site: filters: applied the same way across the network
    body_words = [w for w in WORDS if w in sites[2].pages["/s2/doc3"]]
    page3 = sites[2].pages["/s2/doc3"].split("<p>")[1].split("</p>")[0].split()
    special = [
        f'"{page3[4]} {page3[5]}"',
        f'"{page3[10]} {page3[11]} {page3[12]}"',
        f"{body_words[0]} site:127.0.0.1",
    ]
    everything = (await reference.search(WORDS[0], scope="local", limit=1)).total
    for w in WORDS[25:]:  # an exclusion that removes some documents, not all
        n = (await reference.search(f"{WORDS[0]} -{w}", scope="local", limit=1)).total
        if 0 < n < everything:
            special.append(f"{WORDS[0]} -{w}")
            break
    assert len(special) == 4
    # relaxed AND (a word no page has, too few pages with all words) ranks alike too
    relaxed = [f"{WORDS[0]} zzzunknownword", f"{WORDS[1]} {WORDS[40]} {WORDS[70]} zzzunknownword"]
    for q in relaxed:
        want = await reference.search(q, scope="local", limit=10)
        got = await searcher.search(q, scope="global", limit=10)
        assert want.relaxed and got.relaxed and want.total > 0, q
        assert got.total == want.total, q
        assert top(got) == top(want), q
    for q in special:
        want = await reference.search(q, scope="local", limit=10)
        got = await searcher.search(q, scope="global", limit=10)
        assert want.total > 0, q
        assert got.total == want.total, q
        assert top(got) == top(want), q
    # remote results carry real snippets from their origin, highlighted here
    got = await searcher.search(f'"{page3[4]} {page3[5]}"', scope="global")
    assert all("<mark>" in h.snippet_html for h in got.results)
    assert all(h.origin not in ("", "local") for h in got.results)


async def test_replicas_survive_two_dead_peers(start_peers, make_server, sites: list[StaticSite]) -> None:
    # a generous budget: the first lookups after the deaths wait out RPC timeouts to the
    # dead, which on a loaded machine can use up the default 2 s (this test is about
    # replicas, not speed)
    peers = await start_peers(6, replication=3, search_budget=10.0)
    for p, s in zip(peers[:3], sites[:3]):
        await crawl(p, s.url)
    for p in peers:
        await p.settle()
    searcher = peers[5]
    await searcher.dht.refresh_info()
    before = {q: await searcher.search(q, limit=100) for q in WORDS[:10]}
    # two peers die without a word (not the searcher): every document is still found
    for p in (peers[1], peers[3]):
        await p.dht.stop()
        await make_server.of(p).close_site()
    for q, want in before.items():
        got = await searcher.search(q, limit=100)
        assert {h.url for h in got.results} == {h.url for h in want.results}, q
    for p in (peers[1], peers[3]):  # the killed ones are half-stopped: stopping them may fail
        with contextlib.suppress(Exception):
            await p.stop()


async def test_recrawled_page_withdraws_its_old_terms(start_peers, static_site) -> None:
    old = {"/": "<html><head><title>first version</title></head><body>walrus saffron</body></html>"}
    site = await static_site(old)
    peers = await start_peers(4)
    origin, searcher = peers[0], peers[3]
    await crawl(origin, site.url)
    await origin.settle()
    assert (await searcher.search("walrus")).total == 1
    site.pages["/"] = "<html><head><title>second version</title></head><body>otter ginger</body></html>"
    await crawl(origin, site.url)
    await origin.settle()
    for p in peers:
        assert (await p.shard.df(["walrus"]))["walrus"] == 0, "old term still held somewhere"
    assert (await searcher.search("walrus")).total == 0
    assert (await searcher.search("otter")).total == 1


@pytest.mark.parametrize(
    "path, body, status",
    [
        ("/p2p/v1/postings", b"not json", 400),
        ("/p2p/v1/postings", b"[]", 400),
        ("/p2p/v1/postings", b'{"origin": "zz", "postings": []}', 400),
        ("/p2p/v1/postings", b'{"origin": "' + b"a" * 40 + b'", "postings": [["t", ["x", 1, 0, 5]]]}', 400),
        ("/p2p/v1/postings", b'{"origin": "' + b"a" * 40 + b'", "postings": [["t", ["' + b"b" * 40 + b'", "1", 0, 5]]]}', 400),
        ("/p2p/v1/postings", b'{"origin": "' + b"a" * 40 + b'", "postings": [["' + b"t" * 65 + b'", ["' + b"b" * 40 + b'", 1, 0, 5]]]}', 400),
        ("/p2p/v1/postings", b'{"v": 9, "origin": "' + b"a" * 40 + b'", "postings": []}', 400),
        ("/p2p/v1/lookup", b'{"terms": "apple"}', 400),
        ("/p2p/v1/lookup", b'{"terms": ["apple"], "m": -1}', 400),
        ("/p2p/v1/withdraw", b'{"origin": "' + b"a" * 40 + b'", "doc_ids": [1]}', 400),
        ("/p2p/v1/docs", b'{"origin": "' + b"a" * 40 + b'", "docs": [{"doc_id": "' + b"b" * 40 + b'", "url": "javascript:alert(1)"}]}', 400),
        # numbers no type holds, JSON nested deeper than any decoder goes, lists over their limits
        ("/p2p/v1/lookup", b'{"terms": ["apple"], "m": 1' + b"0" * 400 + b"}", 400),
        ("/p2p/v1/docs", b'{"origin": "' + b"a" * 40 + b'", "docs": [{"doc_id": "' + b"b" * 40 + b'", "url": "http://x/", "crawled_at": 1e400}]}', 400),
        ("/p2p/v1/lookup", b'{"terms": ["apple"], "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", 400),
        ("/p2p/v1/lookup", b'{"terms": [' + b",".join([b'"apple"'] * 17) + b"]}", 413),
        ("/p2p/v1/verify", b'{"doc_ids": [' + b",".join([b'"' + b"b" * 40 + b'"'] * 201) + b"]}", 413),
        ("/p2p/v1/withdraw", b'{"origin": "' + b"a" * 40 + b'", "doc_ids": [], "terms": {"' + b"b" * 40 + b'": [' + b",".join([b'"t"'] * 5001) + b"]}}", 413),
    ],
)
async def test_hostile_p2p_requests_change_nothing(peer, http, path: str, body: bytes, status: int) -> None:
    async with http.post(peer.url + path, data=body) as r:
        await assert_json_error(r, status)
    stats = await peer.shard.stats()
    assert stats["postings"] == 0 and stats["docs"] == 0


async def test_oversized_and_quota_exceeding_publishers_are_refused(peer, http) -> None:
    peer.shard.quota_per_origin = 10
    key = Identity.generate()
    origin = key.hex
    huge = b'{"origin": "' + origin.encode() + b'", "postings": [' + b",".join([b'["t", ["' + b"b" * 40 + b'", 1, 0, 5]]'] * 60000) + b"]}"
    async with http.post(peer.url + "/p2p/v1/postings", data=huge) as r:
        assert r.status == 413
    entries = [(f"term{i}", "c" * 40, 1, 0, 5) for i in range(25)]
    async with http.post(peer.url + "/p2p/v1/postings", data=forger.postings(key, entries)) as r:
        assert r.status == 200
        reply = await r.json()
    assert reply["accepted"] == 10 and reply["refused_quota"] == 15
    async with http.post(peer.url + "/p2p/v1/postings", data=forger.postings(key, entries[20:])) as r:
        assert r.status == 429
    assert (await peer.shard.stats())["postings"] == 10


async def eventually(check, timeout: float = 20.0) -> None:
    """Poll real state until ``check()`` holds (membership changes arrive by UDP)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_joining_peer_receives_the_postings_it_is_responsible_for(start_peers, tmp_path: Path, sites: list[StaticSite], make_peer) -> None:
    peers = await start_peers(4, replication=2)
    for p, s in zip(peers[:2], sites[:2]):
        await crawl(p, s.url)
    for p in peers:
        await p.settle()
    newcomer = await make_peer(tmp_path / "newcomer", name="newcomer", replication=2)
    await newcomer.join([("127.0.0.1", peers[0].port)])
    everyone = [*peers, newcomer]
    for p in everyone:
        await p.join([("127.0.0.1", newcomer.port)])

    # terms whose 2 closest peers now include the newcomer must reach it
    async def handed_off() -> bool:
        for p in peers:
            await p.settle()
        mine = [t for t in TERMS if newcomer.contact() in await newcomer.resolver.responsible(t)]
        assert mine, "the newcomer is responsible for nothing; pick more words"
        held = await newcomer.shard.df(mine)
        a = await peers[0].index.collection_stats(mine)
        b = await peers[1].index.collection_stats(mine)
        return all(held[t] == a.df[t] + b.df[t] for t in mine)

    await eventually(handed_off)
    for w in WORDS[:10]:
        want = await peers[0].search(w, limit=100)
        got = await newcomer.search(w, limit=100)
        assert {h.url for h in got.results} == {h.url for h in want.results}, w


async def test_restarted_peer_keeps_id_and_shard_and_rejoins(start_peers, tmp_path: Path, sites: list[StaticSite], make_peer) -> None:
    peers = await start_peers(3)
    await crawl(peers[0], sites[0].url)
    for p in peers:
        await p.settle()
    victim = peers[2]
    held = (await victim.shard.stats())["postings"]
    assert held > 0
    node_id, port = victim.peer_id, victim.port
    await victim.stop()
    again = await make_peer(tmp_path / "peer2", port=port)  # no bootstrap given: re-joins from neighbours.json
    peers[2] = again
    assert again.peer_id == node_id
    assert (await again.shard.stats())["postings"] == held

    async def rejoined() -> bool:
        return len(again.dht.known_peers()) >= 2

    await eventually(rejoined)
    assert (await again.search(WORDS[0])).total == (await peers[0].search(WORDS[0], scope="local")).total


async def test_holders_hand_off_when_the_origin_is_gone(start_peers, tmp_path: Path, sites: list[StaticSite], make_peer) -> None:
    """A peer joining after the origin left still gets the postings it is now responsible for."""
    peers = await start_peers(4, replication=2, membership_grace=1.0)
    origin = peers[0]
    await crawl(origin, sites[0].url)
    for p in peers:
        await p.settle()
    expected = await origin.index.collection_stats(TERMS)
    await origin.stop()  # the origin is gone: only the holders can hand off
    survivors = peers[1:]
    newcomer = await make_peer(tmp_path / "newcomer", name="newcomer", replication=2, membership_grace=1.0)
    await newcomer.join([("127.0.0.1", survivors[0].port)])
    for p in [*survivors, newcomer]:
        await p.join([("127.0.0.1", newcomer.port)])

    async def handed_off() -> bool:
        mine = [t for t in TERMS if expected.df[t] and newcomer.contact() in await newcomer.resolver.responsible(t)]
        assert mine, "the newcomer is responsible for nothing; pick more words"
        held = await newcomer.shard.df(mine)
        return all(held[t] == expected.df[t] for t in mine)

    await eventually(handed_off)
    assert (await newcomer.search(WORDS[0])).total == expected.df[TERMS[0]]


async def test_a_peer_answers_its_own_calls_without_http(make_peer, crawl_site) -> None:
    """A peer that is itself a responsible replica asks its own shard store in-process:
    a lone peer's global search and a publish to itself send no HTTP request."""
    peer = await make_peer()
    await crawl_site(peer, {"/": "<html><head><title>walrus harbor</title></head><body>walrus saffron</body></html>"})
    await peer.settle()
    got = await peer.search("walrus", scope="global")
    assert got.total == 1 and got.peers["answered"] == 1 and got.peers["failed"] == 0
    calls = peer.p2p.local_calls
    assert calls >= 1
    # the same holder code stores what a publish addressed to this peer carries
    entries = [PostingEntry("otter", WirePosting("c" * 40, 1, 0, 5))]
    batch = sign(PostingsRequest(origin=peer.peer_id, postings=entries, signed_at=time.time()), peer.identity)
    accepted = [n async for n in peer.p2p.place(peer.contact(), [batch], _no_records)]
    assert accepted == [1] and (await peer.shard.df(["otter"]))["otter"] == 1
    assert peer.p2p.local_calls > calls
    assert peer.transport.figures()["requests"] == 0


async def _no_records(ids: list[str]) -> list[WireRecord]:
    return []


async def test_a_hostile_reply_is_a_failed_peer(make_peer, aiohttp_server) -> None:
    """Replies are decoded into the same typed messages as requests: a reply of the
    wrong shape is a failed call, like a peer that is down."""
    from aiohttp import web

    async def hostile(request: web.Request) -> web.Response:
        return web.json_response({"df": [1, 2], "postings": {}})

    app = web.Application()
    app.router.add_post("/p2p/v1/lookup", hostile)
    server = await aiohttp_server(app)
    peer = await make_peer()
    liar = Contact(b"\x01" * 20, f"http://127.0.0.1:{server.port}")
    with pytest.raises(PeerCallError, match="invalid reply"):
        await peer.p2p.lookup(liar, LookupRequest(terms=["apple"]))
    assert peer.transport.figures()["failures"] == 1


async def test_identifiers_are_found_whole_and_by_parts_across_peers(start_peers, crawl_site) -> None:
    peers = await start_peers(3)
    url = await crawl_site(
        peers[0],
        {
            "/": '<html><head><title>Encoding</title></head><body><p>print(json.<a href="/d">dumps</a>(obj))'
                 ' turns obj into text</p><a href="/o">other</a></body></html>',
            "/o": "<html><head><title>Other</title></head><body><p>old dumps of snake_case names</p></body></html>",
            "/d": "<html><head><title>Dumps</title></head><body><p>nothing here</p></body></html>",
        },
        depth=1, max_pages=5,
    )
    for p in peers:
        await p.settle()
    searcher = peers[-1]
    await searcher.dht.refresh_info()
    got = await searcher.search("json.dumps", scope="global")
    assert got.results[0].url == url + "/"
    got = await searcher.search("dumps", scope="global")
    assert {h.url for h in got.results} == {url + "/", url + "/o", url + "/d"}
    got = await searcher.search("snake", scope="global")
    assert [h.url for h in got.results] == [url + "/o"]
    got = await searcher.search("snake_case", scope="global")
    assert [h.url for h in got.results][:1] == [url + "/o"]
