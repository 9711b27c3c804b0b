"""An emulated internet: peers on their own addresses, one behind NAT, a WAN between them.

The namespace tests (marked ``netns``) build one lab for the module (bench.netlab):
a web host serving a small site, public peers A and B, and peer C behind a NAT
router (nftables masquerade); every peer's messages are delayed 50 ms (± 5 ms) each
way by the WAN shim (bench.wanem). They skip cleanly where namespaces are
unavailable (not root, no ``ip netns``, no ``nft``).

The other tests are plain tests of reachability (yasearch.reachability and the
client-only marker of the DHT handshake) on loopback.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from yasearch.config import Config, ConfigError
from yasearch.dht import DhtNode
from yasearch.dht.handshake import check_hello_answer, hello_answer
from yasearch.identity import Identity
from yasearch.reachability import CLIENT_ONLY, PUBLIC, UNKNOWN, Report, decide
from netns import Lab, LabPeer, get, post, serve_site, skip_without_netns, wait_for

LOOP = "127.0.0.1"
A_WORD, C_WORD, COMMON = "aardvarkian", "zeppelinish", "commonword"
PAGES_EACH = 6


def page(title: str, words: str) -> str:
    return f"<html><head><title>{title}</title></head><body><h1>{title}</h1><p>{words}</p></body></html>"


# ---------------------------------------------------------------------------
# the lab
# ---------------------------------------------------------------------------


class Internet:
    def __init__(self, lab: Lab, a: LabPeer, b: LabPeer, c: LabPeer, site: str) -> None:
        self.lab, self.a, self.b, self.c, self.site = lab, a, b, c, site
        self.peers = [a, b, c]

    def status(self, p: LabPeer) -> dict[str, Any]:
        return get(p.url + "/api/v1/status")

    def search(self, p: LabPeer, q: str) -> dict[str, Any]:
        return get(f"{p.url}/api/v1/search?q={q}&scope=global&limit=50")


def crawl(p: LabPeer, urls: list[str]) -> None:
    spec = {"urls": urls, "depth": 0, "max_pages": len(urls), "delay": 0, "same_site": True}
    post(p.url + "/api/v1/crawl", spec, headers=p.headers)


@pytest.fixture(scope="module")
def internet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Internet]:
    skip_without_netns(nat=True)
    root = tmp_path_factory.mktemp("internet")
    wan = "50,5,0"
    with Lab() as lab:
        web_host = lab.add_host("web")
        pages = {f"/a{i}.html": page(f"Page a{i}", f"{A_WORD} {COMMON} alpha{i}") for i in range(PAGES_EACH)}
        pages |= {f"/c{i}.html": page(f"Page c{i}", f"{C_WORD} {COMMON} gamma{i}") for i in range(PAGES_EACH)}
        site = serve_site(lab, web_host, root, pages)
        a = LabPeer(lab, lab.add_host("a"), root, wan=wan)
        a.start()
        wait_for("peer a", lambda: get(a.url + "/api/v1/status"), 60, [a])
        b = LabPeer(lab, lab.add_host("b"), root, bootstrap=[a], wan=wan)
        b.start()
        wait_for("peer b", lambda: get(b.url + "/api/v1/status"), 60, [b])
        c = LabPeer(lab, lab.add_nat_host("c"), root, bootstrap=[a, b], wan=wan)
        c.start()
        net = Internet(lab, a, b, c, site)
        wait_for("a and b to know each other", lambda: all(net.status(p)["peers_known"] >= 1 for p in (a, b)), 60, [a, b])
        wait_for("c to be known as client-only", lambda: all(
            any(x["reach"] == CLIENT_ONLY for x in get(p.url + "/api/v1/peers")["peers"]) for p in (a, b)
        ), 60, net.peers)
        crawl(a, [f"{site}/a{i}.html" for i in range(PAGES_EACH)])
        crawl(c, [f"{site}/c{i}.html" for i in range(PAGES_EACH)])

        def settled() -> bool:
            for p in (a, c):
                st = net.status(p)
                pub = st["publish"]
                if st["documents"] < PAGES_EACH or pub["pending"] or pub.get("published_docs", 0) < PAGES_EACH:
                    return False
            return True

        wait_for("a's and c's pages to be published", settled, 90, net.peers)
        yield net


@pytest.mark.netns
def test_peers_on_distinct_addresses_find_each_other_and_learn_they_are_public(internet: Internet) -> None:
    a, b = internet.a, internet.b
    peers_of_b = {p["name"]: p for p in get(b.url + "/api/v1/peers")["peers"]}
    assert peers_of_b["a"]["url"] == a.url and peers_of_b["a"]["reach"] == PUBLIC
    assert peers_of_b["a"]["observed"] == f"{a.host.ip}:8090"
    # b asked a to dial it back: the probe arrived, at the address a saw it at
    reach = internet.status(b)["reach"]
    assert reach["kind"] == PUBLIC and reach["checked"] and reach["observed"] == b.host.ip
    # a started alone (nobody to ask) and asked again once b was there
    wait_for("a to check its reachability", lambda: internet.status(a)["reach"]["checked"], 40, [a])
    assert internet.status(a)["reach"] == {**internet.status(a)["reach"], "kind": PUBLIC, "observed": a.host.ip}


@pytest.mark.netns
def test_the_natd_peer_runs_client_only_seen_at_its_routers_address(internet: Internet) -> None:
    c = internet.c
    reach = internet.status(c)["reach"]
    assert reach["kind"] == CLIENT_ONLY
    # nobody could dial it back; a and b both saw the router's address, so it is adopted
    assert reach["observed"] == c.host.router_ip and reach["reported"] == [c.host.router_ip]
    for p in (internet.a, internet.b):
        seen = {x["name"]: x for x in get(p.url + "/api/v1/peers")["peers"]}
        assert seen["c"]["reach"] == CLIENT_ONLY and seen["c"]["observed"].startswith(c.host.router_ip + ":")
    out = subprocess.run(
        [sys.executable, "-m", "yasearch", "status", "--peer", c.url], capture_output=True, text=True, timeout=30,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    assert f"reach      client-only, observed at {c.host.router_ip}" in out
    with pytest.raises(subprocess.CalledProcessError):  # and indeed: a public peer cannot dial it
        subprocess.run(
            ["ip", "netns", "exec", internet.a.host.ns, sys.executable, "-c",
             f"import urllib.request; urllib.request.urlopen('{c.url}/api/v1/status', timeout=3)"],
            check=True, capture_output=True, timeout=30,
        )


@pytest.mark.netns
def test_the_natd_peer_is_responsible_for_no_term(internet: Internet) -> None:
    a, b, c = internet.a, internet.b, internet.c
    st = {p.name: internet.status(p) for p in (a, b, c)}
    # in no routing table: a's one contact is b and b's is a; c's table holds both
    assert st["a"]["dht"]["contacts"] == 1 and st["b"]["dht"]["contacts"] == 1
    assert st["c"]["dht"]["contacts"] == 2
    # it holds nothing; the two public peers hold every posting of both crawlers (r = 3 > 2 peers)
    assert st["c"]["postings_held"] == 0
    assert st["a"]["postings_held"] == st["b"]["postings_held"] > 0
    assert st["a"]["postings_held"] >= st["a"]["publish"]["sent"] // 2
    with urllib.request.urlopen(a.url + "/network", timeout=30) as r:
        html = r.read().decode()
    assert "client-only" in html and c.host.router_ip in html


@pytest.mark.netns
def test_the_natd_peer_publishes_and_searches_globally(internet: Internet) -> None:
    site = internet.site
    # its pages are found from a public peer
    found = {h["url"] for h in internet.search(internet.b, C_WORD)["results"]}
    assert found == {f"{site}/c{i}.html" for i in range(PAGES_EACH)}
    # and it finds the others' pages
    found = {h["url"] for h in internet.search(internet.c, A_WORD)["results"]}
    assert found == {f"{site}/a{i}.html" for i in range(PAGES_EACH)}
    # its pages are in every df, so they count in the network's N at the public peers
    # (else a df exceeds N: wrong IDFs, and a second replica asked to check the df)
    for p in (internet.a, internet.b):
        assert internet.status(p)["network"]["documents"] == 2 * PAGES_EACH


@pytest.mark.netns
def test_a_global_query_over_the_wan_completes_with_every_match(internet: Internet) -> None:
    resp = internet.search(internet.b, f"{COMMON}")
    urls = {h["url"] for h in resp["results"]}
    assert urls == {f"{internet.site}/{g}{i}.html" for g in "ac" for i in range(PAGES_EACH)}
    assert resp["total"] == 2 * PAGES_EACH


# ---------------------------------------------------------------------------
# reachability, plain
# ---------------------------------------------------------------------------


def test_reachable_only_when_our_own_server_got_the_probe() -> None:
    one = [Report("http://p1", "198.51.100.7", "n1")]
    # a peer answered but its dial-back never arrived: client-only, address unconfirmed
    assert decide(one, {}, 8090) == (CLIENT_ONLY, None)
    # the probe arrived, for the address it was reported with
    assert decide(one, {"n1": "198.51.100.7:8090"}, 8090) == (PUBLIC, "198.51.100.7")
    # the probe arrived but named another address: reachable, the address is not believed
    assert decide(one, {"n1": "203.0.113.9:8090"}, 8090) == (PUBLIC, None)


def test_an_observed_address_needs_two_peers_or_a_dial_back() -> None:
    forged = Report("http://liar", "203.0.113.66", "n1")
    honest = [Report("http://p2", "198.51.100.7", "n2"), Report("http://p3", "198.51.100.7", "n3")]
    assert decide([forged], {}, 8090) == (CLIENT_ONLY, None)
    assert decide([forged, *honest], {}, 8090) == (CLIENT_ONLY, "198.51.100.7")
    # one peer answering twice is one peer
    twice = [Report("http://liar", "203.0.113.66", "n4"), forged]
    assert decide(twice, {}, 8090) == (CLIENT_ONLY, None)
    # a malformed address is no answer at all
    assert decide([Report("http://x", "evil.example<script>", "n5")], {}, 8090) == (UNKNOWN, None)


class UnreachingPeers:
    """A transport whose every asked peer answers, seeing us at one address, and never dials back."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def call(self, contact: Any, path: str, data: bytes, *, timeout: float | None = None) -> bytes:
        from yasearch.reachability import ReachReply
        from yasearch.wire import encode

        self.asked.append(contact.url)
        return encode(ReachReply(observed="198.51.100.7", dialed=True))  # a claim, not a probe


