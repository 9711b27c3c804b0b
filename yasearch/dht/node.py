"""The node the peer owns: lifecycle, joining, lookups, peer info, saved neighbours.

Wiring (for ``yasearch.peer``)
------------------------------
Start the HTTP site first (it may pick a free port), then
``DhtNode(identity, host, http_port, data_dir, info_provider, network=config.network)``
(``identity``: :class:`yasearch.identity.Identity`, whose key signs the handshake and
our info record), ``await start()``,
``await bootstrap(config_addrs)`` (always call it, also with ``[]``: it re-joins from
``neighbours.json``), and ``await stop()`` on shutdown. ``info_provider()`` returns this
peer's info dict: ``{"name", "http_url", "version", "documents", "stats": {str: int}}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kademlia.node import Node

from yasearch.identity import Identity, atomic_write

from .info import ID_BYTES, PeerInfo, is_loopback_or_wildcard, is_node_id, is_port, resolve_http_url
from .lookup import LiveNodeSpiderCrawl
from .protocol import DhtProtocol
from .server import DhtServer

log = logging.getLogger(__name__)

NEIGHBOURS_FILE = "neighbours.json"
NEIGHBOURS_SAVE_MAX = 200


class DhtNode:
    """A peer's Kademlia node: membership, routing and peer info; no value storage.

    One per peer, on UDP port P next to the peer's HTTP server on TCP port P.

    ``server_class`` and ``crawl_class`` are seams for ``bench/dhtsim.py``: a
    simulation puts many nodes on an in-memory datagram transport (a server whose
    ``listen`` attaches to it instead of binding a socket) and counts lookup rounds
    (a crawl subclass). Peers always use the defaults.
    """

    server_class: type[DhtServer] = DhtServer
    crawl_class: type[LiveNodeSpiderCrawl] = LiveNodeSpiderCrawl

    def __init__(
        self,
        identity: Identity,
        host: str,
        port: int,
        data_dir: Path,
        info_provider: Callable[[], dict[str, Any]],
        *,
        network: str = "public",
        rate: float = 200.0,
        burst: float = 400.0,
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
        self.identity = identity
        self.node_id = identity.node_id
        self.network = network
        self.rate = rate
        self.burst = burst
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

    @property
    def client_only(self) -> bool:
        """True when this node runs as a client-only peer (:mod:`yasearch.reachability`):
        it says so, signed, in its handshakes, and is never among the peers its own
        lookups return."""
        return self.server is not None and self.protocol.client_only

    async def set_client_only(self, client_only: bool) -> None:
        """Change this node's role and tell every contact at once (in our info record):
        a peer that turned client-only leaves their routing tables now, not at the
        next periodic exchange."""
        proto = self.protocol
        if proto.client_only == client_only:
            return
        proto.client_only = client_only
        await self.refresh_info()

    async def start(self) -> None:
        """Listen on UDP ``host:port``; with port 0, ``self.port`` becomes the real one."""
        if self.server is not None:
            return
        server = self.server_class(
            self.ksize,
            self.alpha,
            self.node_id,
            protocol_kwargs={
                "rpc_timeout": self.rpc_timeout,
                "dead_ttl": self.dead_ttl,
                "max_failures": self.max_failures,
                "info_provider": self.info_provider,
                "identity": self.identity,
                "network": self.network,
                "rate": self.rate,
                "burst": self.burst,
            },
        )
        try:
            self.port = await server.listen(self.port, self.host)
        except OSError as e:
            raise OSError(
                e.errno, f"cannot listen on UDP {self.host}:{self.port} ({e.strerror}); choose another --port"
            ) from None
        server.node.ip = "127.0.0.1" if is_loopback_or_wildcard(self.host) else self.host
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
        # the handshake both finds out who is there and proves it (no unproven seeds)
        found = await asyncio.gather(*(self.protocol.handshake(a) for a in targets))
        seeds = [n for n in found if n is not None]
        if seeds:
            crawl = self.crawl_class(self.protocol, self.node, seeds, self.ksize, self.alpha)
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
        live contacts; only peers that answered during the lookup and proved their key
        are returned.
        """
        if not is_node_id(key):
            raise ValueError("key must be 20 bytes")
        if count <= 0:
            return []
        self.lookups += 1
        target = Node(key)
        k = max(self.ksize, count)
        seeds = self.protocol.router.find_neighbors(target, k)
        found: list[Node] = []
        if seeds:
            crawl = self.crawl_class(self.protocol, target, seeds, k, self.alpha)
            found = await crawl.find()
        nodes = [n for n in found if n.id != self.node_id]
        if not self.client_only:  # a client-only node is responsible for nothing, not even to itself
            nodes.append(self.node)
        nodes.sort(key=lambda n: n.long_id ^ target.long_id)
        return nodes[:count]

    def http_url_for(self, node: Node) -> str:
        """Where the HTTP API of a DHT contact is (its advertised URL or ``http://ip:port``)."""
        info = self.info_of(node.id) or {}
        return resolve_http_url(info.get("http_url"), node.ip, node.port)

    # -- peer info ------------------------------------------------------------------------

    def info_of(self, node_id: bytes) -> dict[str, Any] | None:
        """The last validated info record peer ``node_id`` sent us; None if it sent none
        (yet) or the node is not running. The cached record itself: do not modify it."""
        if self.server is None or self.server.protocol is None:
            return None
        return self.protocol.infos.get(node_id)

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
            info = self.info_of(n.id)
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
                    reach=(info or {}).get("reach", "public"),
                )
            )
        peers.sort(key=lambda p: p.node_id)
        return peers

    def known_clients(self, within: float = 600.0) -> list[PeerInfo]:
        """Client-only peers that proved their key and talked to us in the last
        ``within`` seconds: shown on the network page, in no routing table."""
        proto = self.protocol
        cutoff = time.time() - within
        out = []
        for node_id, seen in proto.clients.items():
            if seen < cutoff or node_id not in proto.keys:
                continue
            info = self.info_of(node_id) or {}
            host, port = proto.keys[node_id][1]
            out.append(
                PeerInfo(
                    node_id=node_id.hex(), name=info.get("name", ""),
                    http_url=resolve_http_url(info.get("http_url"), host, port), version=info.get("version", ""),
                    documents=info.get("documents", 0), last_seen=proto.last_seen.get(node_id, seen),
                    host=host, port=port, stats=dict(info.get("stats", {})), info_received=bool(info),
                    reach="client-only",
                )
            )
        out.sort(key=lambda p: p.node_id)
        return out

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

    async def save_neighbours(self) -> None:
        """Write the routing table's contacts (live ones first) for the next start.

        An empty table does not overwrite an earlier file: after a network outage the
        old neighbours are still the best way back in. The document is built on the
        event loop (the table is not thread-safe); the write and its fsync run in a
        thread. A failed write is logged, not raised: the DHT works without the file.
        """
        data = self._neighbours_doc()
        if data is None:
            return
        try:
            await asyncio.to_thread(self._write_neighbours, data)
        except OSError as e:
            log.warning("could not save DHT neighbours: %s", e)

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
            if isinstance(host, str) and host and is_port(port):
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
