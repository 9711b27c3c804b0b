"""The peer-URL dial policy: a peer URL is whatever a stranger advertised, so every
dial of one passes the crawler's outbound policy (after DNS resolution): loopback,
private, link-local and multicast addresses are refused unless
``allow_private_networks`` is on (the tests' peers set it; these tests switch it off)."""

from __future__ import annotations

import pytest
from aiohttp import web

from yasearch.analysis import term_key
from yasearch.crawler.outbound import OutboundPolicy
from yasearch.network import Contact, PeerCallError, Transport, xor_distance
from yasearch.wire import LookupRequest, encode


@pytest.fixture
async def listener(aiohttp_server):
    """A loopback HTTP server that counts the requests it gets."""
    hits: list[str] = []

    async def any_post(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"df": {}, "postings": {}})

    app = web.Application()
    app.router.add_post("/{tail:.*}", any_post)
    server = await aiohttp_server(app)
    return server.port, hits


@pytest.mark.parametrize("host", ["0x7f000001", "127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_a_peer_url_on_loopback_is_not_dialled(listener, host: str) -> None:
    port, hits = listener
    transport = Transport(policy=OutboundPolicy())
    await transport.open()
    try:
        with pytest.raises(PeerCallError, match="blocked"):
            await transport.call(Contact(b"\x01" * 20, f"http://{host}:{port}"), "/p2p/v1/lookup", b"{}")
    finally:
        await transport.close()
    assert hits == []
    assert transport.figures()["blocked"] == 1


async def test_allow_private_networks_lets_peer_urls_on_loopback_be_dialled(listener) -> None:
    port, hits = listener
    transport = Transport(policy=OutboundPolicy(allow_private=True))
    await transport.open()
    try:
        await transport.call(Contact(b"\x01" * 20, f"http://0x7f000001:{port}"), "/p2p/v1/lookup", b"{}")
    finally:
        await transport.close()
    assert hits == ["/p2p/v1/lookup"]


async def test_a_peer_advertising_a_loopback_url_is_not_asked(make_peer) -> None:
    """Peer A (policy on) knows peer B from the DHT, whose signed info advertises
    http://127.0.0.1:P. A global search for a term B is the closest replica of asks
    B nothing; A answers from its own share instead."""
    b = await make_peer(name="b")
    a = await make_peer(name="a", allow_private_networks=False)
    await a.join([("127.0.0.1", b.port)])
    await b.join([("127.0.0.1", a.port)])
    assert a.http_url_of(b.peer_id) == b.url
    term = next(
        t for t in (f"zebra{i}" for i in range(100))
        if xor_distance(term_key(t), b.identity.node_id) < xor_distance(term_key(t), a.identity.node_id)
    )
    asked: list[LookupRequest] = []
    real = b.local.lookup

    async def counting(req: LookupRequest):
        asked.append(req)
        return await real(req)

    b.local.lookup = counting  # type: ignore[method-assign]
    resp = await a.search(term)
    assert asked == []
    assert resp.peers["failed"] >= 1
    assert a.transport.figures()["blocked"] >= 1
    # the same call through B's own policy (private allowed) does reach it
    raw = await b.transport.call(Contact(b.identity.node_id, b.url), "/p2p/v1/lookup", encode(LookupRequest(terms=[term])))
    assert raw and len(asked) == 1
