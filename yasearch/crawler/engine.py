"""The crawl loop of one job: workers pulling from a polite frontier.

Lifecycle of a URL: persisted as ``queued`` before it enters the in-memory frontier;
after a successful fetch and extraction it is marked ``fetched`` and handed to the
sink; the caller marks it ``done`` (by ``page.requested_url``) once its index commit
is durable. ``failed``/``skipped`` are terminal. A restart requeues ``queued`` and
``fetched`` rows, so a crash loses at most the pages in flight.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

import aiohttp

from .extract import Extracted, extract
from .fetcher import FetchResult, fetch
from .frontier import Frontier
from .robots import RobotsCache, RobotsRules
from .sitemaps import SitemapEntry, read_body, read_sitemaps
from .sqlite import StorageFullError
from .state import FrontierStore
from .types import CrawlerSettings, CrawlProgress, CrawlSpec, Page
from .urls import UrlFilter, canonicalize, host_of
from .warc import WarcFile

log = logging.getLogger(__name__)
T = TypeVar("T")

Sink = Callable[[Page], Awaitable[None]]
#: Told the outcome of every URL that did not become a page: (url, reason), with
#: the fetcher's reasons (``not_modified``, ``http_404``, ``timeout``, ...).
OutcomeSink = Callable[[str, str], Awaitable[None]]
#: Told every entry of each site's sitemaps as they are read (their lastmod/changefreq
#: hints matter for pages already known, not only for the ones this crawl queues).
SitemapSink = Callable[[list[SitemapEntry]], Awaitable[None]]


class Crawler:
    def __init__(
        self,
        job_id: str,
        spec: CrawlSpec,
        settings: CrawlerSettings,
        store: FrontierStore,
        sink: Sink,
        *,
        session: aiohttp.ClientSession,
        parse_pool: concurrent.futures.Executor | None,
        progress: CrawlProgress | None = None,
        validators: Mapping[str, tuple[str, str]] | None = None,
        on_outcome: OutcomeSink | None = None,
        on_sitemap: SitemapSink | None = None,
        warc_path: str | Path | None = None,
    ) -> None:
        self.job_id = job_id
        self.spec = spec
        self.settings = settings
        self.store = store
        self.sink = sink
        self.session = session
        self.parse_pool = parse_pool
        self.progress = progress if progress is not None else CrawlProgress()
        #: url -> (ETag, Last-Modified) of an earlier visit: those URLs get conditional GETs.
        self.validators = validators or {}
        self.on_outcome = on_outcome
        self.on_sitemap = on_sitemap
        self.warc = WarcFile(warc_path) if warc_path else None
        self._hints: dict[str, SitemapEntry] = {}  # sitemap entries of queued URLs

        self._seeds: list[str] = []
        for u in spec.urls:
            c = canonicalize(u)
            if c is not None and c not in self._seeds:
                self._seeds.append(c)
        seed_hosts = {host_of(u) for u in self._seeds}
        # raises ValueError on a bad regex: the job is rejected before it starts
        self._filter = UrlFilter(spec.allow, spec.deny, seed_hosts if spec.same_site else None)
        self._base_delay = max(0.0, spec.delay if spec.delay is not None else settings.delay)
        self._frontier = Frontier(self._base_delay, settings.per_host_concurrency)
        robots_timeout = aiohttp.ClientTimeout(
            total=settings.connect_timeout + settings.read_timeout,
            sock_connect=settings.connect_timeout,
            sock_read=settings.read_timeout,
        )
        self._robots = RobotsCache(
            session, settings.user_agent, timeout=robots_timeout, url_allowed=settings.outbound.url_allowed
        )

        self._state = "idle"
        self._gate = asyncio.Event()  # set = running, clear = paused
        self._gate.set()
        self._stop = False
        self._cancelled = False
        self._cond = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._active = 0  # workers processing an item
        self._reserved = 0  # workers holding a max_pages permit
        self._pages = 0  # successful pages (count towards max_pages)
        self._completed: set[str] = set()  # canonical URLs already handed to the sink

    # -- control -----------------------------------------------------------------

    @property
    def state(self) -> str:
        """idle | running | paused | done | cancelled"""
        return self._state

    @property
    def pages(self) -> int:
        return self._pages

    def pause(self) -> None:
        """Stop taking new URLs; pages in flight complete.

        Allowed before :meth:`run` too: a job that was paused when the peer
        stopped resumes paused.
        """
        if self._state == "idle":
            self._gate.clear()
        elif self._state == "running":
            self._gate.clear()
            self._state = "paused"

    def resume(self) -> None:
        if self._state == "idle":
            self._gate.set()
        elif self._state == "paused":
            self._state = "running"
            self._gate.set()

    def cancel(self) -> None:
        """Stop now. Pages in flight are abandoned and stay pending in the store."""
        if self._state in ("done", "cancelled"):
            return
        self._cancelled = True
        self._state = "cancelled"
        self._finish()
        current = asyncio.current_task() if self._tasks else None
        for t in self._tasks:
            if t is not current:
                t.cancel()

    def _finish(self) -> None:
        self._stop = True
        self._frontier.close()
        self._gate.set()  # paused workers must see the stop

    def _limit_reached(self) -> bool:
        return self._pages >= self.spec.max_pages

    def _update_queued(self) -> None:
        self.progress.queued = len(self._frontier)

    # -- run ---------------------------------------------------------------------

    async def run(self) -> None:
        if self._state == "cancelled" and not self._tasks:
            # cancelled before it started (e.g. a job cancelled right after creation)
            self.progress.finished_at = time.time()
            return
        if self._state not in ("idle",):
            raise RuntimeError(f"crawler already {self._state}")
        self._state = "running" if self._gate.is_set() else "paused"
        try:
            await self._load()
            self._update_queued()
            if self._limit_reached() or len(self._frontier) == 0:
                self._finish()
            if not self._stop:
                self._tasks = [
                    asyncio.create_task(self._worker(), name=f"crawl-{self.job_id}-{i}")
                    for i in range(max(1, self.settings.concurrency))
                ]
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            for t in self._tasks:
                t.cancel()
            self._frontier.close()
            self._update_queued()
            self.progress.finished_at = time.time()
            if self._state != "cancelled":
                self._state = "done"
            if self.warc is not None:
                self.warc.close()

    async def _load(self) -> None:
        """Resume from the store if this job has URLs there, else start from the seeds."""
        seen = await self.store.seen_urls(self.job_id)
        if seen:
            pending = await self.store.pending(self.job_id)
            self._completed = await self.store.completed_urls(self.job_id)
            counts = await self.store.url_counts(self.job_id)
            self._pages = counts.get("done", 0)
            for u in seen:
                self._frontier.mark_seen(u)
            for u, d in pending:
                self._frontier.push(u, d)
            log.info("job %s resumed: %d pending, %d seen", self.job_id, len(pending), len(seen))
            return
        seeds = [u for u in self._seeds if not self._filter.denied(u)]
        for u in seeds:
            self._frontier.mark_seen(u)
        for u, d in await self.store.add_urls(self.job_id, [(u, 0) for u in seeds]):
            self._frontier.push(u, d)
        if self.spec.sitemaps and self.spec.depth >= 1:
            await self._read_sitemaps(seeds)

    async def _read_sitemaps(self, seeds: list[str]) -> None:
        """Queue the URLs the seed hosts' sitemaps list (depth 1, the job's URL rules)."""
        timeout = aiohttp.ClientTimeout(
            total=self.settings.fetch_deadline, sock_connect=self.settings.connect_timeout,
            sock_read=self.settings.read_timeout,
        )

        async def polite_body(url: str) -> bytes | None:
            if not self.settings.outbound.url_allowed(url):
                return None
            host = host_of(url)
            rules = await self._host_rules(url)
            if not rules.allowed(url):
                return None
            await self._frontier.claim(host)
            try:
                await self._frontier.wait_turn(host)
                return await read_body(self.session, url, self.settings.user_agent, timeout)
            finally:
                self._frontier.release(host, contacted=True)

        origins = list(dict.fromkeys(u.split("/", 3)[0] + "//" + host_of(u) for u in seeds))
        for origin in origins:
            if self._stop:
                return
            rules = await self._host_rules(origin + "/")
            start = list(dict.fromkeys([*rules.sitemaps, origin + "/sitemap.xml"]))
            entries = await read_sitemaps(start, polite_body, max_urls=max(self.spec.max_pages * 10, 100))
            if entries and self.on_sitemap is not None:
                try:
                    await self.on_sitemap(entries)
                except Exception:  # noqa: BLE001 - the hints are advice: the crawl goes on
                    log.exception("job %s: sitemap callback failed", self.job_id)
            fresh = []
            for e in entries:
                if self._frontier.seen(e.url) or not self._filter.accepts(e.url):
                    continue
                self._frontier.mark_seen(e.url)
                self._hints[e.url] = e
                fresh.append((e.url, 1))
            for u, d in await self.store.add_urls(self.job_id, fresh):
                self._frontier.push(u, d)
            if fresh:
                log.info("job %s: %d URLs from the sitemaps of %s", self.job_id, len(fresh), origin)

    async def _worker(self) -> None:
        max_pages = self.spec.max_pages
        while not self._stop:
            await self._gate.wait()
            async with self._cond:
                await self._cond.wait_for(
                    lambda: self._stop or self._pages + self._reserved < max_pages
                )
                if self._stop:
                    return
                self._reserved += 1
            try:
                item = await self._frontier.get()
                if item is None:
                    return
                url, depth = item
                # counted as active from the moment it left the frontier, so a worker
                # finishing meanwhile does not take an empty frontier for the end
                self._active += 1
                try:
                    await self._gate.wait()  # paused while we waited: hold the slot, do not fetch
                    self._update_queued()
                    await self._process(url, depth)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("crawl job %s: unexpected error on %s", self.job_id, url)
                    self.progress.fail(url, "error")
                    await self._mark(url, "failed", "error")
                finally:
                    self._active -= 1
                if self._limit_reached() or (len(self._frontier) == 0 and self._active == 0):
                    self._finish()
            finally:
                self._reserved -= 1
                async with self._cond:
                    self._cond.notify_all()

    async def _mark(self, url: str, state: str, reason: str | None) -> None:
        await self._patient(lambda: self.store.mark(self.job_id, [(url, state, reason)]))

    async def _patient(self, write: Callable[[], Awaitable[T]]) -> T:
        """A frontier write that waits out a full disk (0.5 s doubling to 30 s): the
        worker pauses, and neither its page nor the links it found are lost."""
        wait = 0.5
        while True:
            try:
                return await write()
            except StorageFullError as e:
                if self._stop:
                    raise
                log.warning("crawl job %s paused: %s", self.job_id, e)
                await asyncio.sleep(wait)
                wait = min(30.0, wait * 2)

    async def _skip(self, url: str, reason: str) -> None:
        self.progress.skipped += 1
        await self._mark(url, "skipped", reason)

    async def _host_rules(self, url: str) -> RobotsRules:
        """robots.txt rules of ``url``'s host; sets the host's politeness delay."""
        rules = await self._robots.rules(url)
        host = host_of(url)
        self._frontier.set_host_delay(host, max(self._base_delay, rules.crawl_delay or 0.0))
        # the robots.txt request itself counts towards the politeness gap
        self._frontier.note_request(host, rules.fetched_at)
        return rules

    async def _disallowed(self, url: str, rules: RobotsRules) -> None:
        if rules.error is not None:  # robots.txt unreachable: the host is, too
            self.progress.fail(url, rules.error)
            await self._mark(url, "failed", rules.error)
        else:
            await self._skip(url, "robots")

    async def _process(self, url: str, depth: int) -> None:
        """Crawl one URL, holding a slot of its host in the frontier throughout.

        Redirect hops move the slot to the target's host and wait for its
        politeness gap like any other request.
        """
        host = host_of(url)
        held: str | None = host
        contacted = False  # whether the host of the held slot got a page request
        duplicate = False
        try:
            if url in self._completed:  # fetched earlier under another name
                await self._skip(url, "duplicate")
                return
            rules = await self._host_rules(url)
            if not rules.allowed(url):
                await self._disallowed(url, rules)
                return
            await self._frontier.wait_turn(host)
            await self._gate.wait()

            async def hop(target: str) -> bool:
                """Vet and pace one redirect hop (same robots.txt and deny rules as links)."""
                nonlocal held, contacted, duplicate
                if self._filter.denied(target):
                    return False
                if target in self._completed:  # a page we already have: stop here
                    duplicate = True
                    return False
                assert held is not None
                self._frontier.release(held, contacted=True)
                held = None
                target_host = host_of(target)
                await self._frontier.claim(target_host)
                held, contacted = target_host, False
                if not (await self._host_rules(target)).allowed(target):
                    return False
                await self._frontier.wait_turn(target_host)
                contacted = True
                return True

            contacted = True
            result = await fetch(
                self.session, url, self.settings, hop_allowed=hop, validators=self.validators.get(url)
            )
            if result.status:
                self.progress.fetched += 1
            if duplicate:
                await self._skip(url, "duplicate")
            elif result.reason is not None:
                if result.skipped:
                    await self._skip(url, result.reason)
                else:
                    self.progress.fail(url, result.reason)
                    await self._mark(url, "failed", result.reason)
                if self.on_outcome is not None:
                    await self.on_outcome(url, result.reason)
            else:
                if self.warc is not None:
                    self.warc.write(result)
                await self._handle_page(url, depth, result)
        finally:
            if held is not None:
                self._frontier.release(held, contacted=contacted)

    async def _parse(self, result: FetchResult) -> Extracted:
        args = (result.body, result.final_url, result.content_type, result.charset)
        if self.parse_pool is None:
            return extract(*args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.parse_pool, extract, *args)

    async def _handle_page(self, url: str, depth: int, result: FetchResult) -> None:
        try:
            ex = await self._parse(result)
        except asyncio.CancelledError:
            raise
        except Exception:  # e.g. a broken process pool
            log.exception("extraction of %s failed", result.final_url)
            self.progress.fail(url, "parse")
            await self._mark(url, "failed", "parse")
            return
        final = canonicalize(result.final_url) or url
        page_url = final
        if ex.canonical and host_of(ex.canonical) == host_of(final):
            page_url = ex.canonical
        if self._limit_reached():  # leave it queued: a resumed job with a higher cap gets it
            return
        if page_url in self._completed or final in self._completed:
            await self._skip(url, "duplicate")
            return
        self._completed.update({url, final, page_url})
        self._pages += 1
        page = Page(
            url=page_url,
            status=result.status,
            content_type=result.content_type,
            title=ex.title,
            headings=ex.headings,
            body=ex.body,
            description=ex.description,
            language=ex.language,
            links=ex.links,
            anchors=ex.anchors,
            noindex=ex.noindex,
            nofollow=ex.nofollow,
            truncated=result.truncated,
            depth=depth,
            requested_url=url,
            etag=result.etag,
            last_modified=result.last_modified,
        )
        hint = self._hints.get(url)
        if hint is not None:
            page.changefreq, page.lastmod = hint.changefreq, hint.lastmod
        # Claim the aliases before anyone else can queue them, then persist.
        for alias in {final, page_url} - {url}:
            self._frontier.mark_seen(alias)
            await self._patient(lambda: self.store.add_alias(self.job_id, alias, depth, url))
        await self._mark(url, "fetched", None)
        try:
            await self.sink(page)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("crawl sink failed on %s", page_url)
        if depth < self.spec.depth and not ex.nofollow and not self._limit_reached():
            await self._enqueue(ex.links, depth + 1)

    async def _enqueue(self, links: list[str], depth: int) -> None:
        fresh: list[tuple[str, int]] = []
        for link in links:
            if self._frontier.seen(link):
                continue
            self._frontier.mark_seen(link)  # claimed: counted once, queued once
            if not self._filter.accepts(link):
                self.progress.skipped += 1
                continue
            fresh.append((link, depth))
        if not fresh:
            return
        for u, d in await self._patient(lambda: self.store.add_urls(self.job_id, fresh)):
            self._frontier.push(u, d)
        self._update_queued()
