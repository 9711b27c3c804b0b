"""Status reporting: what this peer tells the API, the web UI and other peers about itself.

- :meth:`Status.status`: the /api/v1/status figures;
- :meth:`Status.peers`: this peer and the peers the DHT knows, for the network page;
- :meth:`Status.info` / :meth:`Status.dht_info`: our peer info record (over HTTP and
  in the DHT), whose document count and total length other peers' BM25 uses;
- :meth:`Status.sample_history`: the figures over time for the sparklines.

It is given the parts whose figures it reports, not the Peer. The network parts
exist only once the peer listens; :meth:`Status.connect` hands them over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Callable

from yasearch import __version__
from yasearch.config import Config
from yasearch.faults import Faults
from yasearch.dht import DhtNode
from yasearch.handoff import Handoff
from yasearch.history import SAMPLE_INTERVAL, History
from yasearch.index import LocalIndex
from yasearch.jobs import JobManager
from yasearch.network import Resolver, Transport
from yasearch.publisher import Publisher
from yasearch.reachability import Reachability
from yasearch.shard import ShardStore

log = logging.getLogger(__name__)


def backlog_note(status: dict[str, Any]) -> str:
    """Why documents wait to be published: what the publish backlog figure means now."""
    pending = int((status.get("publish") or {}).get("pending", 0))
    if not pending:
        return "Nothing waits to be published."
    what = f"{pending:,} document{'s' if pending != 1 else ''} (or withdrawal{'s' if pending != 1 else ''})"
    if not status.get("peers_known"):
        return (
            f"{what} wait for other peers: this peer knows none yet, so its postings stay in its own "
            "index and are published once it joins a network (start it with --bootstrap HOST:PORT)."
        )
    return f"{what} are being sent to the peers responsible for their terms."


class Status:
    def __init__(
        self,
        peer_id: str,
        name: str,
        url: Callable[[], str],
        config: Config,
        index: LocalIndex,
        shard: ShardStore,
        jobs: JobManager,
        publisher: Publisher,
        handoff: Handoff,
        faults: Faults | None = None,
        reach: Reachability | None = None,
    ) -> None:
        self.reach = reach
        self.peer_id = peer_id
        self.name = name
        self._url = url
        self.config = config
        self.index = index
        self.shard = shard
        self.jobs = jobs
        self.publisher = publisher
        self.handoff = handoff
        self.faults = faults or Faults()
        self.dht: DhtNode | None = None
        self.network_totals: Callable[[], tuple[int, int]] | None = None
        self.resolver: Resolver | None = None
        self.transport: Transport | None = None
        self.started_at = 0.0
        #: The local index's total length (refreshed on every commit, sent in our info).
        self.total_length = 0
        self.postings_held = 0  # refreshed by status(), sent in our peer info
        #: Figures over time for the network page's sparklines (in memory only).
        self.history = History()
        self._info_push: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self._url()

    def connect(
        self, dht: DhtNode, resolver: Resolver, transport: Transport,
        network_totals: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        """The network parts, once the peer listens; ``network_totals``: (documents,
        total length) over the network, what global ranking uses as N."""
        self.dht, self.resolver, self.transport = dht, resolver, transport
        self.network_totals = network_totals

    def start(self) -> None:
        self._sampler = asyncio.create_task(self._sample_history_loop(), name="history")

    async def stop(self) -> None:
        tasks = [t for t in (self._sampler, self._info_push) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def refresh_total_length(self) -> None:
        self.total_length = await self.index.total_length()

    def info_changed(self, delay: float = 5.0) -> None:
        """Our document count changed: tell the peers soon (debounced), because
        their BM25 uses the network-wide N and average length from our info."""
        if self._info_push is not None and not self._info_push.done():
            return

        async def push() -> None:
            await asyncio.sleep(delay)
            if self.dht is not None and self.dht.running:
                try:
                    await self.dht.refresh_info()
                except Exception:  # noqa: BLE001 - the DHT's own periodic exchange retries
                    log.debug("peer info push failed", exc_info=True)

        self._info_push = asyncio.get_running_loop().create_task(push())

    def dht_info(self) -> dict[str, Any]:
        """This peer's info record, as the DHT hands it to other peers."""
        return {
            "name": self.name,
            "http_url": self.url,
            "version": __version__,
            "documents": self.index.doc_count(),
            "stats": {"total_length": self.total_length, "postings_held": self.postings_held},
        }

    def info(self) -> dict[str, Any]:
        """The /p2p/v1/info record, but for the protocol version (Peer.info adds it)."""
        return {
            "peer_id": self.peer_id,
            "name": self.name,
            "version": __version__,
            "http_url": self.url,
            "documents": self.index.doc_count(),
            "total_length": self.total_length,
        }

    def health(self) -> dict[str, Any]:
        """``state`` "ok", or "degraded" with the ``faults`` of the parts that cannot
        write now (the index and the SQLite stores after a full disk: each recovers
        by itself, the stores at their next committed write)."""
        faults: dict[str, Any] = self.faults.snapshot()
        if self.index.fault is not None:
            faults["index"] = {"error": self.index.fault, "since": self.index.fault_since}
        return {"state": "degraded" if faults else "ok", "faults": faults}

    async def status(self) -> dict[str, Any]:
        publish = await self.publisher.figures()
        shard = await self.shard.totals()
        self.postings_held = shard["postings"]
        return {
            "peer_id": self.peer_id,
            "name": self.name,
            "version": __version__,
            **self.health(),
            "url": self.url,
            "uptime_s": round(time.time() - self.started_at, 1),
            "documents": self.index.doc_count(),
            "postings_held": shard.get("postings", 0),
            "peers_known": len(self.dht.known_peers()) if self.dht else 0,
            "reach": self.reach.figures() if self.reach is not None else {"kind": "public"},
            "crawl": self.jobs.summary(),
            "publish": publish,
            "dht": self.dht.stats() if self.dht else {"running": False},
            "network": {
                "replication": self.config.replication,
                "documents": self.network_totals()[0] if self.network_totals is not None else self.index.doc_count(),
                "resolver_lookups": self.resolver.lookups if self.resolver else 0,
                "handoff": {"sent": self.handoff.sent, "failed": self.handoff.failed},
                "p2p": self.transport.figures() if self.transport else {},
            },
            "index": {
                "path": str(Path(self.config.data_dir) / "index"), "documents": self.index.doc_count(),
                "faults": self.index.faults, "recoveries": self.index.recoveries,
            },
        }

    async def peers(self) -> list[dict[str, Any]]:
        me = {
            "peer_id": self.peer_id,
            "name": self.name,
            "url": self.url,
            "version": __version__,
            "documents": self.index.doc_count(),
            "postings_held": self.postings_held,
            "self": True,
            "last_seen": time.time(),
            "reach": self.reach.figures()["kind"] if self.reach is not None else "public",
            "observed": self.reach.observed if self.reach is not None else None,
        }
        others = []
        if self.dht is not None and self.dht.running:
            for p in self.dht.known_peers() + self.dht.known_clients():
                if p.node_id == self.peer_id:
                    continue
                others.append(
                    {
                        "peer_id": p.node_id,
                        "name": p.name,
                        "url": p.http_url,
                        "version": p.version,
                        "documents": p.documents,
                        "postings_held": int(p.stats.get("postings_held", 0)),
                        "self": False,
                        "last_seen": p.last_seen,
                        "reach": p.reach,
                        # where its datagrams come from, as this peer sees it
                        "observed": f"[{p.host}]:{p.port}" if ":" in p.host else f"{p.host}:{p.port}",
                    }
                )
        return [me] + sorted(others, key=lambda d: d["peer_id"])

    async def sample_history(self) -> None:
        """Add one sample of this peer's figures to :attr:`history` (the loop below
        calls it every 10 s; tests call it directly)."""
        status = await self.status()
        publish = status.get("publish") or {}
        dht = status.get("dht") or {}
        self.history.add(
            {
                "documents": status.get("documents", 0),
                "postings_held": status.get("postings_held", 0),
                "publish_sent": publish.get("sent", 0),
                "publish_pending": publish.get("pending", 0),
                "dht_contacts": dht.get("contacts", 0),
            }
        )

    async def _sample_history_loop(self, interval: float = SAMPLE_INTERVAL) -> None:
        while True:
            try:
                await self.sample_history()
            except Exception:  # noqa: BLE001 - a missed sample is a gap in a sparkline
                log.debug("history sample failed", exc_info=True)
            await asyncio.sleep(interval)
