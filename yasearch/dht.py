"""The DHT node: Kademlia membership and routing on UDP, built on ``kademlia`` 2.2.3.

What this module is for
-----------------------
yasearch shards its global inverted index by term key over the peers whose node IDs
are XOR-closest to the key. This module answers exactly one question for the rest of
the peer: *which live peers are closest to this 160-bit key?* (:meth:`DhtNode.closest_peers`),
and keeps a small record of who the other peers are (name, HTTP URL, document count:
:meth:`DhtNode.known_peers`). Postings never travel through kademlia's key/value store
(one value per key, 8 KiB requests, anyone may overwrite, memory only); they go over
HTTP to the peers this module names.

Why subclasses instead of ``kademlia`` as is
--------------------------------------------
kademlia 2.2.3 has defects that make lookups wrong or slow; each is fixed below in a
subclass (and covered by ``tests/test_dht.py``):

1. ``RoutingTable.find_neighbors`` walks buckets with ``TableTraverser``, which stops
   after the first k contacts it meets (not the k closest) and never goes back to the
   left once the right side is exhausted, so it can return wrong peers or none at all
   although the table holds contacts (upstream issue #28, unmerged PR #52).
   :class:`RoutingTable` sorts all contacts by XOR distance instead.
2. A lookup drops a peer that timed out, but re-learns it from the next reply that
   mentions it; as it is already marked "contacted" it is never re-asked and ends up in
   the result. :class:`DhtProtocol` keeps a short-lived *recently dead* set fed by RPC
   timeouts, and :class:`LiveNodeSpiderCrawl` and the routing table filter it out until
   the peer contacts us itself.
3. ``welcome_if_new`` hands stored values to a new node after computing the key node as
   ``digest(key)`` although stored keys are already digests; fixed to use the key as is.
4. The RPC timeout is fixed at 5 s (a lookup after peers died took 10-35 s); it is a
   parameter here, 1 s by default.
5. One missed reply evicts a contact (UDP loses packets; a busy peer answers late).
   Here a contact is evicted after ``max_failures`` consecutive failures (3), and any
   reply resets the count.

Found while testing, fixed as well: a request is re-sent once halfway through its
timeout (a lost datagram must not mark a live peer dead), the UDP receive buffer is
enlarged (bursts of replies overflowed the default one on loopback), joining refreshes
every bucket as the paper says (with small k, whole regions of the ID space otherwise
stayed unknown and lookups returned wrong peers), and malformed datagrams, requests and
node lists are dropped instead of raising inside tasks or aborting a lookup.

Wiring (for ``yasearch.peer``)
------------------------------
Start the HTTP site first (it may pick a free port), then
``DhtNode(identity.node_id, host, http_port, data_dir, info_provider)``, ``await start()``,
``await bootstrap(config_addrs)`` (always call it, also with ``[]``: it re-joins from
``neighbours.json``), and ``await stop()`` on shutdown. ``info_provider()`` returns this
peer's info dict: ``{"name", "http_url", "version", "documents", "stats": {str: int}}``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import os
import random
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import umsgpack
from kademlia.crawling import NodeSpiderCrawl, RPCFindResponse
from kademlia.network import Server
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol
from kademlia.routing import RoutingTable as _KRoutingTable
from kademlia.storage import ForgetfulStorage
from rpcudp.exceptions import MalformedMessage

from yasearch.identity import atomic_write

log = logging.getLogger(__name__)

ID_BYTES = 20
NEIGHBOURS_FILE = "neighbours.json"
NEIGHBOURS_SAVE_MAX = 200

# Bounds on a peer info record: it rides in one UDP datagram (requests are capped at
# 8 KiB by rpcudp) and ends up in our UI, so everything is typed and length-limited.
INFO_NAME_MAX = 64
INFO_URL_MAX = 300
INFO_VERSION_MAX = 32
INFO_STATS_MAX = 16
INFO_STAT_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
INFO_INT_MAX = 2**53
# The kademlia value store is unused by yasearch; bound it so a peer cannot fill our memory.
STORE_MAX_VALUES = 1024
STORE_MAX_VALUE_BYTES = 1024
# Same cap as rpcudp: a request must fit one datagram comfortably.
REQUEST_MAX_BYTES = 8192
# Bursts of replies (a lookup asks up to k peers at once, many lookups run concurrently)
# overflow Linux's default 208 KiB UDP receive buffer; ask for more (capped by rmem_max).
UDP_RCVBUF = 1 << 20

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


# ---------------------------------------------------------------------------
# Peer info records
# ---------------------------------------------------------------------------


@dataclass
class PeerInfo:
    """What we know about another peer: its identity, where its HTTP API is, its size.

    ``last_seen`` is the wall-clock time of the last datagram we got from it (request or
    reply); ``documents`` and ``stats`` are what it last reported (0 / {} until then).
    """

    node_id: str  # hex
    name: str
    http_url: str
    version: str
    documents: int
    last_seen: float
    host: str = ""
    port: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    info_received: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_id(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == ID_BYTES


def _clean_str(value: object, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    return _CONTROL_RE.sub("", value).strip()[:limit]


def _clean_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= INFO_INT_MAX else None


def _clean_url(value: object) -> str | None:
    if not isinstance(value, str) or len(value) > INFO_URL_MAX or _CONTROL_RE.search(value):
        return None
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username or parts.password or parts.query or parts.fragment:
        return None
    return value.rstrip("/")


def validate_info(raw: object) -> dict[str, Any]:
    """Reduce a peer info record from the network to known, typed, bounded fields.

    Unknown keys and values of the wrong type are dropped (not the whole record), so a
    newer peer with extra fields still gets its name and URL across. Strings are
    stripped of control characters and truncated; the URL must be plain http(s).
    """
    out: dict[str, Any] = {}
    if not isinstance(raw, dict):
        return out
    name = _clean_str(raw.get("name"), INFO_NAME_MAX)
    if name:
        out["name"] = name
    version = _clean_str(raw.get("version"), INFO_VERSION_MAX)
    if version:
        out["version"] = version
    url = _clean_url(raw.get("http_url"))
    if url:
        out["http_url"] = url
    docs = _clean_int(raw.get("documents"))
    if docs is not None:
        out["documents"] = docs
    stats_raw = raw.get("stats")
    if isinstance(stats_raw, dict):
        stats: dict[str, int] = {}
        for key, value in stats_raw.items():
            if len(stats) >= INFO_STATS_MAX:
                break
            v = _clean_int(value)
            if isinstance(key, str) and INFO_STAT_KEY_RE.match(key) and v is not None:
                stats[key] = v
        if stats:
            out["stats"] = stats
    return out


def _is_loopback_or_wildcard(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def resolve_http_url(advertised: str | None, ip: str | None, port: int | None) -> str:
    """The HTTP base URL of a contact: its advertised URL, or ``http://ip:port`` (DESIGN).

    A peer bound to 0.0.0.0 tends to advertise ``http://127.0.0.1:P``, which is wrong
    for anyone on another machine; if the advertised host is loopback/wildcard but the
    datagram came from elsewhere, the host is replaced by the sender's address.
    """
    ip = ip or "127.0.0.1"
    netloc_ip = f"[{ip}]" if ":" in ip else ip
    if not advertised:
        return f"http://{netloc_ip}:{port}"
    parts = urlsplit(advertised)
    if _is_loopback_or_wildcard(parts.hostname or "") and not _is_loopback_or_wildcard(ip):
        netloc = f"{netloc_ip}:{parts.port}" if parts.port else netloc_ip
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return advertised


def _parse_node_list(raw: object, limit: int = 64) -> list[Node]:
    """Node tuples from a find_node reply, skipping anything malformed.

    Upstream does ``Node(*tuple)`` on whatever arrived, so one bad entry from one peer
    crashes the whole lookup.
    """
    nodes: list[Node] = []
    if not isinstance(raw, (list, tuple)):
        return nodes
    for item in raw[:limit]:
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            continue
        nid, ip, port = item
        if _is_id(nid) and isinstance(ip, str) and 0 < len(ip) <= 64 and _clean_int(port) and port < 65536:
            nodes.append(Node(nid, ip, port))
    return nodes


# ---------------------------------------------------------------------------
# Fixed kademlia classes
# ---------------------------------------------------------------------------


class RoutingTable(_KRoutingTable):
    """kademlia's routing table with a correct ``find_neighbors`` (fix 1).

    ``is_dead`` is consulted to keep recently unresponsive contacts out of lookups and
    out of our replies to others (fix 2), while they stay in their bucket until they
    have failed ``max_failures`` times (fix 5).
    """

    def __init__(self, protocol: Any, ksize: int, node: Node) -> None:
        super().__init__(protocol, ksize, node)
        self.is_dead: Callable[[bytes], bool] = lambda _id: False

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

    def add_contact(self, node: Node) -> None:
        """As upstream, but the ping of a full bucket's head runs as a tracked task."""
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