async def test_a_public_peer_steps_down_only_when_two_peers_cannot_reach_it() -> None:
    from yasearch.reachability import Reachability

    peers = UnreachingPeers()
    reach = Reachability(Config(host="0.0.0.0"), peers, lambda: 8090)  # type: ignore[arg-type]
    assert reach.asks and reach.kind == UNKNOWN
    # unknown: one peer that cannot dial back decides it ("dialed": true is not believed)
    assert await reach.check([("192.0.2.1", 8090)]) == CLIENT_ONLY and reach.observed is None
    reach.kind = PUBLIC  # say a later check found it reachable
    assert await reach.check([("192.0.2.1", 8090)]) == PUBLIC  # one peer is not enough to step down
    assert await reach.check([("192.0.2.1", 8090), ("192.0.2.2", 8090)]) == CLIENT_ONLY
    assert reach.observed == "198.51.100.7"  # two peers agree
    assert peers.asked[-2:] == ["http://192.0.2.1:8090", "http://192.0.2.2:8090"]


async def test_advertise_overrides_detection(make_peer: Any, tmp_path: Path) -> None:
    peer = await make_peer(tmp_path / "p", host="0.0.0.0", admin_token="t", advertise="203.0.113.5:8443")
    assert peer.url == "http://203.0.113.5:8443"
    status = await peer.status()
    assert status["reach"]["kind"] == PUBLIC and status["reach"]["observed"] == "203.0.113.5:8443"
    assert not peer.reach.asks and await peer.reach.check([(LOOP, 9)]) == PUBLIC
    assert peer.reporter.dht_info()["http_url"] == "http://203.0.113.5:8443"
    for bad in ("no-port", "host:0", "host:99999", ":8090"):
        with pytest.raises(ConfigError):
            Config.from_dict({"advertise": bad})


