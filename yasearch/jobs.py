"""Crawl jobs: start, watch, pause, cancel, and resume them after a restart.

The crawler fetches and extracts; this module turns its pages into index
documents and closes the loop that makes a crawl crash-safe: a URL is marked
'done' in the persisted frontier only after the index commit that holds its
page, so a kill at any moment loses at most the pages in flight, and a restart
continues every job that was running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp

from yasearch.crawler.engine import Crawler
from yasearch.crawler.outbound import OutboundPolicy, guarded_session
from yasearch.crawler.sitemaps import SitemapEntry
from yasearch.crawler.state import FrontierStore
from yasearch.crawler.types import CrawlerSettings, CrawlProgress, CrawlSpec, Page
from yasearch.crawler.urls import host_of
from yasearch.analysis import doc_id
from yasearch.anchors import Anchors
from yasearch.config import Config
from yasearch.faults import Faults
from yasearch.index import IndexDegradedError, LocalIndex
from yasearch.procpool import close_pool, parse_pool
from yasearch.records import Document

log = logging.getLogger(__name__)

#: Committed pages remembered until published, for the jobs' "published" counters.
MAX_TRACKED_PUBLISHING = 200_000

#: Job states. 'running' and 'paused' jobs are resumed after a restart.
ACTIVE = ("running", "paused")


def is_import(spec: CrawlSpec) -> bool:
    """An import job's spec: no seeds and no page budget (a crawl has at least one page)."""
    return not spec.urls and spec.max_pages == 0


@dataclass
class Job:
    id: str
    spec: CrawlSpec
    state: str
    created: float
    progress: CrawlProgress = field(default_factory=CrawlProgress)
    crawler: Crawler | None = None
    task: asyncio.Task | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "state": self.state, "created": self.created}
        d.update(self.progress.to_dict())
        if self.state == "failed":
            d["error"] = failure_summary(self.progress)
        d["spec"] = self.spec.to_dict()
        return d


