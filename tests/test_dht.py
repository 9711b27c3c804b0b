"""DHT node tests: real UDP on 127.0.0.1, in-process nodes.

Each of kademlia 2.2.3's defects fixed in ``yasearch.dht`` has a test here; where it
is cheap and deterministic the test also shows the upstream behaviour, so a test that
passes proves the fix matters rather than that the scenario was too easy.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import umsgpack
from kademlia.node import Node
from kademlia.routing import RoutingTable as UpstreamRoutingTable

from yasearch.identity import Identity
from yasearch.dht.handshake import open_info, seal_info
from yasearch.dht import (
    DhtNode,
    DhtProtocol,
    LiveNodeSpiderCrawl,
    RoutingTable,
    resolve_http_url,
    validate_info,
    xor_closest,
)

LOOP = "127.0.0.1"


def rand_id(rng: random.Random) -> bytes:
    return rng.getrandbits(160).to_bytes(20, "big")


def xor(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


class Cluster:
    """In-process DHT nodes on loopback; every node gets its own data dir."""

    def __init__(self, tmp_path: Path, seed: int) -> None:
        self.tmp_path = tmp_path
        self.rng = random.Random(seed)
        self.nodes: list[DhtNode] = []
        self.docs: dict[bytes, int] = {}

    def provider(self, holder: list[DhtNode]) -> Callable[[], dict[str, Any]]:
        def info() -> dict[str, Any]:
            node = holder[0]
            return {
                "name": f"peer-{node.node_id.hex()[:6]}",
                "http_url": f"http://{LOOP}:{node.port}",
                "version": "0.1.0",
                "documents": self.docs.get(node.node_id, 0),
                "stats": {"total_length": 7},
            }

        return info

    async def add(
        self, *, bootstrap: list[tuple[str, int]] | None = None, identity: Identity | None = None,
        data_dir: Path | None = None, port: int = 0, **kw: Any,
    ) -> DhtNode:
        identity = identity or Identity.generate()
        holder: list[DhtNode] = []
        node = DhtNode(
            identity, LOOP, port, data_dir or self.tmp_path / identity.hex[:8], self.provider(holder), **kw
        )
        holder.append(node)
        await node.start()
        await node.bootstrap(bootstrap or [])
        self.nodes.append(node)
        return node

    async def grow(self, n: int, **kw: Any) -> list[DhtNode]:
        first = await self.add(**kw)
        for i in range(1, n):
            # alternate hostname and IP bootstrap addresses: hostnames must resolve
            host = "localhost" if i % 2 else LOOP
            await self.add(bootstrap=[(host, first.port)], **kw)
        await self.settle()
        return self.nodes

    async def settle(self) -> None:
        """Wait for background RPCs (peer info exchanges triggered by joins)."""
        for n in self.live():
            await n.protocol.drain()

    def live(self) -> list[DhtNode]:
        return [n for n in self.nodes if n.running]

    async def close(self) -> None:
        for n in self.nodes:
            await n.stop()


@pytest.fixture
async def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, seed=zlib.crc32(request.node.name.encode()))
    yield c
    await c.close()


class StubProtocol:
    """Just enough protocol for a RoutingTable unit test (no pings of full buckets)."""


# ---------------------------------------------------------------------------
# fix 1: find_neighbors
# ---------------------------------------------------------------------------


def test_find_neighbors_returns_exactly_the_k_xor_closest() -> None:
    rng = random.Random(7)
    own = rand_id(rng)
    table = RoutingTable(StubProtocol(), 20, Node(own))
    for _ in range(3000):
        table.add_contact(Node(rand_id(rng), LOOP, rng.randrange(1024, 65535)))
    # contacts sharing long prefixes with our ID, so buckets split deep near it
    for bits in range(1, 40):
        nid = (int.from_bytes(own, "big") ^ (1 << (160 - bits)) ^ rng.getrandbits(160 - bits)).to_bytes(20, "big")
        table.add_contact(Node(nid, LOOP, 2000 + bits))
    held = table.contacts()
    assert len(table.buckets) > 5 and len(held) > 100

    upstream_wrong = 0
    for i in range(300):
        asker = rng.choice(held)
        if i % 3 == 0:
            target = Node(rand_id(rng))
        elif i % 3 == 1:
            target = Node(rng.choice(held).id)  # the key is a contact's own ID: it must come first
        else:
            target = Node(own)
        for k in (1, 3, 20):
            got = [n.id for n in table.find_neighbors(target, k, exclude=asker)]
            expected = xor_closest([n.id for n in held if n.id != asker.id], target.id, k)
            assert got == expected
            assert asker.id not in got
        upstream = [n.id for n in UpstreamRoutingTable.find_neighbors(table, target, 20, asker)]
        upstream_wrong += upstream != xor_closest([n.id for n in held if n.id != asker.id], target.id, 20)
    assert upstream_wrong > 0, "the scenario should reproduce the upstream defect"


def test_find_neighbors_finds_contacts_upstream_misses_entirely() -> None:
    """Issue #28: all contacts in the lowest quarter of the ID space, target in the top half.
    Upstream's TableTraverser looks at the target's (empty) bucket and its empty left
    neighbour, then stops: no peers at all although the table holds 20."""
    rng = random.Random(11)
    own = (0x01 << 152 | rng.getrandbits(152)).to_bytes(20, "big")
    table = RoutingTable(StubProtocol(), 20, Node(own))
    for _ in range(40):
        table.add_contact(Node((rng.getrandbits(158)).to_bytes(20, "big"), LOOP, 4000))
    target = Node((1 << 159 | rng.getrandbits(159)).to_bytes(20, "big"))
    held = table.contacts()
    assert len(held) >= 20
    assert UpstreamRoutingTable.find_neighbors(table, target, 3) == []
    assert [n.id for n in table.find_neighbors(target, 3)] == xor_closest([n.id for n in held], target.id, 3)


# ---------------------------------------------------------------------------
# lookups over a real cluster
# ---------------------------------------------------------------------------


async def lookups(askers: list[DhtNode], keys: list[bytes], at_once: int = 10) -> list[Any]:
    """The 3 closest peers of each key, asked by its asker, a few lookups at a time: on a
    loaded machine dozens of concurrent lookups over one loopback can time out RPCs, which
    (rightly) makes a node look dead for a while, and these tests are about routing."""
    results: list[Any] = []
    for i in range(0, len(keys), at_once):
        batch = zip(askers[i : i + at_once], keys[i : i + at_once])
        results += await asyncio.gather(*(a.closest_peers(k, 3) for a, k in batch))
    return results


async def test_cluster_lookups_match_brute_force(cluster: Cluster) -> None:
    nodes = await cluster.grow(20)
    ids = [n.node_id for n in nodes]
    keys = [rand_id(cluster.rng) for _ in range(45)] + ids[:5]  # include keys equal to node IDs
    askers = [cluster.rng.choice(nodes) for _ in keys]
    results = await lookups(askers, keys)
    for key, asker, got in zip(keys, askers, results):
        assert [n.id for n in got] == xor_closest(ids, key, 3), f"lookup from {asker.node_id.hex()[:6]}"
    # the asker appears as itself when it is among the closest
    own = nodes[4]
    assert (await own.closest_peers(own.node_id, 1))[0].id == own.node_id


async def test_cluster_with_small_buckets_needs_and_survives_multi_hop(cluster: Cluster) -> None:
    """k=4: no node knows everyone, so lookups must iterate to be right."""
    nodes = await cluster.grow(20, ksize=4)
    assert any(len(n.protocol.router.contacts()) < 19 for n in nodes)
    ids = [n.node_id for n in nodes]
    keys = [rand_id(cluster.rng) for _ in range(30)]
    askers = [cluster.rng.choice(nodes) for _ in keys]
    results = await lookups(askers, keys)
    for key, got in zip(keys, results):
        assert [n.id for n in got] == xor_closest(ids, key, 3)


async def test_lookups_exclude_peers_that_died_without_warning(cluster: Cluster) -> None:
    """Fix 2 and 4: 5 of 20 peers vanish; other tables still list them, lookups must not."""
    nodes = await cluster.grow(20)  # default rpc_timeout: 1 s
    rng = cluster.rng
    victims = rng.sample(nodes[1:], 5)
    dead_ids = {v.node_id for v in victims}
    for v in victims:
        await v.stop()
    live = cluster.live()
    witness = live[-1]  # does no lookups of its own, so it never learns of the deaths
    askers = live[:-1]
    keys = [rand_id(rng) for _ in range(40)] + list(dead_ids)  # keys right on top of dead peers too
    live_ids = [n.node_id for n in live]

    async def lookup(i: int, key: bytes) -> tuple[bytes, list[Node]]:
        return key, await askers[i % len(askers)].closest_peers(key, 3)

    for key, got in await asyncio.gather(*(lookup(i, k) for i, k in enumerate(keys))):
        assert [n.id for n in got] == xor_closest(live_ids, key, 3)
    assert dead_ids <= {n.id for n in witness.protocol.router.contacts()}
    assert any(dead_ids & a.protocol.recently_dead() for a in askers)
    # a second round, with the dead known, is still right
    for key, got in await asyncio.gather(*(lookup(i + 1, k) for i, k in enumerate(keys[:10]))):
        assert [n.id for n in got] == xor_closest(live_ids, key, 3)


async def test_timed_out_peer_is_not_relearned_from_later_replies(cluster: Cluster) -> None:
    """Deterministic fix-2 scenario: A's seeds are B (dead) and C; C's reply names D, and
    D's reply names B again. Upstream's crawl re-adds B, already marked contacted, and
    returns it; ours does not."""
    a = await cluster.add(rpc_timeout=0.5)
    b = await cluster.add(rpc_timeout=0.5)
    c = await cluster.add(bootstrap=[(LOOP, b.port)], rpc_timeout=0.5)
    d = await cluster.add(bootstrap=[(LOOP, b.port)], rpc_timeout=0.5)
    await cluster.settle()
    nb = Node(b.node_id, LOOP, b.port)
    nc = Node(c.node_id, LOOP, c.port)
    assert b.node_id in {n.id for n in d.protocol.router.contacts()}
    await b.stop()
    target = Node(rand_id(cluster.rng))

    from kademlia.crawling import NodeSpiderCrawl

    upstream = await NodeSpiderCrawl(a.protocol, target, [nb, nc], 20, 3).find()
    assert b.node_id in {n.id for n in upstream}, "upstream should return the dead peer"
    a.protocol.dead.clear()  # forget what the first crawl taught A, to test the crawl itself
    ours = await LiveNodeSpiderCrawl(a.protocol, target, [nb, nc], 20, 3).find()
    assert {n.id for n in ours} == {c.node_id, d.node_id}


# ---------------------------------------------------------------------------
# fix 5: eviction after consecutive failures
# ---------------------------------------------------------------------------


async def test_one_missed_reply_does_not_evict_three_do(cluster: Cluster) -> None:
    a = await cluster.add(rpc_timeout=0.5)
    b = await cluster.add(bootstrap=[(LOOP, a.port)], rpc_timeout=0.5)
    c = await cluster.add(bootstrap=[(LOOP, a.port)], rpc_timeout=0.5)
    await cluster.settle()
    proto = a.protocol

    def held() -> set[bytes]:
        return {n.id for n in proto.router.contacts()}

    # misses interleaved with a reply: the count starts over
    nc = Node(c.node_id, LOOP, c.port)
    proto.handle_call_response((False, None), nc)
    proto.handle_call_response((False, None), nc)
    assert c.node_id in held() and proto.is_recently_dead(c.node_id)
    assert (await proto.call_ping(nc))[0]
    assert proto.failures.get(c.node_id) is None and not proto.is_recently_dead(c.node_id)
    proto.handle_call_response((False, None), nc)
    proto.handle_call_response((False, None), nc)
    assert c.node_id in held()

    # real timeouts against a stopped peer
    await b.stop()
    nb = Node(b.node_id, LOOP, b.port)
    assert not (await proto.call_ping(nb))[0]
    assert b.node_id in held() and proto.failures[b.node_id] == 1
    assert b.node_id.hex() not in {p.node_id for p in a.known_peers()}  # recently dead: not listed
    await proto.call_ping(nb)
    assert b.node_id in held()
    await proto.call_ping(nb)
    assert b.node_id not in held()


class LossyPeer(asyncio.DatagramProtocol):
    """A fake peer that drops the first copy of every request and answers the second."""

    def __init__(self, node_id: bytes) -> None:
        self.node_id = node_id
        self.seen: dict[bytes, int] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg_id = data[1:21]
        self.seen[msg_id] = self.seen.get(msg_id, 0) + 1
        if self.seen[msg_id] == 2:
            assert self.transport is not None
            self.transport.sendto(b"\x01" + msg_id + umsgpack.packb(self.node_id), addr)


async def test_a_lost_datagram_is_retransmitted_and_the_peer_stays_alive(cluster: Cluster) -> None:
    """UDP drops packets under bursts; one loss must not make a live peer "recently dead"."""
    a = await cluster.add(rpc_timeout=0.4)
    fake = LossyPeer(rand_id(cluster.rng))
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: fake, local_addr=(LOOP, 0))
    try:
        peer = Node(fake.node_id, LOOP, transport.get_extra_info("sockname")[1])
        ok, answer = await a.protocol.call_ping(peer)
        assert ok and answer == fake.node_id and list(fake.seen.values()) == [2]
        assert not a.protocol.is_recently_dead(fake.node_id) and a.protocol.counters["retransmits"] == 1
    finally:
        transport.close()


async def test_dead_peer_that_contacts_us_is_revived(cluster: Cluster) -> None:
    a = await cluster.add(rpc_timeout=0.5)
    b = await cluster.add(bootstrap=[(LOOP, a.port)], rpc_timeout=0.5)
    await cluster.settle()
    nb = Node(b.node_id, LOOP, b.port)
    a.protocol.handle_call_response((False, None), nb)
    assert a.protocol.is_recently_dead(b.node_id)
    assert [n.id for n in await a.closest_peers(b.node_id, 2)] == [a.node_id]
    await b.protocol.call_ping(Node(a.node_id, LOOP, a.port))  # b talks to a directly
    assert not a.protocol.is_recently_dead(b.node_id)
    assert [n.id for n in await a.closest_peers(b.node_id, 2)] == [b.node_id, a.node_id]


# ---------------------------------------------------------------------------
# restart from neighbours.json
# ---------------------------------------------------------------------------


async def test_restarted_node_rejoins_from_saved_neighbours(cluster: Cluster) -> None:
    nodes = await cluster.grow(10)
    x = nodes[6]
    node_id, data_dir, port = x.node_id, x.data_dir, x.port
    await x.stop()
    saved = json.loads((data_dir / "neighbours.json").read_text())
    assert saved["node_id"] == node_id.hex() and len(saved["neighbours"]) == 9
    assert not list(data_dir.glob("*.tmp"))

    # other nodes keep talking meanwhile; then x comes back with no bootstrap configured
    x2 = await cluster.add(identity=x.identity, data_dir=data_dir, port=port)
    assert len(x2.protocol.router.contacts()) == 9
    ids = [n.node_id for n in cluster.live()]
    assert len(ids) == 10 and node_id in ids
    keys = [rand_id(cluster.rng) for _ in range(20)]
    for key in keys:
        assert [n.id for n in await x2.closest_peers(key, 3)] == xor_closest(ids, key, 3)
        assert [n.id for n in await nodes[0].closest_peers(key, 3)] == xor_closest(ids, key, 3)


async def test_node_without_neighbours_or_bootstrap_is_a_network_of_one(tmp_path: Path) -> None:
    me = Identity.generate()
    node = DhtNode(me, LOOP, 0, tmp_path, lambda: {"name": "solo"})
    async with node:
        assert node.port > 0
        assert await node.bootstrap([]) == 0
        assert [n.id for n in await node.closest_peers(b"\xff" * 20, 3)] == [me.node_id]
        assert node.known_peers() == [] and node.info_of(me.node_id) is None
    assert node.info_of(me.node_id) is None  # stopped: no records, no error
    assert not (tmp_path / "neighbours.json").exists()  # nothing to save: no file


async def test_save_neighbours_while_running_and_a_failed_write_is_only_logged(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    nodes = await cluster.grow(3)
    x = nodes[1]
    await x.save_neighbours()
    saved = json.loads((x.data_dir / "neighbours.json").read_text())
    assert sorted(e["port"] for e in saved["neighbours"]) == sorted(n.port for n in nodes if n is not x)

    blocker = cluster.tmp_path / "not-a-dir"
    blocker.write_text("")
    y = nodes[2]
    y.data_dir = blocker / "sub"  # mkdir fails: the peer must keep running
    await y.save_neighbours()
    assert "could not save DHT neighbours" in caplog.text
    await y.stop()  # stop saves too, and must not raise either


async def test_unreachable_bootstrap_addresses_do_not_fail_start(tmp_path: Path) -> None:
    node = DhtNode(Identity.generate(), LOOP, 0, tmp_path, dict, rpc_timeout=0.2)
    async with node:
        (tmp_path / "neighbours.json").write_text("{not json")
        assert await node.bootstrap([("no-such-host.invalid", 8090), (LOOP, 9)]) == 0


# ---------------------------------------------------------------------------
# peer info
# ---------------------------------------------------------------------------


async def test_peer_info_is_exchanged_and_cached_on_both_sides(cluster: Cluster) -> None:
    nodes = await cluster.grow(5)
    for i, n in enumerate(nodes):
        cluster.docs[n.node_id] = 10 * i
    for n in nodes:
        await n.refresh_info()
    by_id = {n.node_id.hex(): n for n in nodes}
    for n in nodes:
        peers = n.known_peers()
        assert sorted(p.node_id for p in peers) == sorted(k for k in by_id if k != n.node_id.hex())
        for p in peers:
            other = by_id[p.node_id]
            assert p.info_received and p.name == f"peer-{p.node_id[:6]}"
            assert p.http_url == f"http://{LOOP}:{other.port}" and p.port == other.port
            assert p.documents == cluster.docs[other.node_id] and p.version == "0.1.0"
            assert p.stats == {"total_length": 7} and p.last_seen > 0

    # one peer's figures change; it announces them, and every other peer's cache has them
    # although none of them asked (cached on the receiving side of the call)
    cluster.docs[nodes[2].node_id] = 12345
    assert await nodes[2].refresh_info() == 4
    for n in nodes:
        if n is not nodes[2]:
            info = {p.node_id: p for p in n.known_peers()}[nodes[2].node_id.hex()]
            assert info.documents == 12345
            assert n.http_url_for(Node(nodes[2].node_id, LOOP, nodes[2].port)) == info.http_url


async def test_hostile_peer_info_is_bounded_and_validated(cluster: Cluster) -> None:
    a = await cluster.add()
    b = await cluster.add(bootstrap=[(LOOP, a.port)])
    await cluster.settle()
    hostile = {
        "name": "A\x00B" * 300,
        "http_url": "javascript:alert(1)",
        "version": 7,
        "documents": "12",
        "stats": {"ok": 5, "Bad Key": 1, "neg": -1, "big": 2**60, "b": True},
        "admin": True,
    }
    sealed = seal_info(a.identity, "public", time.time_ns(), hostile)  # signed, but hostile
    ok, answer = await a.protocol.peer_info((LOOP, b.port), a.node_id, sealed)
    assert ok and open_info(answer, "public", b.node_id)[1]["name"] == f"peer-{b.node_id.hex()[:6]}"
    assert b.info_of(a.node_id) == {"name": "AB" * 32, "stats": {"ok": 5}}
    pa = {p.node_id: p for p in b.known_peers()}[a.node_id.hex()]
    assert pa.http_url == f"http://{LOOP}:{a.port}" and pa.documents == 0
    # a malformed call gets a null answer, is not cached, and the node keeps working
    ok, answer = await a.protocol.peer_info((LOOP, b.port), b"short", {"name": "x"})
    assert answer is None and b.info_of(b"short") is None
    # a record not signed by the key of the ID it claims is not cached
    forged = seal_info(a.identity, "public", time.time_ns(), {"name": "forged"})
    await a.protocol.peer_info((LOOP, b.port), cluster.nodes[1].node_id[:19] + b"\0", forged)
    assert b.info_of(cluster.nodes[1].node_id[:19] + b"\0") is None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\x00" + bytes(20) + b"\xc1garbage", (LOOP, b.port))
        s.sendto(b"\x00" + bytes(20) + b"\x92\xa4ping\x91\x01", (LOOP, b.port))  # ["ping", [1]]
    assert (await a.protocol.call_ping(Node(b.node_id, LOOP, b.port)))[0]


def test_validate_info_and_http_url_resolution() -> None:
    assert validate_info("nope") == {}
    assert validate_info({"http_url": "http://u:p@h:1/"}) == {}
    assert validate_info({"http_url": "https://peer.example:8090/", "documents": 3}) == {
        "http_url": "https://peer.example:8090",
        "documents": 3,
    }
    # no advertised URL: DESIGN's http://ip:port
    assert resolve_http_url(None, "10.0.0.5", 8090) == "http://10.0.0.5:8090"
    # advertised loopback URL seen from another machine: use the sender's address
    assert resolve_http_url("http://127.0.0.1:8090", "10.0.0.5", 8090) == "http://10.0.0.5:8090"
    assert resolve_http_url("http://127.0.0.1:8090", "127.0.0.1", 8090) == "http://127.0.0.1:8090"
    assert resolve_http_url("http://search.example", "10.0.0.5", 8090) == "http://search.example"


# ---------------------------------------------------------------------------
# fix 3 became: the value store is off
# ---------------------------------------------------------------------------


async def test_the_value_store_is_off(cluster: Cluster) -> None:
    """STORE is refused and nothing is handed to new nodes (upstream's handoff made a
    50-byte ping bring back every stored value: see tests/test_hostile_dht.py)."""
    a = await cluster.add()
    b = await cluster.add(bootstrap=[(LOOP, a.port)])
    await cluster.settle()
    key = rand_id(cluster.rng)
    ok, stored = await b.protocol.store((LOOP, a.port), b.node_id, key, b"value")
    assert ok and stored is False
    assert list(a.protocol.storage) == []
    calls: list[object] = []

    async def call_store(*args: object) -> None:
        calls.append(args)

    a.protocol.call_store = call_store  # type: ignore[method-assign]
    await cluster.add(bootstrap=[(LOOP, a.port)])
    await cluster.settle()
    assert calls == []
    # find_value is answered as find_node
    ok, found = await b.protocol.find_value((LOOP, a.port), b.node_id, key)
    assert ok and isinstance(found, list)


async def test_rpc_timeout_is_configurable(tmp_path: Path) -> None:
    node = DhtNode(Identity.generate(), LOOP, 0, tmp_path, dict)
    assert node.rpc_timeout == 1.0
    async with node:
        assert node.protocol._wait_timeout == 1.0
    node = DhtNode(Identity.generate(), LOOP, 0, tmp_path, dict, rpc_timeout=0.25)
    async with node:
        assert node.protocol._wait_timeout == 0.25
