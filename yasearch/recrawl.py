"""Recrawl: every indexed page has a next visit, adapted to how often it changes.

A page a crawl indexed is tracked (:mod:`yasearch.recrawlstore`) with its
validators and content hash. In the background, at ``recrawl_share`` of the
crawl capacity, due pages are revisited by a :class:`~yasearch.crawler.engine.Crawler`
(same robots.txt and per-host politeness as any crawl) with conditional GETs:

* 304, or 200 with the same content: unchanged, no indexing, no publishing;
  the interval doubles (up to ``recrawl_max_interval``);
* 200 with new content: re-indexed and republished (the publisher withdraws the
  terms the page lost); the interval halves (down to ``recrawl_min_interval``);
* 404/410 (and noindex, robots.txt disallow, no longer HTML): removed locally and
  withdrawn from the network at once;
* anything else (5xx, timeouts, DNS): retried with a doubling delay, removed after
  ``recrawl_max_failures`` consecutive failures.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from yasearch.analysis import doc_id
from yasearch.config import Config
from yasearch.crawler.sitemaps import SitemapEntry
from yasearch.faults import Faults
from yasearch.crawler.types import CrawlSpec, Page
from yasearch.jobs import JobManager, page_document
from yasearch.recrawlstore import PageRow, RecrawlStore

log = logging.getLogger(__name__)

#: The crawl store's job id of the recrawl rounds (not a job of the jobs list).
ROUND_ID = "recrawl"
#: sitemaps.org changefreq -> seconds (then bounded by the configured interval bounds).
CHANGEFREQ = {
    "always": 0.0, "hourly": 3600.0, "daily": 86400.0, "weekly": 7 * 86400.0,
    "monthly": 30 * 86400.0, "yearly": 365 * 86400.0, "never": float("inf"),
}
GONE = ("http_404", "http_410", "robots", "not_html", "noindex")
MAX_ROUND = 1000


def content_hash(page: Page) -> str:
    text = "\x00".join((page.title, page.headings, page.body, page.description, page.language))
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=16).hexdigest()


def bounded(seconds: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, seconds))


def lastmod_time(lastmod: str) -> float | None:
    """A sitemap ``lastmod`` (W3C datetime: a date, or a date and time) as a Unix time."""
    if not lastmod:
        return None
    try:
        when = datetime.fromisoformat(lastmod.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def initial_interval(page: Page, lo: float, hi: float, now: float) -> float:
    """The first interval of a page: its sitemap's changefreq, else the age its lastmod
    gives, else the lower bound."""
    if page.changefreq in CHANGEFREQ:
        return bounded(CHANGEFREQ[page.changefreq], lo, hi)
    modified = lastmod_time(page.lastmod)
    if modified is not None:
        return bounded(now - modified, lo, hi)
    if page.last_modified:
        try:
            return bounded(now - parsedate_to_datetime(page.last_modified).timestamp(), lo, hi)
        except (TypeError, ValueError):
            pass
    return lo


def apply_hint(row: PageRow, entry: SitemapEntry, lo: float, hi: float, now: float) -> bool:
    """A sitemap read again: its ``changefreq`` sets the interval (within [lo, hi]) and a
    ``lastmod`` newer than the page's last fetch makes it due now. True if ``row`` changed."""
    changed = False
    if entry.changefreq in CHANGEFREQ:
        interval = bounded(CHANGEFREQ[entry.changefreq], lo, hi)
        if interval != row.interval:
            row.interval, changed = interval, True
            if row.failures == 0:  # a failing page keeps its retry delay
                row.next_visit = row.last_visit + interval
    modified = lastmod_time(entry.lastmod)
    if modified is not None and modified > row.last_visit and row.next_visit > now:
        row.next_visit, changed = now, True
    return changed


def next_interval(interval: float, changed: bool, lo: float, hi: float) -> float:
    """Halve the interval when the page changed, double it when not, within [lo, hi]."""
    return bounded(interval / 2 if changed else interval * 2, lo, hi)


def retry_delay(failures: int, first: float, hi: float) -> float:
    return min(hi, first * 2 ** max(0, failures - 1))