class JobManager:
    def __init__(self, config: Config, index: LocalIndex, faults: Faults | None = None) -> None:
        self.config = config
        self.index = index
        self.store = FrontierStore(Path(config.data_dir) / "crawl.db", faults.reporter("frontier") if faults else None)
        #: Link texts of crawled pages, the anchor field of their targets (yasearch.anchors).
        self.anchors = Anchors(Path(config.data_dir) / "anchors.db", faults.reporter("anchors") if faults else None)
        self.jobs: dict[str, Job] = {}
        self._session: aiohttp.ClientSession | None = None
        self._pool: ProcessPoolExecutor | None = None
        # doc_id -> (job_id, requested url) of pages handed to the index, not yet committed
        self._uncommitted: dict[str, list[tuple[str, str]]] = {}
        self._flusher: asyncio.Task | None = None
        self._bg: set[asyncio.Task] = set()
        self._stopping = False
        #: Documents handed to the index, waiting for their commit (then published).
        self._docs: dict[str, Document] = {}
        #: Called on the loop with the documents of each durable commit / removed doc ids.
        self.on_indexed: list[Callable[[list[Document]], None]] = []
        self.on_removed: list[Callable[[list[str]], None]] = []
        #: Called with every page a job hands to the index (the recrawl schedule tracks them).
        self.on_page: list[Callable[[Page], None]] = []
        #: Awaited with the entries of each site's sitemaps a job reads (the recrawl's hints).
        self.on_sitemap: list[Callable[[list[SitemapEntry]], Awaitable[None]]] = []
        #: doc_id -> job of committed pages not yet published (for the job's
        #: "published" counter); bounded, so a peer alone for long forgets the oldest.
        self._publishing: dict[str, str] = {}
        #: job id -> set while a running import may read on (cleared: paused)
        self._gates: dict[str, asyncio.Event] = {}

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        self.index.on_commit.append(self._committed)
        for upload in (Path(self.config.data_dir) / "imports").glob("*.upload"):
            upload.unlink(missing_ok=True)  # of an import a crash interrupted: imports never resume
        for row in await self.store.jobs():
            job = Job(row.id, row.spec, row.state, row.created)
            _restore_counters(job.progress, row.counters)
            self.jobs[job.id] = job
            if row.state in ACTIVE and is_import(row.spec):  # its file is gone: it cannot resume
                job.state = "cancelled"
                job.progress.fail("", "interrupted")
                await self.store.set_job_state(job.id, job.state, _counters(job.progress))
            elif row.state in ACTIVE:
                log.info("resuming crawl job %s (%s)", job.id, row.state)
                self._launch(job, paused=row.state == "paused")
        self._flusher = asyncio.create_task(self._persist_counters_loop())

    async def stop(self) -> None:
        self._stopping = True
        if self._flusher:
            self._flusher.cancel()
        running = [j for j in self.jobs.values() if j.task and not j.task.done()]
        for job in running:
            if job.crawler is not None:
                job.crawler.cancel()  # stop fetching; the job stays 'running' on disk so it resumes
            elif job.task is not None:
                job.task.cancel()  # an import: what was indexed stays, the rest is not read
        for job in running:
            assert job.task is not None
            try:
                await job.task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down anyway
                pass
        await asyncio.gather(*self._bg, return_exceptions=True)  # re-indexing stops at its next document
        await self._flush()
        for job in self.jobs.values():
            await self.store.set_job_state(job.id, job.state, _counters(job.progress))
        if self._session:
            await self._session.close()
        if self._pool:
            await close_pool(self._pool)
        await self.store.close()
        await self.anchors.close()

    async def _flush(self) -> None:
        """Commit the index; while it is degraded (a full disk), wait for it to
        recover, unless the peer is stopping."""
        while True:
            try:
                return await self.index.flush()
            except IndexDegradedError:
                if self._stopping:
                    log.warning("stopping with the index degraded: the last pages are not committed")
                    return
                await asyncio.sleep(1.0)

    def _settings(self) -> CrawlerSettings:
        c = self.config
        return CrawlerSettings(
            user_agent=c.user_agent,
            delay=c.crawl_delay,
            concurrency=c.crawl_concurrency,
            per_host_concurrency=c.per_host_concurrency,
            connect_timeout=c.connect_timeout,
            read_timeout=c.read_timeout,
            max_body_bytes=c.max_body_bytes,
            max_redirects=c.max_redirects,
            fetch_deadline=c.fetch_deadline,
            outbound=OutboundPolicy(allow_private=c.allow_private_networks),
        )

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            policy = OutboundPolicy(allow_private=self.config.allow_private_networks)
            self._session = guarded_session(policy, limit=self.config.crawl_concurrency * 2)
        return self._session

    def _parse_pool(self) -> Executor | None:
        if self.config.parse_workers <= 0:
            return None
        if self._pool is None:
            self._pool = parse_pool(self.config.parse_workers)
        return self._pool

    # -- jobs ----------------------------------------------------------------

    async def create(self, spec: CrawlSpec) -> Job:
        job_id = await self.store.create_job(spec)
        job = Job(job_id, spec, "running", time.time())
        self.jobs[job_id] = job
        self._launch(job)
        return job

    async def create_import(self, spec: CrawlSpec, items: AsyncIterator[Document | str]) -> Job:
        """A job that indexes documents read from a file (yasearch.archive) instead of
        crawling: each item is a document or the reason a record was skipped."""
        job_id = await self.store.create_job(spec)
        job = Job(job_id, spec, "running", time.time())
        self.jobs[job_id] = job
        self._gates[job_id] = asyncio.Event()
        self._gates[job_id].set()
        job.task = asyncio.create_task(self._run_import(job, items), name=f"import-{job_id}")
        return job

    async def _run_import(self, job: Job, items: AsyncIterator[Document | str]) -> None:
        """Index an import's items. Cancelled (by the user or a stopping peer): what was
        indexed stays, the rest is not read, the job ends 'cancelled' (never 'done') and the
        reader is closed at once, so its file (an upload) is deleted."""
        gate = self._gates[job.id]
        try:
            async for item in items:
                await gate.wait()  # paused
                if isinstance(item, str):
                    job.progress.skipped += 1
                    job.progress.skip_reasons[item] += 1
                    continue
                job.progress.fetched += 1
                self._uncommitted.setdefault(item.doc_id, []).append((job.id, item.url))
                await self.index_document(item)
        except asyncio.CancelledError:
            if job.state in ACTIVE:  # not the user's cancel: the peer stopped
                job.progress.fail("", "interrupted")
            job.state = "cancelled"
        except Exception as e:  # noqa: BLE001 - an unreadable file fails the job, not the peer
            log.warning("import job %s: %s", job.id, e)
            job.progress.fail("", "unreadable")
        finally:
            self._gates.pop(job.id, None)
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()
        await self.index.flush()
        if job.state in ACTIVE:
            job.state = "done"
        job.progress.finished_at = time.time()
        await self.store.set_job_state(job.id, job.state, _counters(job.progress))

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def list(self) -> list[Job]:
        return sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)

    def pause(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        gate = self._gates.get(job_id)
        if not job or job.state != "running" or not (job.crawler or gate):
            return False
        if job.crawler:
            job.crawler.pause()
        elif gate is not None:
            gate.clear()
        job.state = "paused"
        self._spawn(self.store.set_job_state(job.id, job.state, _counters(job.progress)))
        return True

    def resume(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        gate = self._gates.get(job_id)
        if not job or job.state != "paused" or not (job.crawler or gate):
            return False
        if job.crawler:
            job.crawler.resume()
        elif gate is not None:
            gate.set()
        job.state = "running"
        self._spawn(self.store.set_job_state(job.id, job.state, _counters(job.progress)))
        return True

    def cancel(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        if not job or job.state not in ACTIVE or not (job.crawler or job.id in self._gates):
            return False
        job.state = "cancelled"
        if job.crawler:
            job.crawler.cancel()
        elif job.task is not None:
            job.task.cancel()  # an import
        return True

    async def delete(self, job_id: str) -> bool:
        """Forget a finished job and its frontier; False while it runs or is paused."""
        job = self.jobs.get(job_id)
        if job is None or job.state in ACTIVE or (job.task is not None and not job.task.done()):
            return False
        del self.jobs[job_id]
        await self.store.delete_job(job_id)
        return True

    async def wait(self, job_id: str) -> Job:
        """Wait until a job has finished and its pages are committed (used by tests and the CLI)."""
        job = self.jobs[job_id]
        if job.task is not None:
            await asyncio.shield(job.task)
        return job

    def summary(self) -> dict[str, Any]:
        jobs = list(self.jobs.values())
        return {
            "jobs": len(jobs),
            "running": sum(1 for j in jobs if j.state == "running"),
            "paused": sum(1 for j in jobs if j.state == "paused"),
            "fetched": sum(j.progress.fetched for j in jobs),
            "indexed": sum(j.progress.indexed for j in jobs),
            "failed": sum(j.progress.failed for j in jobs),
            "queued": sum(j.progress.queued for j in jobs),
        }

    # -- running -------------------------------------------------------------

    def warc_path(self, job_id: str) -> Path:
        """Where a job with ``warc: true`` keeps what it fetched."""
        return Path(self.config.data_dir) / "warc" / f"{job_id}.warc.gz"

    def crawler(self, job_id: str, spec: CrawlSpec, sink: Callable[[Page], Any], **kw: Any) -> Crawler:
        """A crawler with this peer's settings, session and parse pool (the recrawl runs one);
        ``concurrency`` overrides the settings', the rest goes to :class:`Crawler`."""
        settings = self._settings()
        if "concurrency" in kw:
            settings.concurrency = max(1, kw.pop("concurrency"))
        return Crawler(
            job_id, spec, settings, self.store, sink, session=self._http(), parse_pool=self._parse_pool(), **kw
        )

    async def index_document(self, doc: Document) -> None:
        """Index a document outside any job; it is published once its commit is durable."""
        if self.on_indexed:
            self._docs[doc.doc_id] = doc
        await self.index.add(doc)

    def _launch(self, job: Job, paused: bool = False) -> None:
        job.crawler = self.crawler(
            job.id,
            job.spec,
            lambda page, job=job: self._sink(job, page),
            progress=job.progress,
            on_sitemap=self._sitemap_read,
            warc_path=self.warc_path(job.id) if job.spec.warc else None,
        )
        if paused:
            job.crawler.pause()
        job.task = asyncio.create_task(self._run(job), name=f"crawl-{job.id}")

    async def _sitemap_read(self, entries: list[SitemapEntry]) -> None:
        for callback in self.on_sitemap:
            await callback(entries)

    async def _run(self, job: Job) -> None:
        assert job.crawler is not None
        try:
            await job.crawler.run()
        except Exception:
            log.exception("crawl job %s failed", job.id)
            job.progress.fail("", "internal_error")
        # pages that got anchor text after they were indexed: indexed again in the background
        self._spawn(self.reindex_anchors())
        # Make the last pages durable before the job reports done.
        await self._flush()
        if job.state == "running" and not self._stopping:
            job.state = "failed" if all_failed(job.progress) else "done"
        # Interrupted by stop(): the job stays 'running'/'paused' on disk and resumes at start.
        if job.progress.finished_at is None:
            job.progress.finished_at = time.time()
        if job.state not in ACTIVE:
            job.progress.queued = 0  # a finished job's left-over frontier is not a queue
        await self.store.set_job_state(job.id, job.state, _counters(job.progress))

    async def _sink(self, job: Job, page: Page) -> None:
        did = doc_id(page.url)
        requested = page.requested_url or page.url
        if page.noindex or page.status != 200:
            # A page that now says noindex must leave the index if an older copy is there.
            if await self.index.has(did):
                await self.index.delete(did)
                for callback in self.on_removed:
                    callback([did])
            job.progress.skipped += 1
            await self.store.mark(job.id, [(requested, "skipped", "noindex")])
            return
        doc = await self.anchors.annotate(page, page_document(page))
        for callback in self.on_page:
            callback(page)
        self._uncommitted.setdefault(did, []).append((job.id, requested))
        if self.on_indexed:
            self._docs[did] = doc
        await self.index.add(doc)

    async def reindex_anchors(self) -> int:
        """Index again the pages whose anchor text changed since they were indexed (batched)."""
        try:
            n = await self.anchors.reindex(self._docs, self.index_document, lambda: self._stopping)
        except Exception:  # noqa: BLE001 - a full disk, a degraded index: pages keep their old anchor text
            log.warning("indexing pages with new anchor text failed", exc_info=True)
            return 0
        if n:
            await self._flush()
        return n

    def _committed(self, doc_ids: list[str]) -> None:
        """Index commit callback: the pages are durable, so their URLs are done."""
        by_job: dict[str, list[tuple[str, str, str | None]]] = {}
        docs = [d for d in (self._docs.pop(did, None) for did in doc_ids) if d is not None]
        if docs:
            for callback in self.on_indexed:
                callback(docs)
        for did in doc_ids:
            for job_id, url in self._uncommitted.pop(did, []):
                job = self.jobs.get(job_id)
                if job:
                    job.progress.indexed += 1
                    if self.on_indexed:
                        self._publishing[did] = job_id
                        if len(self._publishing) > MAX_TRACKED_PUBLISHING:
                            self._publishing.pop(next(iter(self._publishing)))
                by_job.setdefault(job_id, []).append((url, "done", None))
        for job_id, marks in by_job.items():
            self._spawn(self.store.mark(job_id, marks))

    def published(self, doc_ids: list[str]) -> None:
        """Publisher callback: these pages reached every peer responsible for their terms."""
        for did in doc_ids:
            job_id = self._publishing.pop(did, None)
            job = self.jobs.get(job_id) if job_id else None
            if job is not None:
                job.progress.published += 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    def pending_tasks(self) -> list[asyncio.Task]:
        """Background work not finished yet (Peer.settle waits for it)."""
        return [t for t in self._bg if not t.done()]

    async def _persist_counters_loop(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(2.0)
            rounds += 1
            if rounds % 150 == 0:  # every 5 min: pages that got new anchor text while jobs run
                await self.reindex_anchors()
            for job in list(self.jobs.values()):
                if job.state in ACTIVE:
                    try:
                        await self.store.set_job_state(job.id, job.state, _counters(job.progress))
                    except Exception:  # noqa: BLE001 - a failed progress save is retried next round
                        log.debug("could not save progress of %s", job.id, exc_info=True)


def page_document(page: Page) -> Document:
    """The index document of a crawled page."""
    return Document(
        doc_id=doc_id(page.url),
        url=page.url,
        host=host_of(page.url),
        title=page.title,
        headings=page.headings,
        body=page.body,
        description=page.description,
        language=page.language,
        crawled_at=page.fetched_at,
    )


def all_failed(p: CrawlProgress) -> bool:
    """Every URL the job tried failed: nothing indexed, nothing skipped, some failures."""
    return p.failed > 0 and p.indexed == 0 and p.skipped == 0


def failure_summary(p: CrawlProgress) -> str:
    """'every fetch failed: dns 369, timeout 2' (the commonest reasons first)."""
    return "every fetch failed: " + ", ".join(f"{reason} {n}" for reason, n in p.failures.most_common(5))


_COUNTERS = ("fetched", "indexed", "failed", "published", "skipped")


def _counters(p: CrawlProgress) -> dict[str, Any]:
    d: dict[str, Any] = {k: getattr(p, k) for k in _COUNTERS}
    d["failures"] = dict(p.failures)
    d["started_at"] = p.started_at
    d["finished_at"] = p.finished_at
    return d


def _restore_counters(p: CrawlProgress, d: dict[str, Any] | None) -> None:
    if not d:
        return
    for k in _COUNTERS:
        if isinstance(d.get(k), int):
            setattr(p, k, d[k])
    if isinstance(d.get("failures"), dict):
        p.failures.update({str(k): int(v) for k, v in d["failures"].items()})
    if isinstance(d.get("started_at"), (int, float)):
        p.started_at = float(d["started_at"])
    if isinstance(d.get("finished_at"), (int, float)):
        p.finished_at = float(d["finished_at"])
