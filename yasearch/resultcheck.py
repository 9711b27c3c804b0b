"""Result verification by fetching (``verify = "fetch"``): look at the page before showing it.

Other peers' postings say a page contains the query terms; that may be stale (the
page changed or is gone) or a lie. YaCy's ``search.verify`` re-checks results
before it shows them; :class:`ResultChecker` does the same for the top remote
results of a global search:

* each URL is fetched by the crawler's own fetcher (:func:`yasearch.crawler.fetcher.fetch`),
  so the same rules hold as for crawling: the outbound policy after DNS resolution
  and on every redirect hop (no loopback or private addresses unless
  ``allow_private_networks``), robots.txt (a page we may not crawl is not shown
  as verified), the size cap and the total deadline per fetch;
* a result is **dropped** when the page does not resolve, is refused, gone
  (``http_4xx``), disallowed, not a page, or no longer contains every query term
  (in its title, headings, text, description or URL, by the same analyzer that
  indexed it; any of them for a relaxed query, whose results need not have every
  word, :mod:`yasearch.relax`); a transient failure (timeout, 5xx, 429) keeps it: that proves
  nothing about the page;
* outcomes are cached per URL for ``ttl`` seconds (at most ``cache_size`` URLs), so
  paging through results or repeating a query fetches nothing again, and at most
  ``concurrency`` fetches run at once.

Results of this peer's own index are not fetched (it crawled them itself).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable

import aiohttp

from yasearch.analysis import analyze
from yasearch.config import Config
from yasearch.crawler.extract import extract
from yasearch.crawler.fetcher import FetchResult, fetch
from yasearch.crawler.outbound import OutboundPolicy, guarded_session
from yasearch.crawler.robots import RobotsCache
from yasearch.crawler.types import CrawlerSettings
from yasearch.ranking import url_text
from yasearch.records import SearchHit

log = logging.getLogger(__name__)

VERIFY_MODES = ("off", "origin", "fetch")
#: Failures that say nothing about the page: the result stays.
TRANSIENT = frozenset({"timeout", "error", "http_429"})


def checker_settings(config: Config) -> CrawlerSettings:
    """The crawler's settings for verification fetches (a short total deadline)."""
    return CrawlerSettings(
        user_agent=config.user_agent,
        connect_timeout=min(config.connect_timeout, 5.0),
        read_timeout=min(config.read_timeout, 5.0),
        max_body_bytes=config.max_body_bytes,
        max_redirects=config.max_redirects,
        fetch_deadline=min(config.fetch_deadline, 10.0),
        outbound=OutboundPolicy(allow_private=config.allow_private_networks),
    )


def page_terms(result: FetchResult) -> set[str]:
    """The analyzed terms of a fetched page, as the indexer would see them."""
    ex = extract(result.body, result.final_url, result.content_type, result.charset)
    text = " ".join((ex.title, ex.headings, ex.body, ex.description, url_text(result.final_url)))
    return set(analyze(text))


class ResultChecker:
    """Fetches result URLs politely and says which still hold the query terms."""

    def __init__(
        self,
        settings: CrawlerSettings,
        *,
        top: int = 10,
        concurrency: int = 4,
        ttl: float = 600.0,
        cache_size: int = 1000,
    ) -> None:
        self.settings = settings
        self.top = top
        self.ttl = ttl
        self.cache_size = cache_size
        self._slots = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._robots: RobotsCache | None = None
        #: url -> (expires, reason or None, terms of the page)
        self._cache: OrderedDict[str, tuple[float, str | None, frozenset[str]]] = OrderedDict()
        self.fetched = 0
        self.dropped = 0

    def _open(self) -> RobotsCache:
        if self._session is None or self._robots is None:
            self._session = guarded_session(self.settings.outbound, limit=16)
            self._robots = RobotsCache(
                self._session, self.settings.user_agent, url_allowed=self.settings.outbound.url_allowed,
                timeout=aiohttp.ClientTimeout(total=self.settings.fetch_deadline),
            )
        return self._robots

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = self._robots = None

    async def _look(self, url: str) -> tuple[str | None, frozenset[str]]:
        """(failure reason or None, the page's terms), from the cache or a fetch."""
        now = time.monotonic()
        hit = self._cache.get(url)
        if hit is not None and hit[0] > now:
            self._cache.move_to_end(url)
            return hit[1], hit[2]
        robots = self._open()
        assert self._session is not None
        async with self._slots:
            if not await robots.allowed(url):
                reason, terms = "robots", frozenset()
            else:
                self.fetched += 1
                result = await fetch(self._session, url, self.settings, hop_allowed=robots.allowed)
                reason = result.reason
                terms = frozenset(await asyncio.to_thread(page_terms, result)) if result.ok else frozenset()
        self._cache[url] = (time.monotonic() + self.ttl, reason, terms)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return reason, terms

    async def holds(self, url: str, terms: Iterable[str], *, any_term: bool = False) -> bool:
        """Whether the page at ``url`` should still be shown for ``terms`` (every one, or
        with ``any_term`` at least one)."""
        reason, page = await self._look(url)
        if reason is not None:
            return reason in TRANSIENT or (reason.startswith("http_5"))
        return (any if any_term else all)(t in page for t in terms)

    async def keep(
        self, hits: list[SearchHit], terms: list[str], *, local: Iterable[str] = ("local",), any_term: bool = False
    ) -> list[SearchHit]:
        """``hits`` without the remote ones among the first ``top`` that fail the check
        (``any_term``: a relaxed query's results need one of the terms, not all)."""
        skip = set(local)
        checked = [h for h in hits[: self.top] if h.origin not in skip]
        if not checked:
            return hits
        verdicts = await asyncio.gather(
            *(self.holds(h.url, terms, any_term=any_term) for h in checked), return_exceptions=True
        )
        drop = set()
        for h, ok in zip(checked, verdicts):
            if isinstance(ok, BaseException):
                log.debug("verifying %s failed: %r", h.url, ok)
                continue
            if not ok:
                drop.add(id(h))
        self.dropped += len(drop)
        return [h for h in hits if id(h) not in drop]
