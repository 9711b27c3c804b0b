"""The RPC layer: kademlia's UDP protocol, hardened, plus the handshake and ``peer_info``.

Liveness is tracked here because this is where replies arrive or time out: a failed
call marks the peer recently dead (fix 2 in :mod:`yasearch.dht`) and counts towards
its eviction (fix 5); a request is re-sent once halfway through its timeout (fix 4
made that timeout short). Every datagram, request and argument from the network is
checked before use, and a hostile one is dropped, not raised inside a task.

Trust between strangers (docs/security.md): a contact enters the routing table only
after the handshake of :mod:`.handshake` proved its key, at the address it is filed
under; the value store is off (STORE is refused, nothing is handed to newcomers);
every datagram passes the per-source rate limit, and what we send an address that
has not proven itself is paid from its anti-amplification credit (:mod:`.guard`).

Client-only peers (:mod:`yasearch.reachability`): a peer others cannot dial back says
so, signed, in the handshake and in its info record. Such a contact is answered (it
looks up, publishes and searches like anyone) but never filed in the routing table,
so no lookup returns it and nobody makes it responsible for a term. ``client_only``
is this node's own role, announced the same way.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

from kademlia.node import Node

from yasearch.identity import Identity

from . import handshake as hs
from .guard import Address
from .info import is_node_id, validate_info
from .routing import RecentlyDead, RoutingTable
from .rpc import RpcEndpoint

log = logging.getLogger(__name__)

# Verified keys kept (id -> key, address); beyond it, those not in the table are dropped.
KEYS_MAX = 8192
INFOS_MAX = 4096
HANDSHAKE_RETRY = 15.0  # seconds between handshakes started towards one address


class DhtProtocol(RpcEndpoint):
    """kademlia's UDP protocol with the fixes of :mod:`yasearch.dht`, the handshake and
    the ``peer_info`` RPC (every attribute is created in ``__init__``: see :class:`RpcEndpoint`)."""

    def __init__(
        self,
        source_node: Node,
        storage: Any,
        ksize: int,
        *,
        rpc_timeout: float = 1.0,
        dead_ttl: float = 45.0,
        max_failures: int = 3,
        info_provider: Callable[[], dict[str, Any]] | None = None,
        identity: Identity,
        network: str = "public",
        rate: float = 200.0,
        burst: float = 400.0,
    ) -> None:
        if source_node.id != identity.node_id:
            raise ValueError("source_node.id must be the identity's node id")
        super().__init__(source_node, storage, ksize, rpc_timeout=rpc_timeout, rate=rate, burst=burst)
        self.identity = identity
        self.network = network
        self.cookies = hs.Cookies()
        self.keys: dict[bytes, tuple[bytes, Address]] = {}  # verified: id -> (public key, address)
        self._handshakes: dict[Address, asyncio.Future[Node | None]] = {}
        self._hs_tried: dict[Address, float] = {}  # address -> monotonic time of last attempt
        self._info_seq = 0
        self.info_seq: dict[bytes, int] = {}  # node id -> seq of the cached info record
        self.router = RoutingTable(self, ksize, source_node)
        self.dead = RecentlyDead(dead_ttl)
        self.router.is_dead = self.dead.__contains__
        self.max_failures = max_failures
        self.info_provider = info_provider or (lambda: {})
        self.failures: dict[bytes, int] = {}  # node id -> consecutive failed RPCs
        self.infos: dict[bytes, dict[str, Any]] = {}  # node id -> validated peer info
        self.last_seen: dict[bytes, float] = {}  # node id -> wall clock of last direct contact
        self._info_inflight: set[bytes] = set()
        self._info_tried: dict[bytes, float] = {}  # node id -> monotonic time of last unsolicited ask
        self.info_retry = 60.0
        #: This node's own role: True when it cannot be dialled back (set by DhtNode).
        self.client_only = False
        #: Verified contacts that said (signed) they are client-only: id -> wall clock of last contact.
        self.clients: dict[bytes, float] = {}
        self.counters.update({"rpcs": 0, "rpc_failures": 0, "evictions": 0, "handshakes": 0, "handshakes_failed": 0})

    # -- liveness (fixes 2 and 5) ------------------------------------------------

    def is_recently_dead(self, node_id: bytes) -> bool:
        return node_id in self.dead

    def recently_dead(self) -> set[bytes]:
        return self.dead.ids()

    def mark_dead(self, node_id: bytes) -> None:
        self.dead.add(node_id)

    def _seen(self, node: Node) -> None:
        """Direct evidence that ``node`` is alive: it sent us a request or a reply."""
        self.dead.discard(node.id)
        self.failures.pop(node.id, None)
        self.last_seen[node.id] = time.time()

    def handle_call_response(self, result: Any, node: Node) -> Any:
        """Count failures instead of evicting on the first one (fix 5), and remember
        the failure as "recently dead" so lookups stop returning the node (fix 2).

        A failure at an address other than the one a known node proved its key at
        says nothing about that node: anyone can name a verified ID with a dead
        address in a lookup reply, and must not get the real one evicted that way.
        """
        self.counters["rpcs"] += 1
        if not result[0] and node.id in self.keys and not self.is_verified(node):
            return result
        if not result[0]:
            self.counters["rpc_failures"] += 1
            self.mark_dead(node.id)
            n = self.failures.get(node.id, 0) + 1
            if n >= self.max_failures:
                log.info("no reply from %s %d times in a row, removing it", node, n)
                self.failures.pop(node.id, None)
                self.router.remove_contact(node)
                self.infos.pop(node.id, None)
                self.counters["evictions"] += 1
            else:
                self.failures[node.id] = n
                log.debug("no reply from %s (%d of %d before eviction)", node, n, self.max_failures)
            return result
        self.welcome_if_new(node)
        return result

    def welcome_if_new(self, node: Node, *, budgeted: bool = False) -> None:
        """A contact talked to us directly: refresh it, or prove it before admission.

        A contact whose key we verified at this very address is added or refreshed
        (which also brings a recently dead node back to life). Anyone else is asked
        for the handshake first (at most every ``HANDSHAKE_RETRY`` seconds per address)
        and admitted when it completes. ``budgeted``: the contact only sent us a
        request, so the handshake we start is paid from its anti-amplification credit.

        Fix 3 is gone with the value store: nothing is handed to new nodes.
        """
        if node.id == self.source_node.id or not node.ip or not node.port:
            return
        if self.is_verified(node):
            self._admit(node)
            return
        address = (node.ip, node.port)
        now = time.monotonic()
        if address in self._handshakes or now - self._hs_tried.get(address, -math.inf) < HANDSHAKE_RETRY:
            return
        self.spawn(self.handshake(address, budgeted=budgeted))

    def is_verified(self, node: Node) -> bool:
        """True if ``node`` proved its key at the address it is filed under."""
        entry = self.keys.get(node.id)
        return entry is not None and entry[1] == (node.ip, node.port)

    def _admit(self, node: Node) -> None:
        self._seen(node)
        if node.id in self.clients:
            self.clients[node.id] = time.time()
        else:
            self.router.add_contact(node)
        if node.id not in self.infos and node.id not in self._info_inflight:
            # rate-limited: a peer that does not answer peer_info must not be asked on every datagram
            now = time.monotonic()
            if now - self._info_tried.get(node.id, -math.inf) >= self.info_retry:
                self._info_tried[node.id] = now
                if len(self._info_tried) > 4096:
                    self._info_tried.clear()
                self.spawn(self.call_peer_info(node))

    # -- handshake (proof of key possession) -------------------------------------------

    async def verify_node(self, node: Node) -> bool:
        """True once ``node`` has proven its key at its address (handshaking if needed)."""
        if self.is_verified(node):
            return True
        if node.id == self.source_node.id or not node.ip or not node.port:
            return False
        await self.handshake((node.ip, node.port))
        return self.is_verified(node)

    async def handshake(self, address: Address, *, budgeted: bool = False) -> Node | None:
        """Run the handshake with whoever is at ``address`` (one at a time per address);
        the verified, admitted contact, or None."""
        running = self._handshakes.get(address)
        if running is not None:
            return await asyncio.shield(running)
        self._hs_tried[address] = time.monotonic()
        if len(self._hs_tried) > 4096:
            self._hs_tried.clear()
        future: asyncio.Future[Node | None] = asyncio.get_running_loop().create_future()
        self._handshakes[address] = future
        node = None
        try:
            node = await self._handshake(address, budgeted)
        finally:
            del self._handshakes[address]
            future.set_result(node)
            self.counters["handshakes" if node is not None else "handshakes_failed"] += 1
        return node

    async def _handshake(self, address: Address, budgeted: bool) -> Node | None:
        own = self.identity
        nonce = os.urandom(hs.NONCE_BYTES)
        ok, answer = await self._call_remote(address, "hello", (own.node_id, self.network, nonce), budgeted=budgeted)
        checked = hs.check_hello_answer(answer, self.network, nonce, own.node_id) if ok else None
        if checked is None:
            return None
        peer_id, pubkey, cookie, client = checked
        self.guard.validate(address)  # our nonce came back, signed, from there
        await self._call_remote(
            address, "prove", (own.node_id, *hs.proof(own, self.network, cookie, peer_id, client=self.client_only))
        )
        self._remember_key(peer_id, pubkey, address)
        self.set_client(peer_id, client)
        node = Node(peer_id, address[0], address[1])
        self._admit(node)
        return node

    def _remember_key(self, node_id: bytes, pubkey: bytes, address: Address) -> None:
        self.keys[node_id] = (pubkey, address)
        if len(self.keys) > KEYS_MAX:
            held = {n.id for n in self.router.contacts()}
            for nid in [nid for nid in self.keys if nid not in held][: len(self.keys) // 2]:
                del self.keys[nid]

    def rpc_hello(self, sender: Address, nodeid: object, network: object, nonce: object) -> list[Any] | None:
        """Step 2 of the handshake: sign the asker's nonce, hand out a cookie."""
        if not (is_node_id(nodeid) and hs.is_network(network) and hs.is_challenge(nonce)):
            return None
        if network != self.network:
            return None
        cookie = self.cookies.make(sender, nodeid)
        return hs.hello_answer(self.identity, self.network, nonce, nodeid, cookie, client=self.client_only)

    def rpc_prove(
        self, sender: Address, nodeid: object, pubkey: object, sig: object, cookie: object, role: object = None
    ) -> bool | None:
        """Step 3: the asker signed our cookie; admit it at the address the cookie names
        (``role``: the client-only marker, covered by the signature)."""
        if not (isinstance(nodeid, bytes) and isinstance(cookie, bytes) and isinstance(pubkey, bytes)):
            return None
        if role not in (None, hs.CLIENT) or not self.cookies.check(cookie, sender, nodeid):
            return None
        client = role == hs.CLIENT
        if nodeid == self.source_node.id or not hs.check_proof(
            self.network, self.source_node.id, nodeid, pubkey, sig, cookie, client
        ):
            return None
        self.guard.validate(sender)
        self._remember_key(nodeid, pubkey, sender)
        self.set_client(nodeid, client)
        self._admit(Node(nodeid, sender[0], sender[1]))
        return True

    def set_client(self, node_id: bytes, client: bool) -> None:
        """Record a contact's role, proven by its signature: a client-only contact
        leaves the routing table (and is never filed there while it stays one)."""
        if client:
            if node_id not in self.clients:
                self.clients[node_id] = time.time()
                if len(self.clients) > KEYS_MAX:
                    oldest = sorted(self.clients, key=self.clients.__getitem__)[: len(self.clients) // 2]
                    for nid in oldest:
                        del self.clients[nid]
            self.router.remove_contact(Node(node_id))  # from the bucket and its replacement cache
        else:
            self.clients.pop(node_id, None)

    # -- peer info RPC -------------------------------------------------------------

    def own_info(self) -> list[Any]:
        """Our info record, signed (:func:`.handshake.seal_info`), with a fresh seq."""
        try:
            info = self.info_provider()
        except Exception:  # the provider is the peer's code; a bug there must not break the DHT
            log.exception("info_provider failed")
            info = {}
        self._info_seq = max(self._info_seq + 1, time.time_ns() // 1000)
        info = {**info, "reach": "client-only" if self.client_only else "public"}
        return hs.seal_info(self.identity, self.network, self._info_seq, validate_info(info))

    def _cache_info(self, node_id: bytes, sealed: object) -> bool:
        """Keep a signed record of ``node_id`` if it verifies and is newer than ours."""
        opened = hs.open_info(sealed, self.network, node_id)
        if opened is None:
            return False
        seq, info = opened
        if seq <= self.info_seq.get(node_id, -1):
            return False  # an old record replayed
        if node_id not in self.infos and len(self.infos) >= INFOS_MAX:
            held = {n.id for n in self.router.contacts()}
            for nid in [nid for nid in self.infos if nid not in held]:
                self.infos.pop(nid, None)
                self.info_seq.pop(nid, None)
        self.infos[node_id] = info
        self.info_seq[node_id] = seq
        if "reach" in info:
            self.set_client(node_id, info["reach"] == "client-only")
        return True

    def rpc_peer_info(self, sender: Address, nodeid: bytes, info: object = None) -> list[Any] | None:
        """Exchange signed info records: cache the caller's, answer with ours."""
        if not is_node_id(nodeid):
            return None
        # cache before welcoming, so the welcome does not ask the caller for what it just sent
        self._cache_info(nodeid, info)
        self.welcome_if_new(Node(nodeid, sender[0], sender[1]), budgeted=True)
        return self.own_info()

    async def call_peer_info(self, node_to_ask: Node) -> bool:
        """Send our info to ``node_to_ask`` and cache its answer; False if it did not answer."""
        self._info_inflight.add(node_to_ask.id)
        try:
            address = (node_to_ask.ip, node_to_ask.port)
            result = await self.peer_info(address, self.source_node.id, self.own_info())
            self.handle_call_response(result, node_to_ask)
            if result[0]:
                self._cache_info(node_to_ask.id, result[1])
            return bool(result[0])
        finally:
            self._info_inflight.discard(node_to_ask.id)

    # -- validated upstream RPCs ----------------------------------------------------

    def rpc_ping(self, sender: Address, nodeid: object) -> bytes | None:
        if not is_node_id(nodeid):
            return None
        self.welcome_if_new(Node(nodeid, sender[0], sender[1]), budgeted=True)
        return self.source_node.id

    def rpc_find_node(self, sender: Address, nodeid: object, key: object) -> list[tuple[Any, ...]] | None:
        if not (is_node_id(nodeid) and is_node_id(key)):
            return None
        source = Node(nodeid, sender[0], sender[1])
        self.welcome_if_new(source, budgeted=True)
        neighbors = self.router.find_neighbors(Node(key), exclude=source)
        return [tuple(n) for n in neighbors]

    def rpc_find_value(self, sender: Address, nodeid: object, key: object) -> Any:
        """The value store is off: answered as ``find_node``."""
        return self.rpc_find_node(sender, nodeid, key)

    def rpc_store(self, sender: Address, nodeid: object, key: object, value: object) -> bool:
        """Refused: yasearch stores postings over HTTP, never in Kademlia's value store
        (stored values were handed to every newcomer: a 50-byte ping brought back
        kilobytes, a UDP amplifier)."""
        return False