class DhtProtocol(KademliaProtocol):
    """kademlia's UDP protocol with the fixes above and the ``peer_info`` RPC.

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
        self.router.is_dead = self.is_recently_dead
        self.dead_ttl = dead_ttl
        self.max_failures = max_failures
        self.info_provider = info_provider or (lambda: {})
        self._dead: dict[bytes, float] = {}  # node id -> monotonic expiry
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
        for fut, timer in list(self._outstanding.values()):
            timer.cancel()
            if not fut.done():
                fut.set_result((False, None))
        self._outstanding.clear()
        for handle in self._retransmits.values():
            handle.cancel()
        self._retransmits.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    # -- liveness (fixes 2 and 5) ------------------------------------------------

    def is_recently_dead(self, node_id: bytes) -> bool:
        expiry = self._dead.get(node_id)
        if expiry is None:
            return False
        if expiry <= time.monotonic():
            del self._dead[node_id]
            return False
        return True

    def recently_dead(self) -> set[bytes]:
        return {nid for nid in list(self._dead) if self.is_recently_dead(nid)}

    def mark_dead(self, node_id: bytes) -> None:
        self._dead[node_id] = time.monotonic() + self.dead_ttl

    def _seen(self, node: Node) -> None:
        """Direct evidence that ``node`` is alive: it sent us a request or a reply."""
        self._dead.pop(node.id, None)
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
        if not _is_id(nodeid):
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
        if not _is_id(nodeid):
            return None
        return super().rpc_ping(sender, nodeid)

    def rpc_find_node(self, sender: tuple[str, int], nodeid: object, key: object) -> list[tuple[Any, ...]] | None:
        if not (_is_id(nodeid) and _is_id(key)):
            return None
        source = Node(nodeid, sender[0], sender[1])
        self.welcome_if_new(source)
        neighbors = self.router.find_neighbors(Node(key), exclude=source)
        return [tuple(n) for n in neighbors]

    def rpc_find_value(self, sender: tuple[str, int], nodeid: object, key: object) -> Any:
        if not (_is_id(nodeid) and _is_id(key)):
            return None
        return super().rpc_find_value(sender, nodeid, key)

    def rpc_store(self, sender: tuple[str, int], nodeid: object, key: object, value: object) -> bool:
        """Kept for protocol compatibility, bounded: yasearch does not use the value store."""
        if not (_is_id(nodeid) and _is_id(key)):
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

    def _accept_response(self, msg_id: bytes, data: Any, address: Any) -> None:
        retx = self._retransmits.pop(msg_id, None)
        if retx is not None:
            retx.cancel()
        entry = self._outstanding.pop(msg_id, None)
        if entry is None:
            return
        future, timer = entry
        timer.cancel()
        if not future.done():
            future.set_result((True, data))

    def _timeout(self, msg_id: bytes) -> None:
        """Upstream logs every timeout at ERROR and crashes on a cancelled future."""
        retx = self._retransmits.pop(msg_id, None)
        if retx is not None:
            retx.cancel()
        entry = self._outstanding.pop(msg_id, None)
        if entry is None:
            return
        future, _timer = entry
        if not future.done():
            future.set_result((False, None))


class LiveNodeSpiderCrawl(NodeSpiderCrawl):
    """A node lookup that never returns peers known to be unresponsive (fix 2).

    Upstream removes a peer that timed out from the heap, but the next reply that lists
    it pushes it back, already marked contacted, so it is returned as if alive. Here a
    node is not pushed if it failed during this lookup, is recently dead, or is us.
    """

    def __init__(self, protocol: DhtProtocol, node: Node, peers: list[Node], ksize: int, alpha: int) -> None:
        self._failed: set[bytes] = set()
        self._self_id: bytes = protocol.source_node.id
        super().__init__(protocol, node, [p for p in peers if self._usable_with(protocol, p)], ksize, alpha)

    def _usable_with(self, protocol: DhtProtocol, n: Node) -> bool:
        return n.id != self._self_id and n.id not in self._failed and not protocol.is_recently_dead(n.id)

    def _usable(self, n: Node) -> bool:
        return self._usable_with(self.protocol, n)

    async def _nodes_found(self, responses: dict[bytes, Any]) -> list[Node]:
        toremove = []
        for peerid, response in responses.items():
            response = RPCFindResponse(response)
            if not response.happened():
                toremove.append(peerid)
                self._failed.add(peerid)
            else:
                self.nearest.push([n for n in _parse_node_list(response.response[1]) if self._usable(n)])
        self.nearest.remove(toremove)
        if self.nearest.have_contacted_all():
            return [n for n in self.nearest if self._usable(n)]
        return await self.find()


class DhtServer(Server):
    """kademlia's Server using :class:`DhtProtocol`; refreshing is left to :class:`DhtNode`."""

    protocol_class = DhtProtocol

    def __init__(
        self,
        ksize: int,
        alpha: int,
        node_id: bytes,
        *,
        protocol_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(ksize=ksize, alpha=alpha, node_id=node_id, storage=ForgetfulStorage())
        self.protocol_kwargs = protocol_kwargs or {}
        self.protocol: DhtProtocol | None = None

    def _create_protocol(self) -> DhtProtocol:
        return self.protocol_class(self.node, self.storage, self.ksize, **self.protocol_kwargs)

    async def listen(self, port: int, interface: str = "0.0.0.0") -> int:  # type: ignore[override]
        """Bind the UDP socket and return the real port (``port=0`` picks a free one).

        Upstream also schedules its hourly refresh here; :class:`DhtNode` runs its own
        maintenance loop instead.
        """
        loop = asyncio.get_running_loop()
        self.transport, self.protocol = await loop.create_datagram_endpoint(
            self._create_protocol, local_addr=(interface, port)
        )
        sock = self.transport.get_extra_info("socket")
        try:
            if sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < UDP_RCVBUF:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
        except OSError as e:  # not fatal: loss is handled by retransmission
            log.debug("cannot enlarge UDP receive buffer: %s", e)
        return int(self.transport.get_extra_info("sockname")[1])

    def stop(self) -> None:
        if self.protocol is not None:
            self.protocol.close()
        super().stop()


# ---------------------------------------------------------------------------
# The node the peer owns
# ---------------------------------------------------------------------------


class DhtNode:
    """A peer's Kademlia node: membership, routing and peer info; no value storage.

    One per peer, on UDP port P next to the peer's HTTP server on TCP port P.
    """

    def __init__(
        self,
        node_id: bytes,
        host: str,
        port: int,
        data_dir: Path,
        info_provider: Callable[[], dict[str, Any]],
        *,
        rpc_timeout: float = 1.0,
        ksize: int = 20,
        alpha: int = 3,
        max_failures: int = 3,
        dead_ttl: float = 45.0,
        maintenance_interval: float = 30.0,
        save_interval: float = 300.0,
        info_interval: float = 300.0,
        refresh_interval: float = 900.0,
    ) -> None:
        if not _is_id(node_id):
            raise ValueError("node_id must be 20 bytes")
        self.node_id = node_id
        self.host = host
        self.port = port
        self.data_dir = Path(data_dir)
        self.info_provider = info_provider
        self.rpc_timeout = rpc_timeout
        self.ksize = ksize
        self.alpha = alpha
        self.max_failures = max_failures
        self.dead_ttl = dead_ttl
        self.maintenance_interval = maintenance_interval
        self.save_interval = save_interval
        self.info_interval = info_interval
        self.refresh_interval = refresh_interval
        self.server: DhtServer | None = None
        self._bootstrap_addrs: list[tuple[str, int]] = []
        self._maintenance_task: asyncio.Task[None] | None = None
        self.lookups = 0

    # -- lifecycle -----------------------------------------------------------------

    @property
    def protocol(self) -> DhtProtocol:
        if self.server is None or self.server.protocol is None:
            raise RuntimeError("DhtNode is not started")
        return self.server.protocol

    @property
    def node(self) -> Node:
        """This node as a contact (its host is the bind address, loopback for a wildcard)."""
        assert self.server is not None
        return self.server.node

    @property
    def running(self) -> bool:
        return self.server is not None

    async def start(self) -> None:
        """Listen on UDP ``host:port``; with port 0, ``self.port`` becomes the real one."""
        if self.server is not None:
            return
        server = DhtServer(
            self.ksize,
            self.alpha,
            self.node_id,
            protocol_kwargs={
                "rpc_timeout": self.rpc_timeout,
                "dead_ttl": self.dead_ttl,
                "max_failures": self.max_failures,
                "info_provider": self.info_provider,
            },
        )
        try:
            self.port = await server.listen(self.port, self.host)
        except OSError as e:
            raise OSError(
                e.errno, f"cannot listen on UDP {self.host}:{self.port} ({e.strerror}); choose another --port"
            ) from None
        server.node.ip = "127.0.0.1" if _is_loopback_or_wildcard(self.host) else self.host
        server.node.port = self.port
        self.server = server
        self._maintenance_task = asyncio.create_task(self._maintenance())
        log.info("dht node %s listening on udp %s:%d", self.node_id.hex()[:12], self.host, self.port)

    async def stop(self) -> None:
        """Save neighbours, then close the socket. Other peers are not told (UDP has no
        goodbye); they notice through timeouts."""
        if self.server is None:
            return
        if self._maintenance_task is not None:
            self._maintenance_task.cancel()
            try:
                await self._maintenance_task
            except asyncio.CancelledError:
                pass
            self._maintenance_task = None
        await self.save_neighbours()
        proto = self.protocol
        tasks = list(proto._tasks)
        self.server.stop()
        self.server = None
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # UDP transports close on a later loop iteration; wait, so a restart can rebind the port
        await proto.closed.wait()

    async def __aenter__(self) -> "DhtNode":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- joining ---------------------------------------------------------------------

    async def _resolve(self, host: str, port: int) -> tuple[str, int] | None:
        """Resolve a bootstrap address (hostnames allowed) for our socket's address family."""
        loop = asyncio.get_running_loop()
        sock = self.server.transport.get_extra_info("socket") if self.server and self.server.transport else None
        family = sock.family if sock is not None else socket.AF_INET
        flags = socket.AI_V4MAPPED if family == socket.AF_INET6 else 0
        try:
            infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM, flags=flags)
        except (OSError, UnicodeError) as e:
            log.warning("cannot resolve bootstrap address %s:%s: %s", host, port, e)
            return None
        if not infos:
            return None
        sockaddr = infos[0][4]
        return (str(sockaddr[0]), int(sockaddr[1]))

    async def _ping_addr(self, addr: tuple[str, int]) -> Node | None:
        result = await self.protocol.ping(addr, self.node_id)
        if result[0] and _is_id(result[1]) and result[1] != self.node_id:
            return Node(result[1], addr[0], addr[1])
        return None

    async def bootstrap(self, addrs: Iterable[tuple[str, int]] = ()) -> int:
        """Join the network through ``addrs`` and the neighbours saved by the last run.

        Always call this after :meth:`start`, also with no addresses: that is how a
        restarted peer re-joins without configuration. The addresses are remembered and
        retried by the maintenance loop while the routing table is empty (e.g. the
        bootstrap peer was not up yet). Returns the number of contacts afterwards.
        """
        addrs = [(str(h), int(p)) for h, p in addrs]
        if addrs:
            self._bootstrap_addrs = addrs
        resolved = await asyncio.gather(*(self._resolve(h, p) for h, p in addrs))
        targets: list[tuple[str, int]] = []
        for addr in [a for a in resolved if a is not None] + self.load_neighbours():
            if addr not in targets and addr != (self.node.ip, self.port):
                targets.append(addr)
        if not targets:
            return len(self.protocol.router.contacts())
        found = await asyncio.gather(*(self._ping_addr(a) for a in targets))
        seeds = [n for n in found if n is not None]
        if seeds:
            crawl = LiveNodeSpiderCrawl(self.protocol, self.node, seeds, self.ksize, self.alpha)
            await crawl.find()
            await self.refresh_buckets()
        n = len(self.protocol.router.contacts())
        log.info("dht bootstrap: %d of %d addresses answered, %d contacts", len(seeds), len(targets), n)
        return n

    # -- lookups ----------------------------------------------------------------------

    async def closest_peers(self, key: bytes, count: int) -> list[Node]:
        """The ``count`` live peers XOR-closest to ``key``, this node included if it is
        among them, closest first.

        A ``NodeSpiderCrawl`` (store-free lookup) seeded from the routing table's nearest
        live contacts; only peers that answered during the lookup are returned.
        """
        if not _is_id(key):
            raise ValueError("key must be 20 bytes")
        if count <= 0:
            return []
        self.lookups += 1
        target = Node(key)
        k = max(self.ksize, count)
        seeds = self.protocol.router.find_neighbors(target, k)
        found: list[Node] = []
        if seeds:
            crawl = LiveNodeSpiderCrawl(self.protocol, target, seeds, k, self.alpha)
            found = await crawl.find()
        nodes = [n for n in found if n.id != self.node_id] + [self.node]
        nodes.sort(key=lambda n: n.long_id ^ target.long_id)
        return nodes[:count]

    def http_url_for(self, node: Node) -> str:
        """Where the HTTP API of a DHT contact is (its advertised URL or ``http://ip:port``)."""
        info = self.protocol.infos.get(node.id, {}) if self.server else {}
        return resolve_http_url(info.get("http_url"), node.ip, node.port)

    # -- peer info ------------------------------------------------------------------------

    def known_peers(self) -> list[PeerInfo]:
        """Other peers in the routing table that are not recently dead, with their info.

        This node is not included (the peer adds its own record); for network-wide
        statistics sum ``documents`` over these plus our own.
        """
        proto = self.protocol
        peers = []
        for n in proto.router.contacts():
            if proto.is_recently_dead(n.id):
                continue
            info = proto.infos.get(n.id)
            peers.append(
                PeerInfo(
                    node_id=n.id.hex(),
                    name=(info or {}).get("name", ""),
                    http_url=resolve_http_url((info or {}).get("http_url"), n.ip, n.port),
                    version=(info or {}).get("version", ""),
                    documents=(info or {}).get("documents", 0),
                    last_seen=proto.last_seen.get(n.id, 0.0),
                    host=n.ip,
                    port=n.port,
                    stats=dict((info or {}).get("stats", {})),
                    info_received=info is not None,
                )
            )
        peers.sort(key=lambda p: p.node_id)
        return peers

    async def refresh_info(self, concurrency: int = 16) -> int:
        """Exchange info records with every live contact (ours goes out with each call).

        Call after our own figures changed (e.g. document count) to announce them; the
        maintenance loop also calls it every ``info_interval``. Returns how many answered.
        """
        proto = self.protocol
        sem = asyncio.Semaphore(concurrency)

        async def one(n: Node) -> bool:
            async with sem:
                return await proto.call_peer_info(n)

        contacts = [n for n in proto.router.contacts() if not proto.is_recently_dead(n.id)]
        results = await asyncio.gather(*(one(n) for n in contacts))
        return sum(1 for r in results if r)

    def stats(self) -> dict[str, Any]:
        """Figures for ``/api/v1/status``."""
        if self.server is None:
            return {"running": False}
        proto = self.protocol
        return {
            "running": True,
            "udp_port": self.port,
            "contacts": len(proto.router.contacts()),
            "recently_dead": len(proto.recently_dead()),
            "lookups": self.lookups,
            **proto.counters,
        }

    # -- neighbours.json ---------------------------------------------------------------------

    @property
    def neighbours_path(self) -> Path:
        return self.data_dir / NEIGHBOURS_FILE

    def _neighbours_doc(self) -> bytes | None:
        """The neighbours file's content (built on the event loop: the table is not thread-safe)."""
        if self.server is None:
            return None
        proto = self.protocol
        contacts = proto.router.contacts()
        if not contacts:
            return None
        contacts.sort(key=lambda n: (proto.is_recently_dead(n.id), -proto.last_seen.get(n.id, 0.0)))
        entries = [{"id": n.id.hex(), "host": n.ip, "port": n.port} for n in contacts[:NEIGHBOURS_SAVE_MAX]]
        doc = {"version": 1, "node_id": self.node_id.hex(), "saved_at": time.time(), "neighbours": entries}
        return json.dumps(doc, indent=1).encode()

    def _write_neighbours(self, data: bytes) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.neighbours_path, data)

    def load_neighbours(self) -> list[tuple[str, int]]:
        """Addresses saved by :meth:`save_neighbours`; a damaged file is ignored (logged)."""
        try:
            doc = json.loads(self.neighbours_path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable %s: %s", self.neighbours_path, e)
            return []
        out: list[tuple[str, int]] = []
        entries = doc.get("neighbours") if isinstance(doc, dict) else None
        for e in entries if isinstance(entries, list) else []:
            if not isinstance(e, dict):
                continue
            host, port = e.get("host"), e.get("port")
            if isinstance(host, str) and host and _clean_int(port) and port < 65536:
                out.append((host, port))
        return out[:NEIGHBOURS_SAVE_MAX]

    # -- maintenance ----------------------------------------------------------------------------

    async def refresh_buckets(self) -> None:
        """Kademlia's bucket refresh: look up our own ID and a random ID in every other
        bucket.

        Part of joining (the paper's join refreshes all buckets farther than the closest
        neighbour; upstream's ``bootstrap`` skips it) and of maintenance. Without it a
        node only learns peers that happen to contact it, and with small k whole regions
        of the ID space can stay unknown to a group of nodes, so their lookups of keys
        there return the wrong peers. The lookups also tell the peers we reach about us.
        """
        top = 2**160 - 1
        ids = [self.node_id]
        for bucket in self.protocol.router.buckets:
            if not bucket.has_in_range(self.node):
                lo, hi = bucket.range
                ids.append(random.randint(lo, min(hi, top)).to_bytes(ID_BYTES, "big"))
        await asyncio.gather(*(self.closest_peers(i, self.ksize) for i in ids))

    async def _check_suspects(self) -> None:
        """Ping contacts with failed RPCs so they are either revived or, after
        ``max_failures`` misses, evicted, instead of lingering in the table forever."""
        proto = self.protocol
        suspects = [n for n in proto.router.contacts() if proto.failures.get(n.id)]
        await asyncio.gather(*(proto.call_ping(n) for n in suspects))

    async def maintain_once(self, *, refresh: bool = True) -> None:
        """One maintenance round (the loop below; callable from tests)."""
        if not self.protocol.router.contacts():
            await self.bootstrap(self._bootstrap_addrs)
        await self._check_suspects()
        if refresh:
            await self.refresh_buckets()

    async def _maintenance(self) -> None:
        now = time.monotonic()
        next_save = now + self.save_interval
        next_info = now + self.info_interval
        next_refresh = now + self.refresh_interval
        while True:
            await asyncio.sleep(self.maintenance_interval)
            now = time.monotonic()
            try:
                await self.maintain_once(refresh=now >= next_refresh)
                if now >= next_refresh:
                    next_refresh = now + self.refresh_interval
                if now >= next_info:
                    next_info = now + self.info_interval
                    await self.refresh_info()
                if now >= next_save:
                    next_save = now + self.save_interval
                    await self.save_neighbours()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dht maintenance failed")

    async def save_neighbours(self) -> None:
        """Write the routing table's contacts (live ones first) for the next start, off the
        event loop. An empty table does not overwrite an earlier file: after a network
        outage the old neighbours are still the best way back in. OSError is logged."""
        try:
            data = self._neighbours_doc()
            if data is not None:
                await asyncio.to_thread(self._write_neighbours, data)
        except OSError as e:
            log.warning("could not save DHT neighbours: %s", e)

    def info_of(self, node_id: bytes) -> dict[str, Any] | None:
        """The last validated info record of a peer, or None."""
        return self.protocol.infos.get(node_id) if self.server is not None else None


def xor_closest(ids: Iterable[bytes], key: bytes, count: int) -> list[bytes]:
    """Brute-force reference: the ``count`` IDs XOR-closest to ``key`` (tests, tools)."""
    k = int.from_bytes(key, "big")
    return sorted(ids, key=lambda i: int.from_bytes(i, "big") ^ k)[:count]


__all__ = [
    "DhtNode",
    "DhtProtocol",
    "DhtServer",
    "LiveNodeSpiderCrawl",
    "PeerInfo",
    "RoutingTable",
    "resolve_http_url",
    "validate_info",
    "xor_closest",
]