class Recrawler:
    def __init__(
        self, config: Config, jobs: JobManager, remove: Callable[[list[str]], Awaitable[None]], faults: Faults | None = None,
    ) -> None:
        self.config = config
        self.jobs = jobs
        self.remove = remove  # deletes documents locally and withdraws them from the network
        self.store = RecrawlStore(Path(config.data_dir) / "recrawl.db", faults.reporter("recrawl") if faults else None)
        #: revisited, unchanged, changed, gone, failed, removed (since start)
        self.counters: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()
        self._round_lock = asyncio.Lock()
        self.rounds = 0

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        self.jobs.on_page.append(self.track)
        self.jobs.on_sitemap.append(self.sitemap_read)
        if self.config.recrawl_share > 0:
            self._task = asyncio.create_task(self._loop(), name="recrawl")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*self._bg, return_exceptions=True)
        await self.store.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.recrawl_check_interval)
            try:
                await self.run_round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recrawl round failed")

    # -- tracking ----------------------------------------------------------------

    def track(self, page: Page) -> None:
        """A job indexed ``page``: schedule its revisits (JobManager.on_page callback)."""
        c = self.config
        now = time.time()
        interval = initial_interval(page, c.recrawl_min_interval, c.recrawl_max_interval, now)
        row = PageRow(page.url, doc_id(page.url), page.etag, page.last_modified, content_hash(page),
                      interval, now + interval, now, now)
        task = asyncio.get_running_loop().create_task(self.store.track(row))
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def sitemap_read(self, entries: list[SitemapEntry]) -> None:
        """A job read a site's sitemaps: their hints adjust the tracked pages' schedules
        (every read, so a page whose lastmod moves on is revisited soon)."""
        c = self.config
        now = time.time()
        hints = {e.url: e for e in entries if e.changefreq in CHANGEFREQ or e.lastmod}
        if not hints:
            return
        await self.settle()  # pages tracked just before are in the store
        n = await self.store.update(
            list(hints), lambda row: apply_hint(row, hints[row.url], c.recrawl_min_interval, c.recrawl_max_interval, now)
        )
        if n:
            log.info("recrawl: sitemap hints rescheduled %d pages", n)

    async def settle(self) -> None:
        await asyncio.gather(*list(self._bg), return_exceptions=True)

    async def figures(self) -> dict[str, int]:
        tracked, due = await self.store.counts()
        return {"tracked": tracked, "due": due, "rounds": self.rounds, **{
            k: self.counters[k] for k in ("revisited", "unchanged", "changed", "gone", "failed", "removed")
        }}

    # -- one round -----------------------------------------------------------------

    async def run_round(self, now: float | None = None) -> int:
        """Revisit the pages due at ``now`` (default: now); returns how many were due."""
        async with self._round_lock:
            await self.settle()
            rows = {r.url: r for r in await self.store.due(MAX_ROUND, now)}
            if not rows:
                return 0
            self.rounds += 1
            await self.jobs.store.delete_job(ROUND_ID)  # the previous round's URL rows
            spec = CrawlSpec(urls=list(rows), depth=0, max_pages=len(rows), sitemaps=False)
            handled: set[str] = set()

            async def sink(page: Page) -> None:
                row = rows.get(page.requested_url or page.url)
                if row is not None:
                    handled.add(row.url)
                    await self._page(row, page)

            async def outcome(url: str, reason: str) -> None:
                row = rows.get(url)
                if row is not None:
                    handled.add(url)
                    await self._outcome(row, reason)

            crawler = self.jobs.crawler(
                ROUND_ID, spec, sink, on_outcome=outcome,
                concurrency=int(self.config.crawl_concurrency * self.config.recrawl_share),
                validators={u: (r.etag, r.last_modified) for u, r in rows.items()},
            )
            await crawler.run()
            for url in set(rows) - handled:  # e.g. a redirect to a page already visited
                await self._outcome(rows[url], "error")
            await self.jobs.index.flush()
            await self.jobs.store.delete_job(ROUND_ID)
            return len(rows)

    async def _page(self, row: PageRow, page: Page) -> None:
        c = self.config
        now = time.time()
        self.counters["revisited"] += 1
        if page.noindex or page.status != 200:
            await self._gone(row)
            return
        new_hash = content_hash(page)
        changed = new_hash != row.hash or page.url != row.url
        row.interval = next_interval(row.interval, changed, c.recrawl_min_interval, c.recrawl_max_interval)
        row.etag, row.last_modified, row.failures = page.etag, page.last_modified, 0
        row.last_visit, row.next_visit = now, now + row.interval
        row.revisits += 1
        if not changed:
            self.counters["unchanged"] += 1
            row.unchanged += 1
            await self.store.save(row)
            return
        self.counters["changed"] += 1
        row.changed += 1
        if page.url != row.url:  # moved: the old address leaves, the new one is indexed
            await self.remove([row.doc_id])
            await self.store.delete([row.url])
            row.url, row.doc_id = page.url, doc_id(page.url)
        row.hash, row.last_change = new_hash, now
        await self.store.save(row)
        # with its anchor text (and its outlinks recorded for their targets)
        await self.jobs.index_document(await self.jobs.anchors.annotate(page, page_document(page)))

    async def _outcome(self, row: PageRow, reason: str) -> None:
        c = self.config
        now = time.time()
        if reason == "not_modified":
            self.counters["revisited"] += 1
            self.counters["unchanged"] += 1
            row.revisits, row.unchanged = row.revisits + 1, row.unchanged + 1
            row.interval = next_interval(row.interval, False, c.recrawl_min_interval, c.recrawl_max_interval)
            row.failures, row.last_visit, row.next_visit = 0, now, now + row.interval
            await self.store.save(row)
            return
        if reason in GONE:
            self.counters["revisited"] += 1
            await self._gone(row)
            return
        self.counters["failed"] += 1
        row.failures += 1
        if row.failures >= c.recrawl_max_failures:
            log.info("recrawl: %s failed %d times (%s), removed", row.url, row.failures, reason)
            self.counters["removed"] += 1
            await self.remove([row.doc_id])
            await self.store.delete([row.url])
            return
        row.next_visit = now + retry_delay(row.failures, c.recrawl_retry_delay, c.recrawl_max_interval)
        await self.store.save(row)

    async def _gone(self, row: PageRow) -> None:
        self.counters["gone"] += 1
        await self.remove([row.doc_id])
        await self.store.delete([row.url])
