"""Many real DHT nodes in one process on a :class:`bench.memnet.MemNet`.

:class:`SimNode` is :class:`yasearch.dht.DhtNode` with two seams filled in (its
server attaches to the in-memory net, its lookups count their rounds) and three
things a simulation has no use for switched off (DNS, ``neighbours.json``, the
periodic maintenance unless asked). Everything else, the handshake, routing
table, lookups and peer info, is the peer's own code.

:class:`SimNetwork` builds a network of them (keys from a seeded RNG, each node
joining through a few nodes already in), runs measured lookups, and makes nodes
leave (crash: no goodbye, as a UDP peer vanishes) and join.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kademlia.node import Node

from bench.memnet import MemNet, MemServer
from yasearch.dht import DhtNode, LiveNodeSpiderCrawl, xor_closest
from yasearch.identity import Identity
from yasearch.network import Contact, Resolver

PORT = 4000
NO_DIR = Path("/nonexistent/dhtsim")  # never written: SimNode saves no neighbours file


@dataclass
class LookupStats:
    """One measured lookup: sequential rounds, when the closest node became known,
    virtual time, requests the asker sent, datagrams the whole network sent."""

    rounds: int = 0
    best_at_round: list[bytes | None] = field(default_factory=list)
    rounds_to_closest: int = 0
    time: float = 0.0
    requests: int = 0
    by_rpc: dict[str, int] = field(default_factory=dict)  # the asker's requests per RPC
    datagrams: int = 0
    exact: bool = False  # the k closest of all live IDs, in order
    top3: bool = False  # its 3 closest are (a replica set with r = 3)
    overlap: float = 0.0


CURRENT: contextvars.ContextVar[LookupStats | None] = contextvars.ContextVar("dhtsim_lookup", default=None)


class CountingCrawl(LiveNodeSpiderCrawl):
    """The real lookup, counting its rounds (each ``_find`` is one round of up to
    alpha parallel ``find_node`` requests, or of all unasked nodes once the nearest
    set stopped improving) into the :data:`CURRENT` stats, if any."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.stats = CURRENT.get()

    async def _find(self, rpcmethod: Any) -> Any:
        if self.stats is not None:
            self.stats.rounds += 1
            head = next(iter(self.nearest), None)
            self.stats.best_at_round.append(head.id if head is not None else None)
        return await super()._find(rpcmethod)


def address_of(index: int) -> str:
    """A private IPv4 address per node (private: exempt from the /24 diversity limit,
    as on an intranet; 10.0.0.0/8 holds 16M of them)."""
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"


class SimNode(DhtNode):
    """A real :class:`DhtNode` on a :class:`MemNet` (see the module docstring)."""

    crawl_class = CountingCrawl

    def __init__(self, identity: Identity, net: MemNet, host: str, **kw: Any) -> None:
        kw.setdefault("maintenance_interval", 1e9)
        super().__init__(identity, host, PORT, NO_DIR, self._info, **kw)
        self.server_class = partial(MemServer, net)  # type: ignore[assignment]

    def _info(self) -> dict[str, Any]:
        return {"name": f"sim-{self.host}", "http_url": f"http://{self.host}:{PORT}", "version": "sim"}

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, PORT)

    async def _resolve(self, host: str, port: int) -> tuple[str, int] | None:
        return (host, port)  # addresses only, no DNS

    async def save_neighbours(self) -> None:
        return None

    def load_neighbours(self) -> list[tuple[str, int]]:
        return []

    def crash(self) -> None:
        """Vanish without a word: maintenance stops, the endpoint leaves the net."""
        if self._maintenance_task is not None:
            self._maintenance_task.cancel()
            self._maintenance_task = None
        if self.server is not None:
            self.server.stop()
            self.server = None


