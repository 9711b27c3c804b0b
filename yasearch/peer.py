"""The Peer: one object that owns every part of a running peer and wires them together.

The parts do the work: the local index and crawl jobs, the shard store, the DHT
node, publishing, global search, membership (:mod:`yasearch.membership`) and
status reporting (:mod:`yasearch.status`). The Peer builds them, starts and stops
them in order, and offers the methods the web UI, the JSON API and tests call.

It serves no HTTP itself: :mod:`yasearch.server` binds the HTTP site first and
then starts the peer on the bound port (Kademlia's UDP port equals it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, AsyncIterator


from yasearch.crawler.outbound import OutboundPolicy
from yasearch.crawler.types import CrawlSpec
from yasearch.crawler.urls import canonicalize
from yasearch.analysis import doc_id
from yasearch.archive import document_line, in_thread, read_documents
from yasearch.faults import Faults
from yasearch.config import Config
from yasearch.identity import load_or_create
from yasearch.index import LocalIndex
from yasearch.dht import DhtNode
from yasearch.handoff import Handoff
from yasearch.history import History
from yasearch.jobs import Job, JobManager
from yasearch.membership import Membership
from yasearch.netsearch import GlobalSearch
from yasearch.network import Contact, Resolver, Transport
from yasearch.p2pclient import P2PClient
from yasearch.publisher import Publisher
from yasearch.query import parse_query
from yasearch.reachability import ProbeReply, ReachReply, ReachRequest, Reachability
from yasearch.recrawl import Recrawler
from yasearch.recrawlstore import HostFigures, PageRow
from yasearch.records import DocRecord, SearchResponse
from yasearch.repair import Liveness
from yasearch.resultcheck import ResultChecker, checker_settings
from yasearch.search import search_local
from yasearch.shard import ShardStore
from yasearch.shard.quotas import Caps
from yasearch.shard.service import LocalPeer
from yasearch.status import Status
from yasearch.suggest import Suggester
from yasearch.wire import PROTOCOL_VERSION

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
        #: The stores that cannot write now (a full disk); status reads it.
        self.faults = Faults()
        self.jobs = JobManager(config, self.index, self.faults)
        self.recrawler = Recrawler(config, self.jobs, self._remove_doc_ids, self.faults)
        self.suggester = Suggester(self.index)
        self.shard = ShardStore(
            self.data_dir / "shard.db",
            quota_per_origin=config.shard_quota_per_origin,
            max_age=config.shard_max_age,
            caps=Caps(config.shard_max_postings, config.shard_quota_per_source, tuple(config.shard_quota_exempt)),
            health=self.faults.reporter("shard"),
        )
        self.dht: DhtNode | None = None
        # the network parts get what they use, never the Peer; the DHT and the HTTP
        # session they need exist once start() has run (see there)
        self.local = LocalPeer(self.shard, self.verify_documents)
        self.transport = Transport(policy=OutboundPolicy(allow_private=config.allow_private_networks))
        self.p2p = P2PClient(self.identity.node_id, self.transport, self.local)
        self.resolver = Resolver(
            None, self.contact, replication=config.replication,
            members=lambda: list(self.stable_members().values()),
        )
        self.publisher = Publisher(
            self.identity, self.resolver, self.p2p, self.data_dir / "publish.db", health=self.faults.reporter("outbox")
        )
        self.global_search = GlobalSearch(
            self.peer_id, self.resolver, self.p2p, self.index,
            url_of=self.http_url_of, network_totals=self.network_totals, budget=config.search_budget,
            verify=config.verify,
            checker=ResultChecker(checker_settings(config)) if config.verify == "fetch" else None,
        )
        self.handoff = Handoff(
            self.identity.node_id, self.shard, self.p2p, self.http_url_of, replication=config.replication,
            gone=self.resolver.gone,
        )
        self.port = config.port
        #: Public or client-only, and the address others see us at (yasearch.reachability).
        self.reach = Reachability(config, self.transport, lambda: self.port)
        self.reporter = Status(
            self.peer_id, self.name, lambda: self.url, config,
            self.index, self.shard, self.jobs, self.publisher, self.handoff, self.faults, self.reach,
        )
        self.membership: Membership | None = None  # needs the DHT: built in start()
        self.liveness: Liveness | None = None  # likewise
        #: Awaited at the end of stop(), after the DHT: e.g. the HTTP site's cleanup (yasearch.server).
        self.on_stop: list[Callable[[], Awaitable[None]]] = []
        self._started = False
        self._bg: set[asyncio.Task[Any]] = set()  # one-shot work (settle() waits for it)

    @property
    def peer_id(self) -> str:
        return self.identity.hex

    @property
    def url(self) -> str:
        if self.reach.advertised is not None:
            host, port = self.reach.advertised
            return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "", "::") else self.config.host
        return f"http://{host}:{self.port}"

    @property
    def started_at(self) -> float:
        return self.reporter.started_at

    @property
    def history(self) -> History:
        """Figures over time for the network page's sparklines (in memory only)."""
        return self.reporter.history

    @history.setter
    def history(self, history: History) -> None:
        self.reporter.history = history

    async def start(self, http_port: int) -> None:
        """Start every part; ``http_port`` is the TCP port the HTTP site is bound to
        (yasearch.server binds it first, so a port 0 config has a real port here)."""
        self.reporter.started_at = time.time()
        self.port = http_port
        await self.index.open()
        await self.shard.open()
        await self.reporter.refresh_total_length()
        self.index.on_commit.append(lambda _ids: self._spawn(self.reporter.refresh_total_length()))
        self.index.on_commit.append(lambda _ids: self.reporter.info_changed())
        # Kademlia on UDP port P beside HTTP on TCP port P (DESIGN.md).
        self.dht = DhtNode(
            self.identity, self.config.host, self.port, self.data_dir, self.reporter.dht_info,
            network=self.config.network,
        )
        try:
            await self.dht.start()
        except OSError:
            await self.shard.close()
            await self.index.close()
            raise
        await self.transport.open()
        self.resolver.attach(self.dht)
        await self.publisher.start()
        self.jobs.on_indexed.append(lambda docs: self._spawn(self.publisher.enqueue(docs)))
        self.jobs.on_removed.append(lambda ids: self._spawn(self.publisher.remove(ids)))
        self.jobs.on_removed.append(lambda ids: self._spawn(self.jobs.anchors.forget(ids)))
        self.jobs.anchors.load = self.publisher.documents  # complete copies, for pages indexed again
        self.publisher.on_published.append(self.jobs.published)
        await self.jobs.start()
        self.recrawler.start()
        self.reporter.connect(self.dht, self.resolver, self.transport, self.network_totals)
        self.liveness = Liveness(
            self.identity.node_id, self.dht, self.resolver, self.handoff, self.publisher, self.transport,
            self.stable_members,
        )
        self.membership = Membership(
            self.identity.node_id, self.dht, self.resolver, self.handoff, self.publisher, self.shard, self.config,
            self.reach,
            liveness=self.liveness,
        )
        self._started = True
        self.membership.start()
        self.reporter.start()
        log.info("peer %s (%s) listening on %s", self.name, self.peer_id[:12], self.url)

    async def stop(self) -> None:
        """Clean shutdown: stop crawling, commit the index, close everything."""
        if not self._started:
            return
        self._started = False
        await self.recrawler.stop()
        await self.jobs.stop()
        for task in self._bg:
            task.cancel()
        assert self.membership is not None  # built by start()
        await asyncio.gather(*self._bg, self.membership.stop(), self.reporter.stop(), return_exceptions=True)
        await self.publisher.stop()
        if self.dht is not None:
            await self.dht.stop()
        for hook in self.on_stop:
            await hook()
        await self.transport.close()
        if self.global_search.checker is not None:
            await self.global_search.checker.close()
        await self.shard.close()
        await self.index.close()

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

    async def import_file(self, path: Path) -> Job:
        """Index the documents of a JSON Lines or WARC file as a job (then published);
        the file is deleted when the job has read it."""
        spec = CrawlSpec(urls=[], depth=0, max_pages=0, sitemaps=False)
        items = in_thread(read_documents(path), finally_=lambda: path.unlink(missing_ok=True))
        return await self.jobs.create_import(spec, items)

    async def export_lines(self) -> AsyncIterator[bytes]:
        """This peer's local index as JSON Lines, one document a line, host by host."""
        for host, _count in await self.index.documents_by_host():
            ids = await self.index.doc_ids_of_host(host)
            for i in range(0, len(ids), 200):
                for stored in await self.index.stored_fields(ids[i : i + 200]):
                    yield document_line(stored)

    def list_jobs(self) -> list[Job]:
        return self.jobs.list()

    def get_job(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def control_job(self, job_id: str, action: str) -> bool:
        return {"pause": self.jobs.pause, "resume": self.jobs.resume, "cancel": self.jobs.cancel}[action](job_id)

    async def delete_job(self, job_id: str) -> bool:
        """Forget a finished job (done, failed or cancelled); False while it is active."""
        return await self.jobs.delete(job_id)

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

    async def recrawl_pages(self, urls: list[str]) -> dict[str, PageRow]:
        """The recrawl schedule and counts of those of ``urls`` that are tracked, by URL."""
        return await self.recrawler.store.rows(urls)

    async def recrawl_host(self, host: str) -> HostFigures:
        """The recrawl figures of ``host``'s (``host[:port]``) tracked pages."""
        return await self.recrawler.store.host_figures(host.strip().lower())

    async def recrawl_due_by_host(self) -> dict[str, int]:
        """host[:port] -> pages due for a revisit now."""
        return await self.recrawler.store.due_by_host()

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
        await self.jobs.anchors.forget(ids)

    # -- network ---------------------------------------------------------------

    def contact(self) -> Contact:
        return Contact(self.identity.node_id, self.url)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def settle(self) -> None:
        """Until background work (index commits, publishing) has caught up. For tests and the demo."""
        await self.recrawler.settle()
        await self.index.flush()
        while True:
            pending = [t for t in self._bg if not t.done()] + self.jobs.pending_tasks()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                continue
            await self.publisher.wait_idle()
            if not any(not t.done() for t in self._bg) and not self.jobs.pending_tasks():
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

    # -- membership and status (yasearch.membership, yasearch.status) -----------

    async def join(self, addrs: list[tuple[str, int]]) -> int:
        """Join through these peers now (tests, the demo); returns contacts known."""
        assert self.membership is not None, "the peer is not started"
        return await self.membership.join(addrs)

    def stable_members(self) -> dict[bytes, Contact]:
        """The other peers, steadier than the DHT's view (see Membership.stable_members)."""
        return self.membership.stable_members() if self.membership is not None else {}

    def network_totals(self) -> tuple[int, int]:
        """(documents, total length) over this peer and the steady membership."""
        docs, total = self.index.doc_count(), self.reporter.total_length
        return self.membership.network_totals(docs, total) if self.membership is not None else (docs, total)

    async def status(self) -> dict[str, Any]:
        status = await self.reporter.status()
        status["recrawl"] = await self.recrawler.figures()
        if self.liveness is not None:
            status["repair"] = self.liveness.figures()
        return status

    async def peers(self) -> list[dict[str, Any]]:
        return await self.reporter.peers()

    async def dial_back(self, remote: str | None, req: ReachRequest) -> ReachReply:
        """``POST /p2p/v1/reach``: dial the asking peer back at its own address."""
        return await self.reach.dial_back(remote, req)

    def reach_probed(self, nonce: str, host: str) -> ProbeReply:
        """``POST /p2p/v1/reach/probe``: a peer dialled us back for one of our nonces."""
        return ProbeReply(known=self.reach.probed(nonce, host))

    async def info(self) -> dict[str, Any]:
        """The /p2p/v1/info record."""
        return {"v": PROTOCOL_VERSION, **self.reporter.info()}

    async def sample_history(self) -> None:
        await self.reporter.sample_history()
