"""Who is responsible for a term, and how we talk to them.

:class:`Resolver` maps a term to the r live peers whose node IDs are XOR-closest
to its key. A DHT node lookup per term would cost thousands of UDP round trips per
page, so terms are grouped by the first ``group_bits`` bits of their key: one lookup
returns the k (= ksize, 20) peers closest to the group's centre, cached for ``ttl``
seconds, and each term's r closest are picked from those by XOR distance. While the
network has at most k peers that is exact; beyond, it is exact as long as the group
is narrow compared to the spacing of node IDs, which ``group_bits`` grows with the
network size to keep.

Once the routing table is *complete* (no bucket ever had to turn a contact away:
every replacement cache is empty, so every peer this node heard of is in the table),
a group is filled from the table, the steady membership and a *sweep* (once per
``ttl``, lookups of a few evenly spaced keys, which find the peers nobody has
introduced to us yet) instead of a DHT lookup per group: a handful of lookups a
minute instead of one per group, which is what lets publishing scale with the
number of peers (with 48 peers, 1,024 groups of lookups cost more than the
postings). Peers the liveness checks found dead (:meth:`Resolver.set_gone`, see
:mod:`yasearch.repair`) are left out of every answer, publishing's too. Queries then
ask the surviving replicas from before the failure first anyway (a peer that took a
dead one's place is farther from the key than all of them), so they are answered
in full while the new replicas are still being filled.

:class:`Transport` sends one p2p request (gzip-compressed JSON over HTTP) and counts
requests and bytes, because bytes per query is a figure we report. What the
requests say is typed in :mod:`yasearch.wire` and sent by :mod:`yasearch.p2pclient`.
"""

from __future__ import annotations

import asyncio
import gzip
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from kademlia.node import Node

from yasearch.analysis import term_key
from yasearch.crawler.outbound import OutboundPolicy, guarded_session, is_blocked

if TYPE_CHECKING:
    from yasearch.dht import DhtNode

#: Bodies larger than this are gzip-compressed.
COMPRESS_ABOVE = 1024
#: Inflated bytes read of one reply. The largest honest reply (a lookup of 16 terms'
#: 2,000 postings each, or of 5,000 full records) stays well below; a peer sending
#: more (or a gzip bomb) has failed the call.
MAX_REPLY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Contact:
    node_id: bytes
    url: str  # HTTP base URL, no trailing slash

    @property
    def hex(self) -> str:
        return self.node_id.hex()