class SimNetwork:
    """A network of :class:`SimNode` on one :class:`MemNet` (run it on a
    :class:`bench.memnet.VirtualClockLoop` for emulated time)."""

    def __init__(
        self, *, seed: int = 1, latency: float = 0.05, jitter: float = 0.01, loss: float = 0.0,
        seeds_per_join: int = 3, reply_credit: bool = True, **node_kw: Any,
    ) -> None:
        """``reply_credit=False`` is an ablation: replies to askers that have not proven
        their address are no longer cut to the anti-amplification credit (the peers
        always cut them; see :mod:`yasearch.dht.guard`)."""
        self.rng = random.Random(seed)
        self.net = MemNet(latency=latency, jitter=jitter, loss=loss, seed=seed)
        self.seeds_per_join = seeds_per_join
        self.reply_credit = reply_credit
        self.node_kw = node_kw
        self.nodes: list[SimNode] = []  # live ones
        self.departed: list[SimNode] = []
        self._next = 1

    def identity(self) -> Identity:
        return Identity(Ed25519PrivateKey.from_private_bytes(self.rng.randbytes(32)))

    def ids(self) -> list[bytes]:
        return [n.node_id for n in self.nodes]

    async def join(self, count: int = 1) -> list[SimNode]:
        """``count`` new nodes, one after the other, each bootstrapping through up to
        ``seeds_per_join`` random live nodes."""
        added = []
        for _ in range(count):
            node = SimNode(self.identity(), self.net, address_of(self._next), **self.node_kw)
            self._next += 1
            await node.start()
            if not self.reply_credit:
                node.protocol.guard.allowance = lambda _address: None  # type: ignore[method-assign]
            seeds = self.rng.sample(self.nodes, min(self.seeds_per_join, len(self.nodes)))
            await node.bootstrap([s.address for s in seeds])
            self.nodes.append(node)
            added.append(node)
        await self.settle()
        return added

    def leave(self, count: int) -> list[SimNode]:
        """``count`` random live nodes crash."""
        gone = self.rng.sample(self.nodes, count)
        for node in gone:
            node.crash()
            self.nodes.remove(node)
            self.departed.append(node)
        return gone

    async def settle(self, seconds: float = 3.0) -> None:
        """Let background traffic (handshakes back, peer info) finish: virtual time."""
        await asyncio.sleep(seconds)

    def table_sizes(self) -> list[int]:
        return [len(n.protocol.router.contacts()) for n in self.nodes]

    async def measured(self, node: SimNode, coro: Any, stats: LookupStats) -> Any:
        """Run ``coro`` (a lookup by ``node``) with its rounds, time and traffic counted."""
        loop = asyncio.get_running_loop()
        token = CURRENT.set(stats)
        req0, sent0, t0 = self.net.requests_from.get(node.address, 0), self.net.sent, loop.time()
        by0 = {name: c for (src, name), c in self.net.requests_by.items() if src == node.address}
        try:
            result = await coro
        finally:
            CURRENT.reset(token)
        stats.time = loop.time() - t0
        stats.requests = self.net.requests_from.get(node.address, 0) - req0
        by1 = {name: c for (src, name), c in self.net.requests_by.items() if src == node.address}
        stats.by_rpc = {name: c - by0.get(name, 0) for name, c in by1.items() if c > by0.get(name, 0)}
        await self.settle()
        stats.datagrams = self.net.sent - sent0
        return result

    async def lookup(self, node: SimNode, key: bytes, count: int) -> tuple[list[Node], LookupStats]:
        """``node.closest_peers(key, count)``, measured and checked against all live IDs."""
        stats = LookupStats()
        found = await self.measured(node, node.closest_peers(key, count), stats)
        truth = xor_closest(self.ids(), key, count)
        got = [n.id for n in found]
        stats.exact = got == truth
        stats.top3 = got[:3] == truth[:3]
        stats.overlap = len(set(got) & set(truth)) / max(1, len(truth))
        final = got[0] if got else None
        marks = stats.best_at_round + [final]
        stats.rounds_to_closest = next((i for i, b in enumerate(marks) if b == final), stats.rounds)
        return found, stats

    def resolver(self, node: SimNode, replication: int) -> Resolver:
        """A fresh (cold cache) :class:`yasearch.network.Resolver` on ``node``."""
        me = Contact(node.node_id, f"http://{node.host}:{PORT}")
        return Resolver(node, lambda: me, replication=replication)

    async def responsible(self, node: SimNode, term_key: bytes, term: str, replication: int) -> tuple[list[bytes], LookupStats]:
        """The replica set ``node`` computes for ``term`` (cold resolver), measured."""
        stats = LookupStats()
        contacts = await self.measured(node, self.resolver(node, replication).responsible(term), stats)
        got = [c.node_id for c in contacts]
        truth = xor_closest(self.ids(), term_key, replication)
        stats.exact = stats.top3 = got == truth
        stats.overlap = len(set(got) & set(truth)) / max(1, len(truth))
        return got, stats

    async def close(self) -> None:
        for node in self.nodes:
            node.crash()
        self.nodes = []
        await asyncio.sleep(0)
