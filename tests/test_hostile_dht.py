"""Hostile peers against the DHT: the attacks of docs/security.md, each refused.

The hostile-peer kit is :class:`FakeNode`: a Kademlia node faked on a real UDP socket
on loopback, which says whatever the test makes it say (a chosen node ID, forged
handshakes, node lists full of sybils) and records every byte it gets back. Honest
nodes are real :class:`DhtNode` instances, also on loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import umsgpack
from kademlia.node import Node

from yasearch.dht import DhtNode, RoutingTable
from yasearch.dht.guard import TokenBucket
from yasearch.dht.handshake import hello_answer
from yasearch.identity import Identity

LOOP = "127.0.0.1"
ZEBRA = hashlib.sha1(b"zebra").digest()


def near(key: bytes, bit: int) -> bytes:
    """An ID that differs from ``key`` only in its lowest bits: what an attacker
    free to choose its ID would pick to capture ``key``."""
    return (int.from_bytes(key, "big") ^ bit).to_bytes(20, "big")


class FakeNode(asyncio.DatagramProtocol):
    """A fake Kademlia node on a real UDP socket.

    ``node_id`` is whatever it claims. With ``identity`` it answers the handshake with
    that key (an honest answer if ``node_id`` is the key's ID, a forgery otherwise);
    ``neighbours`` is the node list its find_node replies name. Every datagram it
    receives is kept in ``received``.
    """

    def __init__(
        self, node_id: bytes, *, identity: Identity | None = None,
        neighbours: Callable[[], list[tuple[bytes, str, int]]] = list, network: str = "public",
    ) -> None:
        self.node_id = node_id
        self.identity = identity
        self.neighbours = neighbours
        self.network = network
        self.received: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self._pending: dict[bytes, asyncio.Future[Any]] = {}

    @classmethod
    async def start(cls, *args: Any, **kw: Any) -> "FakeNode":
        fake = cls(*args, **kw)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: fake, local_addr=(LOOP, 0))
        fake.port = transport.get_extra_info("sockname")[1]
        return fake

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def bytes_received(self) -> int:
        return sum(len(d) for d in self.received)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, addr: tuple[str, int], name: str, *args: Any) -> tuple[bytes, int]:
        """Send one request; returns its message id and size."""
        msg_id = os.urandom(20)
        data = b"\x00" + msg_id + umsgpack.packb([name, list(args)])
        assert self.transport is not None
        self.transport.sendto(data, addr)
        return msg_id, len(data)

    async def call(self, addr: tuple[str, int], name: str, *args: Any, timeout: float = 2.0) -> Any:
        msg_id, _ = self.send(addr, name, *args)
        future = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(msg_id, None)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append(data)
        msg_id = data[1:21]
        try:
            body = umsgpack.unpackb(data[21:])
        except Exception:
            return
        if data[:1] == b"\x01":
            future = self._pending.get(msg_id)
            if future is not None and not future.done():
                future.set_result(body)
            return
        name, args = body
        reply = self.answer(name, args)
        if reply is not None and self.transport is not None:
            self.transport.sendto(b"\x01" + msg_id + umsgpack.packb(reply), addr)

    def answer(self, name: str, args: list[Any]) -> Any:
        if name == "ping":
            return self.node_id
        if name in ("find_node", "find_value"):
            return self.neighbours()
        if name == "hello" and self.identity is not None:
            asker, _network, nonce = args
            if self.identity.node_id == self.node_id:
                return hello_answer(self.identity, self.network, nonce, asker, os.urandom(16))
            forged = hello_answer(self.identity, self.network, nonce, asker, os.urandom(16))
            return [self.node_id, *forged[1:]]  # claims the chosen ID with a key that is not its own
        if name == "prove":
            return True
        if name == "peer_info":
            return None
        return None


async def start_node(tmp_path: Path, **kw: Any) -> DhtNode:
    ident = Identity.generate()
    node = DhtNode(ident, LOOP, 0, tmp_path / ident.hex[:8], lambda: {"name": "honest"}, rpc_timeout=0.4, **kw)
    await node.start()
    return node


@pytest.fixture
async def honest(tmp_path: Path) -> AsyncIterator[list[DhtNode]]:
    """Five honest nodes that know each other."""
    nodes = [await start_node(tmp_path) for _ in range(5)]
    for n in nodes[1:]:
        await n.bootstrap([(LOOP, nodes[0].port)])
    for n in nodes:
        await n.protocol.drain()
    yield nodes
    for n in nodes:
        await n.stop()


async def settle(nodes: list[DhtNode]) -> None:
    for n in nodes:
        await n.protocol.drain()


def fill_table(node: DhtNode, n: int = 30) -> None:
    """Contacts straight into the table (no traffic): a node with a full find_node reply."""
    for i in range(n):
        node.protocol.router.add_contact(Node(os.urandom(20), LOOP, 20000 + i))


def held_ids(node: DhtNode) -> set[bytes]:
    return {n.id for n in node.protocol.router.contacts()}


# ---------------------------------------------------------------------------
# eclipse: chosen IDs
# ---------------------------------------------------------------------------


async def test_a_node_with_a_chosen_id_never_enters_routing_tables(honest: list[DhtNode]) -> None:
    """The attacker picks the ID next to sha1("zebra") and talks to everyone, so that
    lookups of "zebra" end at it. It cannot prove a key for that ID (it would need a
    SHA-1 preimage), so nobody admits it, and nobody's lookup returns it."""
    attacker = Identity.generate()
    fake = await FakeNode.start(near(ZEBRA, 1), identity=attacker)
    try:
        for n in honest:
            await fake.call((LOOP, n.port), "ping", fake.node_id)
            await fake.call((LOOP, n.port), "find_node", fake.node_id, ZEBRA)
        await settle(honest)
        for n in honest:
            assert fake.node_id not in held_ids(n)
            assert len(held_ids(n)) == 4
            assert fake.node_id not in [p.id for p in await n.closest_peers(ZEBRA, 3)]
        assert sum(n.protocol.counters["handshakes_failed"] for n in honest) >= 1
    finally:
        fake.close()


async def test_sybils_named_in_lookup_replies_are_asked_but_never_returned(
    honest: list[DhtNode], tmp_path: Path
) -> None:
    """A genuine (key-proven) attacker node answers find_node with sybils whose IDs sit
    next to the key. They may be asked during the lookup, but they cannot prove their
    keys: the lookup drops them and returns honest peers, and no table holds them."""
    sybils = [await FakeNode.start(near(ZEBRA, i), identity=Identity.generate()) for i in (1, 2, 3)]
    for s in sybils:
        s.neighbours = lambda: [(x.node_id, LOOP, x.port) for x in sybils]
    gate_key = Identity.generate()
    gate = await FakeNode.start(
        gate_key.node_id, identity=gate_key, neighbours=lambda: [(x.node_id, LOOP, x.port) for x in sybils]
    )
    victim = honest[1]
    try:
        assert (await victim.protocol.handshake((LOOP, gate.port))) is not None  # the gate is in legitimately
        assert gate.node_id in held_ids(victim)
        found = [p.id for p in await victim.closest_peers(ZEBRA, 3)]
        await settle(honest)
        sybil_ids = {s.node_id for s in sybils}
        assert any(s.received for s in sybils), "the sybils were asked"
        assert not sybil_ids & set(found)
        assert set(found) <= {n.node_id for n in honest} | {gate.node_id}
        assert not sybil_ids & held_ids(victim)
    finally:
        for f in [gate, *sybils]:
            f.close()


async def test_a_real_id_at_someone_elses_address_is_neither_admitted_nor_evicts_the_real_one(
    honest: list[DhtNode],
) -> None:
    """Naming an honest peer's ID at a dead or hostile address must not let the address
    stand in for the peer, nor get the honest peer evicted by the timeouts."""
    a, b = honest[0], honest[1]
    impostor = await FakeNode.start(b.node_id, identity=Identity.generate())
    try:
        fake_b = Node(b.node_id, LOOP, impostor.port)
        assert not await a.protocol.verify_node(fake_b)
        for _ in range(a.max_failures):
            a.protocol.handle_call_response((False, None), fake_b)
        held = {(n.id, n.port) for n in a.protocol.router.contacts()}
        assert (b.node_id, b.port) in held and (b.node_id, impostor.port) not in held
        assert not a.protocol.is_recently_dead(b.node_id)
    finally:
        impostor.close()


# ---------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------


async def test_peers_of_different_networks_never_admit_each_other(tmp_path: Path) -> None:
    pub = await start_node(tmp_path, network="public")
    lab = await start_node(tmp_path, network="lab")
    lab2 = await start_node(tmp_path, network="lab")
    try:
        assert await lab.bootstrap([(LOOP, pub.port)]) == 0
        assert await pub.bootstrap([(LOOP, lab.port)]) == 0
        await lab.protocol.call_ping(Node(pub.node_id, LOOP, pub.port))  # pub answers, is asked to prove
        await settle([pub, lab])
        assert held_ids(pub) == set() and held_ids(lab) == set()
        assert await lab2.bootstrap([(LOOP, lab.port)]) == 1  # same network: fine
        await settle([lab, lab2])
        assert held_ids(lab) == {lab2.node_id}
    finally:
        for n in (pub, lab, lab2):
            await n.stop()


# ---------------------------------------------------------------------------
# UDP amplification
# ---------------------------------------------------------------------------


async def test_udp_amplification_is_at_most_3x_to_an_unproven_address(honest: list[DhtNode]) -> None:
    """Upstream: after 64 STOREs, one 50-byte ping with a fresh node ID brought back
    131 datagrams, 138 KB (every stored value handed to the "new node"). Now STORE is
    refused, and nothing we send an address that has not completed the handshake
    exceeds 3x what it sent us (its handshake challenge included)."""
    target = honest[0]
    fill_table(target)
    addr = (LOOP, target.port)
    filler = await FakeNode.start(os.urandom(20))
    spoofed = [await FakeNode.start(os.urandom(20)) for _ in range(2)]
    try:
        for i in range(64):
            filler.send(addr, "store", os.urandom(20), os.urandom(20), os.urandom(1000))
        await asyncio.sleep(0)
        # a ping "from the victim": a fresh address and a fresh node id
        _, ping_size = spoofed[0].send(addr, "ping", os.urandom(20))
        # a find_node too, which would name every contact we hold
        _, find_size = spoofed[1].send(addr, "find_node", os.urandom(20), os.urandom(20))
        await asyncio.sleep(0.05)
        await settle(honest)  # includes the handshake we start towards the "new node"
        assert list(target.protocol.storage) == []
        assert 0 < spoofed[0].bytes_received <= 3 * ping_size
        assert 0 < spoofed[1].bytes_received <= 3 * find_size
    finally:
        for f in [filler, *spoofed]:
            f.close()


async def test_a_proven_address_gets_whole_replies(honest: list[DhtNode]) -> None:
    """The limit is for strangers only: after the handshake, find_node names every
    contact (the amplification test above shows the same reply cut)."""
    me = Identity.generate()
    fake = await FakeNode.start(me.node_id, identity=me)
    try:
        target = honest[0]
        fill_table(target)
        await target.protocol.handshake((LOOP, fake.port))  # fake proves its key and address
        reply = await fake.call((LOOP, target.port), "find_node", me.node_id, os.urandom(20))
        assert len(reply) == 20  # k contacts, the asker excluded
    finally:
        fake.close()


# ---------------------------------------------------------------------------
# rate limit
# ---------------------------------------------------------------------------


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3.0, clock=lambda: now[0])
    assert [bucket.allow("a") for _ in range(5)] == [True, True, True, False, False]
    assert bucket.allow("b")  # per source
    now[0] = 1.0
    assert [bucket.allow("a") for _ in range(3)] == [True, True, False]


