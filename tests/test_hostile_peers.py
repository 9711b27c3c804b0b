"""Hostile peers over HTTP: forged origins, invented records, lying figures, huge replies.

Real peers on loopback (``make_network``): X crawls a page and publishes it; the
other peers hold its postings (three peers, three replicas: everybody holds
everything). The forger Y is a stranger with its own key posting raw HTTP to a
holder, or a fake peer (an aiohttp app) answering a real peer's calls. Each test
asserts the outcome: refused, nothing stored, results unchanged, bytes bounded.
"""

from __future__ import annotations

import gzip
import time
from typing import Any

import pytest
from aiohttp import web

import forger
from peerutil import assert_json_error
from yasearch.analysis import analyze
from yasearch.identity import Identity
from yasearch.netsearch import GlobalSearch, _Tally
from yasearch.network import Contact, PeerCallError
from yasearch.peer import Peer
from yasearch.records import Posting
from yasearch.wire import LookupReply, LookupRequest, WirePosting, encode, sign

PAGE = {"/": "<html><head><title>walrus harbor</title></head><body>the walrus sleeps in the harbor</body></html>"}
WALRUS = analyze("walrus")[0]
PHISH = "http://phish.example/login"


@pytest.fixture
async def net(make_network, crawl_site) -> dict[str, Any]:
    """X crawled one page and published it to every peer; ``doc`` is its id."""
    x, holder, searcher = await make_network(["x", "holder", "searcher"])
    url = await crawl_site(x, PAGE)
    await x.settle()
    [posting] = await holder.shard.top(WALRUS, 10)
    assert (await searcher.search("walrus")).results[0].url == url + "/"
    return {"x": x, "holder": holder, "searcher": searcher, "url": url + "/", "doc": posting.doc_id, "posting": posting}


async def held(peer: Peer, doc: str) -> tuple[list[Posting], str, str, str]:
    rec = (await peer.shard.docs([doc]))[doc]
    return await peer.shard.postings_for(WALRUS, [doc]), rec.url, rec.title, rec.origin


async def post(http, peer: Peer, path: str, body: bytes) -> Any:
    async with http.post(peer.url + "/p2p/v1/" + path, data=body) as r:
        return r.status, await r.json()


async def test_a_stranger_cannot_overwrite_a_record_with_a_phishing_url(net, http) -> None:
    holder, doc, x = net["holder"], net["doc"], net["x"]
    before = await held(holder, doc)
    y = Identity.generate()
    # X's doc id under a phishing URL, claimed as X's but signed by Y
    forged = forger.record(y, PHISH, doc_id=doc, origin=x.peer_id, forge=True)
    status, _ = await post(http, holder, "docs", forger.docs(y, [forged]))
    assert status == 403
    # X's real URL with a lying title and a newer crawl, claimed as X's, signed by Y
    lying = forger.record(y, net["url"], origin=x.peer_id, title="log in here", crawled_at=time.time(), forge=True)
    status, _ = await post(http, holder, "docs", forger.docs(y, [lying]))
    assert status == 403
    # signed by Y as Y's: the id is not the hash of the URL
    status, _ = await post(http, holder, "docs", forger.docs(y, [forger.record(y, PHISH, doc_id=doc)]))
    assert status == 403
    # Y's own record of X's real URL (a lying title): Y holds no posting of it, X does
    status, reply = await post(http, holder, "docs", forger.docs(y, [forger.record(y, net["url"], title="log in here")]))
    assert status == 200 and reply["stored"] == 0
    assert await held(holder, doc) == before
    hit = (await net["searcher"].search("walrus")).results[0]
    assert (hit.url, hit.title, hit.origin) == (net["url"], "walrus harbor", x.peer_id)


