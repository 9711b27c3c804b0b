"""The Peer: one object that owns every part of a running peer.

Tests start Peers; the CLI starts one; the web UI and the JSON API talk to it
through the methods below and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from yasearch.crawler.types import CrawlSpec
from yasearch.crawler.urls import canonicalize
from yasearch import __version__
from yasearch.analysis import doc_id
from yasearch.app import build_app
from yasearch.config import Config
from yasearch.identity import load_or_create
from yasearch.index import LocalIndex
from yasearch.dht import DhtNode
from yasearch.handoff import Handoff
from yasearch.history import SAMPLE_INTERVAL, History
from yasearch.jobs import Job, JobManager
from yasearch.netsearch import GlobalSearch
from yasearch.network import Contact, Resolver, Transport
from yasearch.p2p import PROTOCOL_VERSION
from yasearch.publisher import Publisher
from yasearch.query import parse_query
from yasearch.records import DocRecord, SearchResponse
from yasearch.search import search_local
from yasearch.shard import ShardStore
from yasearch.suggest import Suggester

log = logging.getLogger(__name__)



class Peer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.identity = load_or_create(self.data_dir)
        self.name = config.name or f"peer-{self.identity.hex[:8]}"
        self.index = LocalIndex(
            self.data_dir / "index",
            commit_interval=config.commit_interval,
            commit_batch=config.commit_batch,
            limitmb=config.index_limitmb,
            writer_process=config.index_writer_process,
        )
        self.jobs = JobManager(config, self.index)
        self.suggester = Suggester(self.index)
        self.shard = ShardStore(
            self.data_dir / "shard.db",
            quota_per_origin=config.shard_quota_per_origin,
            max_age=config.shard_max_age,
        )
        self.dht: DhtNode | None = None
        self.publisher = Publisher(self, self.data_dir / "publish.db")
        self.resolver: Resolver | None = None
        self.transport: Transport | None = None
        self.global_search = GlobalSearch(self, budget=config.search_budget)
        self.handoff = Handoff(self)
        self.started_at = 0.0
        self.port = config.port
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._started = False
        self._total_length = 0
        self._postings_held = 0  # refreshed by status(), sent in our peer info
        self._info_push: asyncio.Task[None] | None = None
        self._stable: dict[bytes, tuple[Contact, float]] = {}  # see stable_members()
        self._bg: set[asyncio.Task[Any]] = set()  # one-shot work (settle() waits for it)
        self._daemons: list[asyncio.Task[Any]] = []  # loops that run until stop()
        #: Figures over time for the network page's sparklines (in memory only).
        self.history = History()

    @property
    def peer_id(self) -> str:
        return self.identity.hex

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "", "::") else self.config.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self.started_at = time.time()
        await self.index.open()
        self._runner = web.AppRunner(build_app(self), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            await self.index.close()
            raise OSError(
                e.errno, f"cannot listen on {self.config.host}:{self.config.port} ({e.strerror}); "
                "is another peer running there? choose another --port"
            ) from None
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        if sockets:
            self.port = sockets[0].getsockname()[1]
        await self.shard.open()
        self._total_length = await self.index.total_length()
        self.index.on_commit.append(lambda _ids: self._spawn(self._refresh_total_length()))
        self.index.on_commit.append(lambda _ids: self._info_changed())
        # Kademlia on UDP port P beside HTTP on TCP port P (DESIGN.md).
        self.dht = DhtNode(self.identity.node_id, self.config.host, self.port, self.data_dir, self._dht_info)
        try:
            await self.dht.start()
        except OSError:
            await self._runner.cleanup()
            await self.shard.close()
            await self.index.close()
            raise
        self._session = aiohttp.ClientSession()
        self.transport = Transport(self._session)
        self.resolver = Resolver(
            self.dht, self.contact, replication=self.config.replication,
            members=lambda: list(self.stable_members().values()),
        )
        await self.publisher.start()
        self.jobs.on_indexed.append(lambda docs: self._spawn(self.publisher.enqueue(docs)))
        self.jobs.on_removed.append(lambda ids: self._spawn(self.publisher.remove(ids)))
        self.publisher.on_published.append(self.jobs.published)
        await self.jobs.start()
        self._started = True
        self._daemons = [
            asyncio.create_task(self._join(), name="join"),
            asyncio.create_task(self._watch_membership(), name="membership"),
            asyncio.create_task(self._upkeep(), name="upkeep"),
            asyncio.create_task(self._sample_history_loop(), name="history"),
        ]
        log.info("peer %s (%s) listening on %s", self.name, self.peer_id[:12], self.url)

    async def stop(self) -> None:
        """Clean shutdown: stop crawling, commit the index, close everything."""
        if not self._started:
            return
        self._started = False
        await self.jobs.stop()
        extra = [self._info_push] if self._info_push is not None else []
        for task in [*self._bg, *self._daemons, *extra]:
            task.cancel()
        await asyncio.gather(*self._bg, *self._daemons, *extra, return_exceptions=True)
        await self.publisher.stop()
        if self.dht is not None:
            await self.dht.stop()
        if self._runner:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        await self.shard.close()
        await self.index.close()

    async def __aenter__(self) -> "Peer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- public API (used by the JSON API, the web UI and tests) ---------------

    async def search(self, q: str, *, limit: int = 10, offset: int = 0, scope: str = "global",
                     facets: bool = False) -> SearchResponse:
        """Search. In a network of one, 'global' is answered from the local index.
        Local search counts ``facets`` (hosts, languages) only when asked; global always does."""
        parsed = parse_query(q)
        if scope == "global" and self.dht is not None:
            return await self.global_search.search(parsed, limit=limit, offset=offset)
        resp = await search_local(self.index, parsed, limit=limit, offset=offset, facets=facets)
        resp.scope = scope
        return resp

    async def start_crawl(self, spec: CrawlSpec) -> Job:
        return await self.jobs.create(spec)

    async def suggest(self, q: str, *, limit: int = 10) -> list[str]:
        """Completions of the last word of ``q`` from this peer's indexed titles."""
        return await self.suggester.complete(q, limit=limit)

    # -- the local index: browse and remove (index browser, admin API) ----------

    async def documents_by_host(self) -> list[tuple[str, int]]:
        """(host, documents) of the local index, most documents first."""
        return await self.index.documents_by_host()

    async def documents_of_host(self, host: str, offset: int = 0, limit: int = 50) -> tuple[int, list[DocRecord]]:
        """(total, one page of records ordered by URL) of ``host``'s documents."""
        return await self.index.documents_of_host(host.strip().lower(), offset, limit)

    async def lookup_url(self, url: str) -> DocRecord | None:
        """The local record of ``url`` (any spelling of it that canonicalizes alike), or None."""
        url = url.strip()
        canon = canonicalize(url)
        if canon is not None:
            rec = await self.index.get(doc_id(canon))
            if rec is None:
                rec = await self.index.get_url(canon)
            if rec is not None:
                return rec
        return await self.index.get_url(url) if url and url != canon else None

    async def remove_url(self, url: str) -> bool:
        """Remove one document from the index and withdraw its postings from the network.

        Returns False when the URL is not in the index. The deletion is committed
        before this returns, so local searches stop finding it at once; the
        withdrawals go out through the publisher's persistent queue (retried while
        a holder is down), so global searches stop finding it once they are sent.
        """
        rec = await self.lookup_url(url)
        if rec is None:
            return False
        await self._remove_doc_ids([rec.doc_id])
        return True

    async def remove_host(self, host: str) -> int:
        """Remove every document of ``host`` (exact ``host[:port]``); returns how many.

        The doc ids are read first and exactly those are deleted and withdrawn, so a
        page indexed meanwhile is never deleted without its postings being withdrawn.
        """
        ids = await self.index.doc_ids_of_host(host.strip().lower())
        if ids:
            await self._remove_doc_ids(ids)
        return len(ids)

    async def _remove_doc_ids(self, ids: list[str]) -> None:
        await asyncio.gather(*(self.index.delete(d) for d in ids))
        await self.index.flush()
        await self.publisher.remove(ids)

    # -- network ---------------------------------------------------------------

    def contact(self) -> Contact:
        return Contact(self.identity.node_id, self.url)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    def _info_changed(self, delay: float = 5.0) -> None:
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

    async def _refresh_total_length(self) -> None:
        self._total_length = await self.index.total_length()

    def _dht_info(self) -> dict[str, Any]:
        """This peer's info record, as the DHT hands it to other peers."""
        return {
            "name": self.name,
            "http_url": self.url,
            "version": __version__,
            "documents": self.index.doc_count(),
            "stats": {"total_length": self._total_length, "postings_held": self._postings_held},
        }

    async def info(self) -> dict[str, Any]:
        """The /p2p/v1/info record."""
        return {
            "v": PROTOCOL_VERSION,
            "peer_id": self.peer_id,
            "name": self.name,
            "version": __version__,
            "http_url": self.url,
            "documents": self.index.doc_count(),
            "total_length": self._total_length,
        }

    def _bootstrap_addrs(self) -> list[tuple[str, int]]:
        out = []
        for entry in self.config.bootstrap:
            host, _, port = entry.rpartition(":")
            if host and port.isdigit():
                out.append((host.strip("[]"), int(port)))
        return out

    async def _join(self) -> None:
        assert self.dht is not None
        try:
            await self.dht.bootstrap(self._bootstrap_addrs())
            await self.dht.refresh_info()
            await self._save_neighbours()
        except Exception:  # noqa: BLE001 - the maintenance loop retries
            log.warning("could not join the network yet", exc_info=log.isEnabledFor(logging.DEBUG))

    async def join(self, addrs: list[tuple[str, int]]) -> int:
        """Join through these peers now (tests, the demo); returns contacts known."""
        assert self.dht is not None
        n = await self.dht.bootstrap(addrs)
        await self.dht.refresh_info()
        if self.resolver is not None:
            self.resolver.invalidate()
        return n

    async def _watch_membership(self, interval: float = 2.0) -> None:
        """When peers join or leave, routes change: save neighbours, re-resolve and
        hand off held postings to peers that became responsible.

        A join counts at once; a departure only after the peer has been missing for
        ``membership_grace`` seconds, so a busy peer that misses a few pings is not a change
        (on a loaded network such flaps made every peer hand off and republish
        all the time). A change is handled by the holders' handoff alone; origins
        republish on their periodic schedule (``republish_interval``), not on every
        change. Handoff runs in one background task at a time, so this loop never
        waits on it.
        """
        assert self.dht is not None

        def members() -> set[bytes]:
            return set(self.stable_members()) | {self.identity.node_id}

        known = members()
        await self.handoff.membership_changed(known)
        redistribute: asyncio.Task[None] | None = None
        again = False

        async def redistribute_loop() -> None:
            nonlocal again
            while True:
                again = False
                try:
                    await self.handoff.membership_changed(members())
                except Exception:  # noqa: BLE001 - republishing repairs it later
                    log.warning("handoff failed", exc_info=True)
                if not again:
                    return

        try:
            while True:
                await asyncio.sleep(interval)
                now = members()
                if now == known:
                    continue
                log.info("membership changed (%d -> %d peers): handoff", len(known), len(now))
                known = now
                await self._save_neighbours()
                if self.resolver is not None:
                    self.resolver.invalidate()
                if redistribute is None or redistribute.done():
                    redistribute = asyncio.create_task(redistribute_loop(), name="redistribute")
                else:
                    again = True
        finally:
            if redistribute is not None and not redistribute.done():
                redistribute.cancel()
                await asyncio.gather(redistribute, return_exceptions=True)

    def stable_members(self) -> dict[bytes, Contact]:
        """The other peers, counting one as gone only after ``membership_grace`` s.

        The DHT's own view drops a peer for a while after a few missed UDP replies;
        on a busy network that flaps. Routing (which peers hold which terms) and
        handoff use this steadier view, so a slow peer still gets its postings
        (sends to it are retried) instead of a peer that is not responsible."""
        now = time.monotonic()
        if self.dht is not None and self.dht.running:
            for p in self.dht.known_peers():
                if p.node_id != self.peer_id:
                    node = bytes.fromhex(p.node_id)
                    self._stable[node] = (Contact(node, p.http_url.rstrip("/")), now)
        for node, (_c, seen) in list(self._stable.items()):
            if now - seen > self.config.membership_grace:
                del self._stable[node]
        return {node: c for node, (c, _seen) in self._stable.items()}

    async def _save_neighbours(self) -> None:
        """Persist the DHT contacts now: a peer killed (not stopped) soon after joining
        must still find its way back in without --bootstrap (the DHT's own periodic
        save comes only every few minutes)."""
        assert self.dht is not None
        await self.dht.save_neighbours()

    async def _upkeep(self, interval: float = 60.0) -> None:
        """Periodic republishing (keeps our postings alive on their holders) and
        expiry of postings other peers stopped republishing."""
        last_republish = last_expire = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            try:
                if now - last_republish >= self.config.republish_interval:
                    last_republish = now
                    await self.publisher.republish()
                if now - last_expire >= min(3600.0, self.config.shard_max_age / 4):
                    last_expire = now
                    expired = await self.shard.expire()
                    if expired:
                        log.info("expired %d postings no longer republished by their origins", expired)
            except Exception:  # noqa: BLE001 - retried next round
                log.warning("upkeep failed", exc_info=True)

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

    async def settle(self) -> None:
        """Until background work (index commits, publishing) has caught up. For tests and the demo."""
        await self.index.flush()
        while True:
            pending = [t for t in self._bg | self.jobs._bg if not t.done()]
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                continue
            await self.publisher.wait_idle()
            if not any(not t.done() for t in self._bg | self.jobs._bg):
                return

    async def verify_documents(self, doc_ids: list[str], terms: list[str], phrases: list[list[str]]) -> dict[str, dict[str, str]]:
        """Which of these local documents contain every phrase, with a snippet each."""
        from yasearch.search import verify_documents

        return await verify_documents(self.index, doc_ids, terms, phrases)

    def http_url_of(self, peer_id: str) -> str | None:
        """The HTTP URL of a known peer, by node ID (hex)."""
        if peer_id == self.peer_id:
            return self.url
        if self.dht is not None:
            for p in self.dht.known_peers():
                if p.node_id == peer_id:
                    return p.http_url
        return None

    def network_totals(self) -> tuple[int, int]:
        """(documents, total length) over this peer and the steady membership.

        Uses the peers of :meth:`stable_members` and their last info records, so a
        peer that misses a few pings does not make N (and every IDF) jump between
        two queries."""
        docs, total = self.index.doc_count(), self._total_length
        if self.dht is not None and self.dht.running:
            for node in self.stable_members():
                info = self.dht.info_of(node)
                if not info:
                    continue
                docs += int(info.get("documents", 0))
                total += int(dict(info.get("stats", {})).get("total_length", 0))
        return docs, total

    async def status(self) -> dict[str, Any]:
        publish = await self.publisher.figures()
        shard = await self.shard.totals()
        self._postings_held = shard["postings"]
        return {
            "peer_id": self.peer_id,
            "name": self.name,
            "version": __version__,
            "url": self.url,
            "uptime_s": round(time.time() - self.started_at, 1),
            "documents": self.index.doc_count(),
            "postings_held": shard.get("postings", 0),
            "peers_known": len(self.dht.known_peers()) if self.dht else 0,
            "crawl": self.jobs.summary(),
            "publish": publish,
            "dht": self.dht.stats() if self.dht else {"running": False},
            "network": {
                "replication": self.config.replication,
                "resolver_lookups": self.resolver.lookups if self.resolver else 0,
                "handoff": {"sent": self.handoff.sent, "failed": self.handoff.failed},
                "p2p": self.transport.figures() if self.transport else {},
            },
            "index": {"path": str(self.data_dir / "index"), "documents": self.index.doc_count()},
        }

    async def peers(self) -> list[dict[str, Any]]:
        me = {
            "peer_id": self.peer_id,
            "name": self.name,
            "url": self.url,
            "version": __version__,
            "documents": self.index.doc_count(),
            "postings_held": self._postings_held,
            "self": True,
            "last_seen": time.time(),
        }
        others = []
        if self.dht is not None:
            for p in self.dht.known_peers():
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
                    }
                )
        return [me] + sorted(others, key=lambda d: d["peer_id"])