async def test_incoming_datagrams_are_rate_limited_per_source(tmp_path: Path) -> None:
    node = await start_node(tmp_path, rate=1e-6, burst=5)
    flood = await FakeNode.start(os.urandom(20))
    other = await FakeNode.start(os.urandom(20))
    try:
        for _ in range(40):
            flood.send((LOOP, node.port), "ping", flood.node_id)
        await asyncio.sleep(0.05)
        await node.protocol.drain()
        assert await other.call((LOOP, node.port), "ping", other.node_id) == node.node_id
        await node.protocol.drain()
        answered = [d for d in flood.received if d[:1] == b"\x01"]
        assert len(answered) <= 5 and node.protocol.counters["rate_limited"] >= 35
    finally:
        flood.close()
        other.close()
        await node.stop()


# ---------------------------------------------------------------------------
# routing table diversity
# ---------------------------------------------------------------------------


class StubProtocol:
    def __init__(self) -> None:
        self.pinged: list[Node] = []

    def spawn(self, coro: Any) -> None:
        coro.close()

    def call_ping(self, node: Node) -> Any:
        self.pinged.append(node)

        async def noop() -> None:
            return None

        return noop()


def test_at_most_2_contacts_per_24_per_bucket_and_10_per_table() -> None:
    rng = random.Random(5)
    table = RoutingTable(StubProtocol(), 20, Node(bytes(20)))

    def rid(top: int) -> bytes:
        return ((top << 156) | rng.getrandbits(156)).to_bytes(20, "big")

    # one /24 trying to fill the bucket far from us (IDs with the top bit set)
    for i in range(6):
        table.add_contact(Node(rid(0x8 | (i % 8)), f"8.8.8.{i + 1}", 4000))
    far = table.buckets[table.get_bucket_for(Node(rid(0xF)))]
    assert sum(1 for n in far.nodes.values() if n.ip.startswith("8.8.8.")) <= 2
    # loopback and private ranges are exempt (tests, intranets): they fill many buckets
    for i in range(400):
        host = LOOP if i % 2 else f"10.0.{i // 250}.{i % 250 + 1}"
        table.add_contact(Node(rng.getrandbits(160).to_bytes(20, "big"), host, 7000 + i))
    assert len(table.buckets) > 8 and len(table.contacts()) > 100
    # many buckets, one /24: at most 10 in the whole table
    for i in range(200):
        table.add_contact(Node(rng.getrandbits(160).to_bytes(20, "big"), f"93.184.216.{i % 250 + 1}", 5000 + i))
    assert sum(1 for n in table.contacts() if n.ip.startswith("93.184.216.")) == 10
    # IPv6: per /48
    for i in range(30):
        table.add_contact(Node(rng.getrandbits(160).to_bytes(20, "big"), f"2001:4860:4860::{i + 1:x}", 6000))
    assert sum(1 for n in table.contacts() if n.ip.startswith("2001:4860:4860:")) == 10
    assert table.refused_diversity > 0


def test_a_full_bucket_keeps_its_responsive_old_contacts() -> None:
    stub = StubProtocol()
    table = RoutingTable(stub, 2, Node(bytes(20)))
    # two old contacts sharing five leading bits: their bucket is full and does not split
    old = [Node((0b11111_0 << 154 | 1).to_bytes(20, "big"), "1.1.1.1", 1),
           Node((0b11111_1 << 154 | 1).to_bytes(20, "big"), "9.9.9.9", 1)]
    for n in old:
        table.add_contact(n)
    newcomer = Node((0b11111_0 << 154 | 2).to_bytes(20, "big"), "4.4.4.4", 1)
    table.add_contact(newcomer)
    assert {n.id for n in table.contacts()} >= {n.id for n in old}
    assert newcomer.id not in {n.id for n in table.contacts()}
    assert stub.pinged and stub.pinged[0].id == old[0].id  # the head is asked whether it still lives