async def test_a_stranger_cannot_take_over_a_posting(net, http) -> None:
    holder, doc, x = net["holder"], net["doc"], net["x"]
    before = await held(holder, doc)
    y = Identity.generate()
    takeover = [(WALRUS, doc, 10_000_000, 0xFF, 10_000_000)]
    async with http.post(holder.url + "/p2p/v1/postings", data=forger.postings(y, takeover, origin=x.peer_id)) as r:
        await assert_json_error(r, 403, "bad_signature")
    status, reply = await post(http, holder, "postings", forger.postings(y, takeover))
    assert status == 429 or reply["accepted"] == 0
    assert reply["refused_owner"] == 1
    # tf beyond the document's length is refused whole, whoever signs it
    async with http.post(holder.url + "/p2p/v1/postings", data=forger.postings(y, [(WALRUS, "c" * 40, 11, 0, 10)])) as r:
        await assert_json_error(r, 400)
    assert await held(holder, doc) == before
    assert (await net["searcher"].search("walrus")).total == 1


async def test_a_stranger_cannot_withdraw_anothers_postings(net, http) -> None:
    holder, doc, x = net["holder"], net["doc"], net["x"]
    y = Identity.generate()
    async with http.post(holder.url + "/p2p/v1/withdraw", data=forger.withdraw(y, [doc], origin=x.peer_id)) as r:
        await assert_json_error(r, 403, "bad_signature")
    status, reply = await post(http, holder, "withdraw", forger.withdraw(y, [doc]))
    assert (status, reply["removed"]) == (200, 0)
    assert (await holder.shard.df([WALRUS]))[WALRUS] == 1
    assert (await net["searcher"].search("walrus")).total == 1


async def test_a_holder_cannot_invent_or_alter_records_of_others(net, make_peer, aiohttp_server) -> None:
    """A fake holder answers a lookup with a record of X's document: invented (signed
    by the fake, claiming X) or X's real one with the URL changed. Either reply is
    a failed call, so nothing of it can reach a result page."""
    x, doc = net["x"], net["doc"]
    real = (await net["holder"].shard.signed_docs([doc]))[doc]
    y = Identity.generate()
    from msgspec.structs import replace

    invented = replace(sign(replace(real, origin=y.hex, title="log in here"), y), origin=x.peer_id)
    altered = replace(real, url=PHISH)
    reply: dict[str, Any] = {}

    async def lookup(request: web.Request) -> web.Response:
        body = LookupReply(df={WALRUS: 1}, postings={WALRUS: [WirePosting.of(net["posting"])]}, docs={doc: reply["rec"]})
        return web.Response(body=encode(body), content_type="application/json")

    app = web.Application()
    app.router.add_post("/p2p/v1/lookup", lookup)
    server = await aiohttp_server(app)
    fake = Contact(b"\x02" * 20, f"http://127.0.0.1:{server.port}")
    asker = net["searcher"]
    for rec in (invented, altered):
        reply["rec"] = rec
        with pytest.raises(PeerCallError, match="invalid reply"):
            await asker.p2p.lookup(fake, LookupRequest(terms=[WALRUS], candidates=[doc], records=True))
    reply["rec"] = real  # the genuine record passes
    got = await asker.p2p.lookup(fake, LookupRequest(terms=[WALRUS], candidates=[doc], records=True))
    assert got.docs[doc].url == net["url"]


async def test_handoff_forwards_the_origins_signed_batches(net, make_peer, tmp_path) -> None:
    """A new holder receives X's postings and record from a holder (not from X),
    as X signed them: they pass the same checks as X's own publish."""
    x, holder = net["x"], net["holder"]
    await x.stop()  # X is gone: only holders can hand its page on
    # and only one holder: X signed a batch per holder, microseconds apart, so a copy
    # the other holder hands on by itself first makes ours an older replay (skipped)
    await net["searcher"].stop()
    newcomer = await make_peer(tmp_path / "newcomer", name="newcomer")
    await newcomer.join([("127.0.0.1", holder.port)])
    await holder.join([("127.0.0.1", newcomer.port)])
    sent = await holder.handoff._send(newcomer.identity.node_id, [WALRUS])
    assert sent == 1
    assert await newcomer.shard.postings_for(WALRUS, [net["doc"]]) == [net["posting"]]
    rec = (await newcomer.shard.docs([net["doc"]]))[net["doc"]]
    assert (rec.url, rec.origin) == (net["url"], x.peer_id)


