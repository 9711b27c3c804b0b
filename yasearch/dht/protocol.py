"""The RPC layer: kademlia's UDP protocol, hardened, plus the ``peer_info`` RPC.

Liveness is tracked here because this is where replies arrive or time out: a failed
call marks the peer recently dead (fix 2 in :mod:`yasearch.dht`) and counts towards
its eviction (fix 5); a request is re-sent once halfway through its timeout (fix 4
made that timeout short). Every datagram, request and argument from the network is
checked before use, and a hostile one is dropped, not raised inside a task.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import umsgpack
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol
from rpcudp.exceptions import MalformedMessage

from .info import is_node_id, validate_info
from .routing import RecentlyDead, RoutingTable

log = logging.getLogger(__name__)

# The kademlia value store is unused by yasearch; bound it so a peer cannot fill our memory.
STORE_MAX_VALUES = 1024
STORE_MAX_VALUE_BYTES = 1024
# Same cap as rpcudp: a request must fit one datagram comfortably.
REQUEST_MAX_BYTES = 8192


class DhtProtocol(KademliaProtocol):
    """kademlia's UDP protocol with the fixes of :mod:`yasearch.dht` and the ``peer_info`` RPC.

    Attribute access matters here: rpcudp turns *any* unknown attribute into a remote
    call, so every attribute used is created in ``__init__``.
    """

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
    ) -> None:
        super().__init__(source_node, storage, ksize)
        self._wait_timeout = rpc_timeout  # fix 4: rpcudp's default is 5 s
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
        self._tasks: set[asyncio.Task[Any]] = set()
        self._retransmits: dict[bytes, asyncio.TimerHandle] = {}
        self.closed = asyncio.Event()  # set once the socket is really closed (port free again)
        self.counters: dict[str, int] = {
            "rpcs": 0, "rpc_failures": 0, "retransmits": 0, "evictions": 0, "requests_in": 0,
        }

    # -- bookkeeping ---------------------------------------------------------

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, keeping a reference so ``stop`` can cancel it."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("dht background task failed: %r", task.exception())

    async def drain(self) -> None:
        """Wait for the background tasks started so far (tests, orderly shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> None:
        """Cancel background tasks and fail outstanding RPCs, so nothing waits on a closed socket."""
        for task in list(self._tasks):
            task.cancel()
        for msg_id in list(self._outstanding):
            self._settle(msg_id, (False, None))
        for handle in self._retransmits.values():
            handle.cancel()
        self._retransmits.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

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
        the failure as "recently dead" so lookups stop returning the node (fix 2)."""
        self.counters["rpcs"] += 1
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

    def welcome_if_new(self, node: Node) -> None:
        """Add or refresh a contact that just talked to us directly.

        Every call site is direct contact (an incoming request, or a reply to our call),
        so this is also where a recently dead node comes back to life. Upstream only
        acted on new nodes, so a peer that restarted on a new port kept its stale address;
        here ``add_contact`` also refreshes a known contact (and its LRU position).

        Fix 3: the value-store handoff used ``Node(digest(key))`` although stored keys
        are digests already, so new nodes rarely got what they should.
        """
        if node.id == self.source_node.id or not node.ip or not node.port:
            return
        self._seen(node)
        is_new = self.router.is_new_node(node)
        if is_new:
            for key, value in self.storage:
                keynode = Node(key)
                neighbors = self.router.find_neighbors(keynode)
                if neighbors:
                    last = neighbors[-1].distance_to(keynode)
                    new_node_close = node.distance_to(keynode) < last
                    first = neighbors[0].distance_to(keynode)
                    this_closest = self.source_node.distance_to(keynode) < first
                if not neighbors or (new_node_close and this_closest):
                    self.spawn(self.call_store(node, key, value))
        self.router.add_contact(node)
        if node.id not in self.infos and node.id not in self._info_inflight:
            # rate-limited: a peer that does not answer peer_info must not be asked on every datagram
            now = time.monotonic()
            if now - self._info_tried.get(node.id, -math.inf) >= self.info_retry:
                self._info_tried[node.id] = now
                if len(self._info_tried) > 4096:
                    self._info_tried.clear()
                self.spawn(self.call_peer_info(node))

    # -- peer info RPC -------------------------------------------------------------

    def own_info(self) -> dict[str, Any]:
        try:
            return validate_info(self.info_provider())
        except Exception:  # the provider is the peer's code; a bug there must not break the DHT
            log.exception("info_provider failed")
            return {}

    def rpc_peer_info(self, sender: tuple[str, int], nodeid: bytes, info: object = None) -> dict[str, Any] | None:
        """Exchange info records: cache the caller's, answer with ours."""
        if not is_node_id(nodeid):
            return None
        # cache before welcoming, so the welcome does not ask the caller for what it just sent
        self.infos[nodeid] = validate_info(info)
        self.welcome_if_new(Node(nodeid, sender[0], sender[1]))
        return self.own_info()

    async def call_peer_info(self, node_to_ask: Node) -> bool:
        """Send our info to ``node_to_ask`` and cache its answer; False if it did not answer."""
        self._info_inflight.add(node_to_ask.id)
        try:
            address = (node_to_ask.ip, node_to_ask.port)
            result = await self.peer_info(address, self.source_node.id, self.own_info())
            self.handle_call_response(result, node_to_ask)
            if result[0]:
                self.infos[node_to_ask.id] = validate_info(result[1])
            return bool(result[0])
        finally:
            self._info_inflight.discard(node_to_ask.id)

    # -- validated upstream RPCs ----------------------------------------------------

    def rpc_ping(self, sender: tuple[str, int], nodeid: object) -> bytes | None:
        if not is_node_id(nodeid):
            return None
        return super().rpc_ping(sender, nodeid)

    def rpc_find_node(self, sender: tuple[str, int], nodeid: object, key: object) -> list[tuple[Any, ...]] | None:
        if not (is_node_id(nodeid) and is_node_id(key)):
            return None
        source = Node(nodeid, sender[0], sender[1])
        self.welcome_if_new(source)
        neighbors = self.router.find_neighbors(Node(key), exclude=source)
        return [tuple(n) for n in neighbors]

    def rpc_find_value(self, sender: tuple[str, int], nodeid: object, key: object) -> Any:
        if not (is_node_id(nodeid) and is_node_id(key)):
            return None
        return super().rpc_find_value(sender, nodeid, key)

    def rpc_store(self, sender: tuple[str, int], nodeid: object, key: object, value: object) -> bool:
        """Kept for protocol compatibility, bounded: yasearch does not use the value store."""
        if not (is_node_id(nodeid) and is_node_id(key)):
            return False
        if not isinstance(value, (int, float, bool, str, bytes)) or (
            isinstance(value, (str, bytes)) and len(value) > STORE_MAX_VALUE_BYTES
        ):
            return False
        data = getattr(self.storage, "data", None)
        if data is not None and key not in data and len(data) >= STORE_MAX_VALUES:
            return False
        return super().rpc_store(sender, nodeid, key, value)

    # -- hardened rpcudp plumbing --------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        """rpcudp's remote-call magic (``self.find_node(addr, ...)`` calls ``rpc_find_node``
        over there), routed through :meth:`_call_remote`, which retransmits."""
        if name.startswith("_") or name.startswith("rpc_"):
            raise AttributeError(name)

        def func(address: tuple[str, int], *args: Any) -> asyncio.Future[tuple[bool, Any]]:
            return self._call_remote(address, name, args)

        return func

    def _call_remote(self, address: tuple[str, int], name: str, args: tuple[Any, ...]) -> asyncio.Future[tuple[bool, Any]]:
        """Send one request; the future resolves to ``(True, reply)`` or ``(False, None)``.

        Unlike rpcudp, the datagram is sent a second time (same message id) halfway
        through the timeout if no reply came. UDP drops packets under bursts; without
        this a single lost datagram would make a live peer "recently dead" (fix 2) and
        drop it from lookups for ``dead_ttl``. A dead peer still costs one timeout. All
        our RPCs are idempotent, so a request handled twice does no harm.
        """
        if self.transport is None:
            raise RuntimeError("DHT protocol is not connected")
        data = umsgpack.packb([name, list(args)])
        if len(data) > REQUEST_MAX_BYTES:
            raise MalformedMessage(f"request {name} is {len(data)} bytes, over {REQUEST_MAX_BYTES}")
        msg_id = os.urandom(20)
        txdata = b"\x00" + msg_id + data
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bool, Any]] = loop.create_future()
        timer = loop.call_later(self._wait_timeout, self._timeout, msg_id)
        self._outstanding[msg_id] = (future, timer)
        self._retransmits[msg_id] = loop.call_later(self._wait_timeout / 2, self._retransmit, msg_id, txdata, address)
        self.transport.sendto(txdata, address)
        return future

    def _retransmit(self, msg_id: bytes, txdata: bytes, address: tuple[str, int]) -> None:
        self._retransmits.pop(msg_id, None)
        if msg_id in self._outstanding and self.transport is not None and not self.transport.is_closing():
            self.counters["retransmits"] += 1
            self.transport.sendto(txdata, address)

    async def _solve_datagram(self, datagram: bytes, address: Any) -> None:
        """Upstream lets a garbage datagram raise inside a task; drop it quietly instead."""
        try:
            await super()._solve_datagram(datagram, address)
        except Exception as e:
            log.debug("dropping malformed datagram from %s: %r", address, e)

    async def _accept_request(self, msg_id: bytes, data: Any, address: Any) -> None:
        """Dispatch ``rpc_*`` calls, ignoring malformed ones instead of raising in a task."""
        if not isinstance(data, list) or len(data) != 2:
            return
        funcname, args = data
        if not isinstance(funcname, str) or not isinstance(args, (list, tuple)) or len(args) > 8:
            return
        func = getattr(type(self), f"rpc_{funcname}", None)
        if func is None or not callable(func):
            return
        self.counters["requests_in"] += 1
        try:
            response = getattr(self, f"rpc_{funcname}")(address, *args)
            if asyncio.iscoroutine(response):
                response = await response
            payload = umsgpack.packb(response)
        except Exception as e:
            log.debug("rpc_%s from %s failed: %r", funcname, address, e)
            return
        if self.transport is not None:
            self.transport.sendto(b"\x01" + msg_id + payload, address)

    def _settle(self, msg_id: bytes, result: tuple[bool, Any]) -> None:
        """Resolve an outstanding request once, by its reply or its timeout, whichever
        comes first; the other one (and a pending retransmit) then finds nothing to do."""
        retx = self._retransmits.pop(msg_id, None)
        if retx is not None:
            retx.cancel()
        entry = self._outstanding.pop(msg_id, None)
        if entry is None:
            return
        future, timer = entry
        timer.cancel()
        if not future.done():
            future.set_result(result)

    def _accept_response(self, msg_id: bytes, data: Any, address: Any) -> None:
        self._settle(msg_id, (True, data))

    def _timeout(self, msg_id: bytes) -> None:
        """Upstream logs every timeout at ERROR and crashes on a cancelled future."""
        self._settle(msg_id, (False, None))