async def test_a_dial_back_goes_only_to_the_askers_own_address(make_peer: Any, tmp_path: Path) -> None:
    """Otherwise any peer could make others connect to a third party (a reflector)."""
    peer = await make_peer(tmp_path / "p")
    hits: dict[str, list[str]] = {"127.0.0.1": [], "127.0.0.2": []}

    def listener(ip: str) -> web.Application:
        async def probe(request: web.Request) -> web.Response:
            hits[ip].append((await request.json())["nonce"])
            return web.json_response({"known": True, "v": 2})

        app = web.Application()
        app.router.add_post("/p2p/v1/reach/probe", probe)
        return app

    runners = []
    port = 0
    for ip in hits:
        runner = web.AppRunner(listener(ip))
        await runner.setup()
        site = web.TCPSite(runner, ip, port)
        await site.start()
        port = port or runner.addresses[0][1]
        runners.append(runner)
    try:
        nonce = "ab" * 16
        async with aiohttp.ClientSession() as http:
            # naming another host is refused outright
            async with http.post(peer.url + "/p2p/v1/reach", json={"port": port, "nonce": nonce, "host": "127.0.0.2"}) as r:
                assert r.status == 400
            async with http.post(peer.url + "/p2p/v1/reach", json={"port": port, "nonce": nonce}) as r:
                reply = await r.json()
        assert reply == {"observed": "127.0.0.1", "dialed": True, "v": 2}
        assert hits == {"127.0.0.1": [nonce], "127.0.0.2": []}
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_a_probe_with_a_nonce_we_did_not_send_proves_nothing(make_peer: Any, tmp_path: Path) -> None:
    peer = await make_peer(tmp_path / "p")
    async with aiohttp.ClientSession() as http:
        async with http.post(peer.url + "/p2p/v1/reach/probe", json={"nonce": "cd" * 16}) as r:
            assert (await r.json())["known"] is False