async def test_a_peer_announcing_2_53_documents_cannot_move_n(make_network, crawl_site) -> None:
    peers = await make_network(["a", "b", "liar", "searcher"])
    for p in peers[:2]:
        await crawl_site(p, PAGE)
    searcher = peers[3]
    for p in peers:
        await p.dht.refresh_info()
    honest_n, _ = searcher.network_totals()
    peers[2].index.doc_count = lambda: 2**53  # type: ignore[method-assign]
    peers[2].reporter.total_length = 2**53
    await peers[2].dht.refresh_info()
    await searcher.dht.refresh_info()
    assert searcher.dht.info_of(peers[2].identity.node_id)["documents"] == 2**53
    n, total = searcher.network_totals()
    assert n <= honest_n + 1_000 and total <= honest_n * 20_000 + 1_000 * 20_000


async def test_a_170_term_query_asks_for_at_most_16_terms(net) -> None:
    searcher = net["searcher"]
    searcher.global_search.hedge_after = 60.0  # no hedged second asks, however slow a loaded machine answers
    before = searcher.transport.requests + searcher.p2p.local_calls
    words = " ".join(f"word{i}" for i in range(170))
    await searcher.search(words)
    asked = searcher.transport.requests + searcher.p2p.local_calls - before
    assert asked <= 16 * 2, asked  # df and (at most) postings per term


async def test_an_oversized_or_inflating_reply_is_a_failed_peer(make_peer, aiohttp_server) -> None:
    bomb = gzip.compress(b" " * (64 * 1024 * 1024), 9)  # ~64 KB on the wire, 64 MB inflated

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b" " * (9 * 1024 * 1024), content_type="application/json")

    async def inflating(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    app = web.Application()
    app.router.add_post("/huge/p2p/v1/lookup", huge)
    app.router.add_post("/bomb/p2p/v1/lookup", inflating)
    server = await aiohttp_server(app)
    peer = await make_peer()
    for path in ("huge", "bomb"):
        fake = Contact(b"\x03" * 20, f"http://127.0.0.1:{server.port}/{path}")
        with pytest.raises(PeerCallError, match="larger than"):
            await peer.p2p.lookup(fake, LookupRequest(terms=[WALRUS]))
    assert peer.transport.failures == 2


@pytest.mark.parametrize("liar_first", [True, False])
async def test_an_implausible_df_is_checked_against_a_second_replica(liar_first: bool) -> None:
    """A replica answering df = 10**15 where N is 100 is checked against the next
    replica and the smaller taken; a plausible df costs no second request."""
    liar, honest = Contact(b"\x04" * 20, "http://liar"), Contact(b"\x05" * 20, "http://honest")
    order = [liar, honest] if liar_first else [honest, liar]
    asked: list[Contact] = []

    class Resolver:
        async def responsible(self, term: str, *, skip_failed: bool = True) -> list[Contact]:
            return order

        def mark_dead(self, c: Contact) -> None:
            pass

    class Client:
        async def lookup(self, c: Contact, req: LookupRequest) -> LookupReply:
            asked.append(c)
            return LookupReply(df={req.terms[0]: 10**15 if c is liar else 7}, postings={})

    search = GlobalSearch(
        "00" * 20, Resolver(), Client(), None, url_of=lambda _: None,  # type: ignore[arg-type]
        network_totals=lambda: (100, 1000), hedge_after=5.0,
    )
    assert await search._df(_Tally(), ["walrus"]) == {"walrus": 7}
    assert asked == ([liar, honest] if liar_first else [honest])


def test_signed_messages_expire_and_cannot_come_from_the_future() -> None:
    from yasearch.wire import BadMessage, PostingsRequest, decode

    key = Identity.generate()
    for at in (time.time() - 31 * 86400, time.time() + 3600):
        with pytest.raises(BadMessage, match="too old or in the future"):
            decode(forger.postings(key, [("t", "c" * 40, 1, 0, 5)], signed_at=at), PostingsRequest)
