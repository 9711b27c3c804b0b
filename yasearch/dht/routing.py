"""Routing: the table of contacts in k-buckets, and the set of recently dead peers.

kademlia's ``RoutingTable`` returns wrong neighbours (fix 1 in :mod:`yasearch.dht`);
the subclass here sorts every contact by XOR distance instead. The recently dead set
(fix 2) keeps peers that just failed an RPC out of lookups and out of our replies to
others, while they stay in their bucket until they have failed often enough to be
evicted (fix 5, counted by the protocol).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable
from typing import Any

from kademlia.node import Node
from kademlia.routing import RoutingTable as _KRoutingTable


class RecentlyDead:
    """Node IDs that failed an RPC within the last ``ttl`` seconds.

    Short-lived on purpose: a peer that missed one reply may be merely busy. Anything
    direct from the peer (a request or a reply) revives it at once (:meth:`discard`).
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._expiry: dict[bytes, float] = {}  # node id -> monotonic expiry

    def __contains__(self, node_id: bytes) -> bool:
        expiry = self._expiry.get(node_id)
        if expiry is None:
            return False
        if expiry <= time.monotonic():
            del self._expiry[node_id]
            return False
        return True

    def add(self, node_id: bytes) -> None:
        self._expiry[node_id] = time.monotonic() + self.ttl

    def discard(self, node_id: bytes) -> None:
        self._expiry.pop(node_id, None)

    def clear(self) -> None:
        self._expiry.clear()

    def ids(self) -> set[bytes]:
        """The IDs still dead now (expired ones are dropped on the way)."""
        return {nid for nid in list(self._expiry) if nid in self}


# Address diversity (Ethereum discv5's table limits): contacts from one /24 (IPv4) or
# /48 (IPv6) network, per bucket and in the whole table.
SUBNET_PER_BUCKET = 2
SUBNET_PER_TABLE = 10


def subnet_of(host: str) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of a *global* address; None for the rest.

    Loopback, private, link-local, shared (CGNAT) and documentation ranges are exempt
    from the diversity limits: every test runs many peers on 127.0.0.1, and an intranet
    network may well run all its peers in one 10.x or 192.168.x subnet. An attacker
    who can place peers at such addresses is inside that network already.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not ip.is_global:
        return None
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class RoutingTable(_KRoutingTable):
    """kademlia's routing table with a correct ``find_neighbors`` (fix 1), and limits on
    how many contacts one network may hold.

    ``is_dead`` is consulted to keep recently unresponsive contacts out of lookups and
    out of our replies to others (fix 2), while they stay in their bucket until they
    have failed ``max_failures`` times (fix 5).

    Diversity: at most ``SUBNET_PER_BUCKET`` contacts of one /24 (or /48) per bucket
    (replacement cache included) and ``SUBNET_PER_TABLE`` in the whole table, for
    global addresses only (:func:`subnet_of`). Someone with one cheap block of
    addresses cannot fill the buckets around a key. Long-lived contacts are preferred
    as in the paper: a full bucket keeps its members while they answer (the newcomer
    waits in the replacement cache, see :meth:`add_contact`).

    This table admits anyone it is given; the protocol hands it only contacts that
    proved their key (:mod:`yasearch.dht.handshake`).
    """

    def __init__(self, protocol: Any, ksize: int, node: Node) -> None:
        super().__init__(protocol, ksize, node)
        self.is_dead: Callable[[bytes], bool] = lambda _id: False
        self.refused_diversity = 0

    def contacts(self) -> list[Node]:
        """Every contact in every bucket (not the replacement caches)."""
        return [n for bucket in self.buckets for n in bucket.nodes.values()]

    def find_neighbors(self, node: Node, k: int | None = None, exclude: Node | None = None) -> list[Node]:
        """The k contacts XOR-closest to ``node``: all contacts, minus the asker, sorted.

        Upstream walks buckets outward from the target's and stops at the first k it
        meets, which are not the k closest, and it stops early on the left side (issue
        #28). A full sort of a few hundred contacts costs microseconds. A contact whose
        ID equals the target is kept: it *is* the closest peer of that key.
        """
        k = k or self.ksize
        index = self.get_bucket_for(node)
        if index is not None:
            self.buckets[index].touch_last_updated()  # as upstream: a lookup counts as bucket activity

        def keep(n: Node) -> bool:
            if n.id == self.node.id or self.is_dead(n.id):
                return False
            if exclude is not None and (n.id == exclude.id or n.same_home_as(exclude)):
                return False
            return True

        target = node.long_id
        candidates = [n for n in self.contacts() if keep(n)]
        candidates.sort(key=lambda n: n.long_id ^ target)
        return candidates[:k]

    def get_bucket_for(self, node: Node) -> int | None:
        """Bucket ranges are inclusive; upstream uses ``<`` and files an ID equal to a
        bucket's upper bound into the next bucket, where removal then cannot find it."""
        for index, bucket in enumerate(self.buckets):
            if node.long_id <= bucket.range[1]:
                return index
        return None

    def diverse_enough(self, node: Node) -> bool:
        """Whether ``node`` may join without exceeding the per-subnet limits.

        A contact already held (same ID) may always be refreshed.
        """
        subnet = subnet_of(node.ip or "")
        if subnet is None:
            return True
        bucket = self.buckets[self.get_bucket_for(node)]
        if node.id in bucket.nodes or node.id in bucket.replacement_nodes:
            return True
        in_bucket = [*bucket.nodes.values(), *bucket.replacement_nodes.values()]
        if sum(1 for n in in_bucket if subnet_of(n.ip or "") == subnet) >= SUBNET_PER_BUCKET:
            return False
        return sum(1 for n in self.contacts() if subnet_of(n.ip or "") == subnet) < SUBNET_PER_TABLE

    def add_contact(self, node: Node) -> None:
        """As upstream (a full bucket keeps its members and pings its head; the newcomer
        waits in the replacement cache), but the ping runs as a tracked task and a node
        over the subnet limits is refused (:meth:`diverse_enough`)."""
        if not self.diverse_enough(node):
            self.refused_diversity += 1
            return
        index = self.get_bucket_for(node)
        bucket = self.buckets[index]
        if bucket.add_node(node):
            return
        if bucket.has_in_range(self.node) or bucket.depth() % 5 != 0:
            self.split_bucket(index)
            self.add_contact(node)
        else:
            spawn = getattr(type(self.protocol), "spawn", None)
            if spawn is not None:
                self.protocol.spawn(self.protocol.call_ping(bucket.head()))


def xor_closest(ids: Iterable[bytes], key: bytes, count: int) -> list[bytes]:
    """Brute-force reference: the ``count`` IDs XOR-closest to ``key`` (tests, tools)."""
    k = int.from_bytes(key, "big")
    return sorted(ids, key=lambda i: int.from_bytes(i, "big") ^ k)[:count]