def xor_distance(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


class PeerCallError(Exception):
    """A p2p request failed: unreachable, timed out, or answered with an error."""

    def __init__(self, contact: Contact, message: str, status: int | None = None) -> None:
        super().__init__(f"{contact.url}: {message}")
        self.contact = contact
        self.status = status


#: Seconds an idle p2p connection is kept for the next request.
P2P_KEEPALIVE = 60.0


class Transport:
    """HTTP POSTs of p2p messages (encoded bytes in, reply bytes out), counted.

    The session is opened by :meth:`open` when the peer starts, so a transport can
    be handed to the parts that use it before then. A peer URL is whatever another
    peer advertised, so with a ``policy`` every dial passes the crawler's outbound
    policy: IP literals are checked before the request, names by the session's
    resolver after DNS resolution (``http://0x7f000001:P`` resolves to loopback).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        timeout: float = 5.0,
        policy: OutboundPolicy | None = None,
        max_reply: int = MAX_REPLY_BYTES,
    ) -> None:
        self.session = session
        self.timeout = timeout
        self.policy = policy
        self.blocked = 0  # dials refused by the outbound policy
        self.max_reply = max_reply
        self.requests = 0
        self.failures = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    async def open(self) -> None:
        if self.session is None:
            # idle connections to other peers are kept a minute (under aiohttp's server
            # keep-alive of 75 s): on a WAN a new connection costs a round trip of its own
            self.session = guarded_session(self.policy, keepalive=P2P_KEEPALIVE) if self.policy is not None else (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(keepalive_timeout=P2P_KEEPALIVE))
            )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def call(self, contact: Contact, path: str, data: bytes, *, timeout: float | None = None) -> bytes:
        """POST ``data`` (JSON) to ``path`` of ``contact``; the reply body (a 429's too)."""
        if self.session is None:
            raise RuntimeError("the transport is not open")
        headers = {"Content-Type": "application/json"}
        if len(data) > COMPRESS_ABOVE:
            data = gzip.compress(data, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        if self.policy is not None and not self.policy.url_allowed(contact.url):
            self.blocked += 1
            raise PeerCallError(contact, "blocked: the outbound policy refuses this address")
        self.requests += 1
        self.bytes_sent += len(data)
        t = aiohttp.ClientTimeout(total=timeout or self.timeout)
        try:
            async with self.session.post(contact.url + path, data=data, headers=headers, timeout=t) as resp:
                raw = await self._read_capped(resp)
                wire_bytes = resp.headers.get("Content-Length", "")
                self.bytes_received += int(wire_bytes) if wire_bytes.isdigit() else len(raw)
                if resp.status >= 400 and resp.status != 429:
                    self.failures += 1
                    raise PeerCallError(contact, f"HTTP {resp.status}: {raw[:200]!r}", resp.status)
                return raw
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as e:
            self.failures += 1
            if is_blocked(e):
                self.blocked += 1
                raise PeerCallError(contact, "blocked: the outbound policy refuses this address") from None
            raise PeerCallError(contact, type(e).__name__ + (f": {e}" if str(e) else "")) from None

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        """The reply body, inflated as it arrives, but never more than ``max_reply`` bytes."""
        parts: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self.max_reply:
                raise ValueError(f"reply larger than {self.max_reply} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def figures(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "blocked": self.blocked,
        }


class Resolver:
    """Responsible peers per term, from cached DHT lookups of key-prefix groups."""

    def __init__(
        self,
        dht: "DhtNode | None",
        self_contact: Callable[[], Contact],
        *,
        replication: int = 3,
        ttl: float = 60.0,
        members: Callable[[], list[Contact]] | None = None,
    ) -> None:
        self._dht = dht
        self.members = members
        self.self_contact = self_contact
        self.replication = max(1, replication)
        self.ttl = ttl
        self._groups: dict[tuple[int, int], tuple[float, list[Contact]]] = {}
        self._pending: dict[tuple[int, int], asyncio.Future[list[Contact]]] = {}
        self._dead: dict[bytes, float] = {}
        #: Peers the liveness checks found dead: left out of every answer until they answer again.
        self._gone: frozenset[bytes] = frozenset()
        self._bits: tuple[float, int] | None = None  # (computed at, group bits)
        self.lookups = 0
        #: Groups filled from a complete routing table instead of a DHT lookup.
        self.table_fills = 0
        self.sweeps = 0
        #: (valid until, peers the last sweep found); see _sweep().
        self._swept: tuple[float, list[Contact]] = (0.0, [])
        self._sweeping: asyncio.Future[None] | None = None

    def attach(self, dht: "DhtNode") -> None:
        """The DHT, once the peer has started it (its UDP port follows the HTTP port)."""
        self._dht = dht
        self.invalidate()

    @property
    def dht(self) -> "DhtNode":
        if self._dht is None:
            raise RuntimeError("the resolver has no DHT yet (the peer is not started)")
        return self._dht

    def others_known(self) -> bool:
        """Whether any peer but this one is known (a network of one has nobody to ask)."""
        if self._dht is None:
            return False
        me = self.self_contact().hex
        return any(p.node_id != me for p in self._dht.known_peers())

    def group_bits(self) -> int:
        """Enough bits that a group is narrow compared to the spacing of node IDs
        (recomputed every few seconds: counting the peers costs O(peers), and this is
        asked once per term)."""
        now = time.monotonic()
        if self._bits is None or now - self._bits[0] > 5.0:
            n = self.peers_known() + 1
            self._bits = (now, max(4, min(16, math.ceil(math.log2(n)) + 4)))
        return self._bits[1]

    def peers_known(self) -> int:
        """How many other peers the routing table holds (0 before the DHT runs)."""
        try:
            return len(self.dht.protocol.router.contacts())
        except RuntimeError:
            return 0

    def invalidate(self) -> None:
        """Membership changed: forget cached groups."""
        self._groups.clear()
        self._bits = None

    def set_gone(self, node_ids: set[bytes]) -> None:
        """The peers found dead now (the liveness checks' view): never answered as responsible."""
        self._gone = frozenset(node_ids)

    def gone(self) -> frozenset[bytes]:
        return self._gone

    def table_complete(self) -> bool:
        """Whether the routing table holds every peer this node has heard of: no bucket
        had to keep a newcomer waiting in its replacement cache or refuse it."""
        try:
            router = self.dht.protocol.router
        except RuntimeError:
            return False
        if getattr(router, "refused_diversity", 0):
            return False
        return all(not b.replacement_nodes for b in router.buckets)

    def _directory(self) -> list[Contact]:
        """This peer (unless client-only: it holds no term), every contact of the
        routing table and the steady membership."""
        me = self.self_contact()
        out = {} if self.dht.client_only else {me.node_id: me}
        for n in self.dht.protocol.router.contacts():
            if n.id not in out:
                out[n.id] = Contact(n.id, self.dht.http_url_for(n).rstrip("/"))
        for c in self.members() if self.members is not None else []:
            out.setdefault(c.node_id, c)
        for c in self._swept[1]:
            out.setdefault(c.node_id, c)
        return list(out.values())

    async def _sweep(self) -> None:
        """Once per ``ttl``: DHT lookups of a few evenly spaced keys (4 per k peers,
        at least 4), whose answers together name every peer: a peer nobody
        introduced to us yet is found here, and routes drawn from the table stay
        exact. A handful of lookups a minute instead of one per group."""
        now = time.monotonic()
        if self._swept[0] > now:
            return
        if self._sweeping is None:
            self._sweeping = asyncio.ensure_future(self._do_sweep())
        try:
            await asyncio.shield(self._sweeping)
        finally:
            if self._sweeping is not None and self._sweeping.done():
                self._sweeping = None

    async def _do_sweep(self) -> None:
        n = self.peers_known() + 1
        parts = 1 << max(2, math.ceil(math.log2(max(1.0, n / self.dht.ksize))) + 2)
        keys = [((i << 160) // parts + (1 << 160) // (2 * parts)).to_bytes(20, "big") for i in range(parts)]
        self.lookups += len(keys)
        found = await asyncio.gather(*(self.dht.closest_peers(k, self.dht.ksize) for k in keys), return_exceptions=True)
        me = self.self_contact().node_id
        seen: dict[bytes, Contact] = {}
        for nodes in found:
            if isinstance(nodes, BaseException):
                continue
            for node in nodes:
                if node.id != me:
                    seen.setdefault(node.id, Contact(node.id, self.dht.http_url_for(node).rstrip("/")))
        self._swept = (time.monotonic() + self.ttl, list(seen.values()))
        self.sweeps += 1

    def mark_dead(self, contact: Contact, for_seconds: float = 10.0) -> None:
        """A peer failed an HTTP request: route around it for a little while.

        Only here, not in the DHT: a busy peer that answers one request late is
        not gone, and telling the DHT would drop it from the membership, which
        makes every peer hand off and republish (a storm on a loaded network).
        The DHT judges liveness by its own pings.
        """
        self._dead[contact.node_id] = time.monotonic() + for_seconds

    def failed(self) -> list[bytes]:
        """The peers an HTTP call failed on in the last few seconds (suspects)."""
        now = time.monotonic()
        return [n for n, until in self._dead.items() if until >= now]

    def _alive(self, c: Contact) -> bool:
        until = self._dead.get(c.node_id)
        if until is None:
            return True
        if until < time.monotonic():
            del self._dead[c.node_id]
            return True
        return False

    async def _group(self, key: bytes) -> list[Contact]:
        bits = self.group_bits()
        prefix = int.from_bytes(key, "big") >> (160 - bits)
        gkey = (bits, prefix)
        now = time.monotonic()
        cached = self._groups.get(gkey)
        if cached is not None and cached[0] > now:
            return cached[1]
        pending = self._pending.get(gkey)
        if pending is not None:
            return await asyncio.shield(pending)
        # the centre of the group's slice of the key space
        centre = ((prefix << (160 - bits)) | (1 << (159 - bits))).to_bytes(20, "big") if bits < 160 else key
        if self.table_complete():
            await self._sweep()
        if self.table_complete():  # (again: the sweep may have met peers a full bucket turned away)
            contacts = sorted(self._directory(), key=lambda c: xor_distance(c.node_id, centre))[: self.dht.ksize + 1]
            self.table_fills += 1
            self._groups[gkey] = (now + self.ttl, contacts)
            return contacts
        fut: asyncio.Future[list[Contact]] = asyncio.get_running_loop().create_future()
        self._pending[gkey] = fut
        try:
            self.lookups += 1
            nodes = list(await self.dht.closest_peers(centre, self.dht.ksize))
            # A lookup returns only peers that answered in time; a live peer that was
            # slow is still in the routing table, so merge its nearest contacts in.
            seen = {n.id for n in nodes}
            try:
                table = self.dht.protocol.router.find_neighbors(Node(centre), k=self.dht.ksize)
            except (RuntimeError, AttributeError):
                table = []
            nodes += [n for n in table if n.id not in seen]
            me = self.self_contact()
            contacts = [] if self.dht.client_only else [me]  # a client-only peer holds no term
            for n in nodes:
                if n.id != me.node_id:
                    contacts.append(Contact(n.id, self.dht.http_url_for(n).rstrip("/")))
            # peers the DHT dropped for a moment (a busy peer missing pings) still count
            known = {c.node_id for c in contacts}
            for c in self.members() if self.members is not None else []:
                if c.node_id not in known:
                    contacts.append(c)
                    known.add(c.node_id)
            contacts.sort(key=lambda c: xor_distance(c.node_id, centre))
            contacts = contacts[: self.dht.ksize + 1]
            expected = min(self.dht.ksize, len(self.dht.known_peers()) + 1)
            # an incomplete answer (peers missing) is only trusted for a few seconds
            ttl = self.ttl if len(contacts) >= expected else 5.0
            self._groups[gkey] = (now + ttl, contacts)
            fut.set_result(contacts)
            return contacts
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._pending[gkey]

    async def responsible(self, term: str, count: int | None = None, *, skip_failed: bool = True) -> list[Contact]:
        """The ``count`` (default r) live peers closest to the term's key, closest first.

        ``skip_failed`` routes around peers that just failed an HTTP request, which
        is right for queries (ask the next replica). Publishing passes False: its
        postings belong on the responsible peers themselves, so a failed send is
        retried later rather than put on a peer that is not responsible."""
        key = term_key(term)
        n = count or self.replication
        ranked = sorted(await self._group(key), key=lambda c: xor_distance(c.node_id, key))
        gone = self._gone
        live = [c for c in ranked if c.node_id not in gone and (not skip_failed or self._alive(c))]
        # (the replicas from before a failure that are still alive come first: a peer that
        # took a dead one's place is farther from the key than all of them)
        return live[:n]

    async def prefetch(self, terms: Iterable[str], concurrency: int = 16) -> None:
        """Resolve the groups of these terms, ``concurrency`` at a time, so that asking
        for each term next costs nothing (one group per term, in turn, would make a
        round of a few thousand terms wait for every lookup one after the other)."""
        bits = self.group_bits()
        firsts: dict[int, bytes] = {}
        for t in terms:
            key = term_key(t)
            firsts.setdefault(int.from_bytes(key, "big") >> (160 - bits), key)
        gate = asyncio.Semaphore(concurrency)

        async def one(key: bytes) -> None:
            async with gate:
                await self._group(key)

        await asyncio.gather(*(one(k) for k in firsts.values()))

    async def responsible_many(self, terms: list[str], count: int | None = None) -> dict[str, list[Contact]]:
        out: dict[str, list[Contact]] = {}
        for t in terms:
            out[t] = await self.responsible(t, count)
        return out


async def first_answer(
    contacts: list[Contact],
    ask: Callable[[Contact], Awaitable[Any]],
    *,
    hedge_after: float,
    on_fail: Callable[[Contact], None] | None = None,
) -> tuple[Contact, Any]:
    """Ask the first contact; if it has not answered after ``hedge_after`` s (or failed),
    ask the next one too. Returns the first successful answer; raises the last error."""
    if not contacts:
        raise LookupError("no responsible peer is known")
    tasks: dict[asyncio.Task[Any], Contact] = {}
    remaining = list(contacts)
    last_error: BaseException | None = None
    try:
        while remaining or tasks:
            if remaining:
                c = remaining.pop(0)
                tasks[asyncio.ensure_future(ask(c))] = c
            done, _ = await asyncio.wait(
                tasks, timeout=hedge_after if remaining else None, return_when=asyncio.FIRST_COMPLETED
            )
            for t in done:
                c = tasks.pop(t)
                if t.exception() is None:
                    return c, t.result()
                last_error = t.exception()
                if on_fail is not None:
                    on_fail(c)
        assert last_error is not None
        raise last_error
    finally:
        for t in tasks:
            t.cancel()