def test_the_client_only_marker_is_signed() -> None:
    b, asker = Identity.generate(), Identity.generate()
    nonce, cookie = b"n" * 16, b"c" * 16
    marked = hello_answer(b, "lab", nonce, asker.node_id, cookie, client=True)
    assert check_hello_answer(marked, "lab", nonce, asker.node_id)[3] is True
    assert check_hello_answer(marked[:4], "lab", nonce, asker.node_id) is None  # stripped
    plain = hello_answer(b, "lab", nonce, asker.node_id, cookie)
    assert check_hello_answer(plain, "lab", nonce, asker.node_id)[3] is False
    assert check_hello_answer(plain + ["client"], "lab", nonce, asker.node_id) is None  # added by someone else


async def test_a_client_only_node_is_in_no_routing_table_and_responsible_for_nothing(tmp_path: Path) -> None:
    def node(name: str) -> DhtNode:
        return DhtNode(Identity.generate(), LOOP, 0, tmp_path / name, lambda: {"name": name})

    async with node("a") as a, node("b") as b, node("c") as c:
        await b.bootstrap([(LOOP, a.port)])
        await c.set_client_only(True)
        await c.bootstrap([(LOOP, a.port), (LOOP, b.port)])
        await asyncio.gather(a.refresh_buckets(), b.refresh_buckets(), c.refresh_buckets())
        assert {n.id for n in c.protocol.router.contacts()} == {a.node_id, b.node_id}
        for other in (a, b):
            assert {n.id for n in other.protocol.router.contacts()} == {({a, b} - {other}).pop().node_id}
            assert [p.name for p in other.known_clients()] == ["c"]
        for key in (c.node_id, bytes(20), b"\xff" * 20):
            for asker in (a, b, c):
                assert c.node_id not in {n.id for n in await asker.closest_peers(key, 3)}
        # turning public again is announced and undone
        await c.set_client_only(False)
        await asyncio.sleep(0.1)
        await a.protocol.call_ping(c.node)
        assert c.node_id in {n.id for n in a.protocol.router.contacts()}


# ---------------------------------------------------------------------------
# the WAN shim (bench.wanem), in a child process: it patches asyncio globally
# ---------------------------------------------------------------------------

WAN_PROBE = r"""
import asyncio, json

async def main():
    got = []

    class Echo(asyncio.Protocol):
        def data_received(self, data):
            got.append(data)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _r, w = await asyncio.open_connection("127.0.0.1", port)
    for i in range(200):
        w.write(b"%d," % i)
    w.close()  # deferred by the shim until the delayed writes are out
    udp_got = []

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            udp_got.append(data)

    sink, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    src, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=sink.get_extra_info("sockname"))
    for i in range(200):
        src.sendto(b"x")
    for _ in range(400):  # until the last TCP byte is in (the delays are the shim's)
        if b"".join(got).endswith(b"199,"):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the datagrams' own delays are shorter than this
    print(json.dumps({"tcp": b"".join(got).decode(), "udp": len(udp_got)}))

asyncio.run(main())
"""


def run_wan_probe(spec: str) -> dict[str, Any]:
    import json
    import os

    from bench.netlab import REPO, SHIM

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SHIM), str(REPO)]), YASEARCH_WANEM=spec)
    out = subprocess.run([sys.executable, "-c", WAN_PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_wan_shim_keeps_tcp_order_and_drops_udp_datagrams() -> None:
    every = ",".join(str(i) for i in range(200)) + ","
    # 20 ms ± 15 ms per write, every write "lost" once (delayed by an RTO): order holds, nothing is lost
    assert run_wan_probe("20,15,1.0,7") == {"tcp": every, "udp": 0}
    # half the datagrams dropped, none of TCP's bytes
    half = run_wan_probe("1,0,0.5,7")
    assert half["tcp"] == every and 50 < half["udp"] < 150
    assert run_wan_probe("0,0,0") == {"tcp": every, "udp": 200}
