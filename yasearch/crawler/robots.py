"""robots.txt fetching and caching (RFC 9309), parsed by protego."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
from protego import Protego

from .fetcher import classify_exception

log = logging.getLogger(__name__)

#: RFC 9309 section 2.5: crawlers must parse at least 500 KiB.
MAX_ROBOTS_BYTES = 500 * 1024
MAX_ROBOTS_REDIRECTS = 5


@dataclass
class RobotsRules:
    """The outcome of one robots.txt fetch for one origin.

    ``parser`` is None when the outcome is a blanket rule (``allow_all``), which is
    what RFC 9309 prescribes for 4xx (allow) and for 5xx/unreachable (disallow).
    ``fetched_at`` (monotonic) lets the engine keep its politeness gap between the
    robots.txt request and the first page request.
    """

    parser: Protego | None
    allow_all: bool
    expires: float
    fetched_at: float
    user_agent: str
    #: Why robots.txt could not be fetched at all (a failure reason such as
    #: ``refused``, ``dns``, ``timeout``): the host is unreachable, so its URLs are
    #: failures rather than policy skips. None when the server answered.
    error: str | None = None

    def allowed(self, url: str) -> bool:
        if self.parser is None:
            return self.allow_all
        try:
            return bool(self.parser.can_fetch(url, self.user_agent))
        except Exception:  # protego on pathological input: err on the side of allowing
            log.debug("protego failed on %s", url, exc_info=True)
            return True

    @property
    def crawl_delay(self) -> float | None:
        if self.parser is None:
            return None
        try:
            d = self.parser.crawl_delay(self.user_agent)
        except Exception:
            return None
        return float(d) if d is not None and d >= 0 else None

    @property
    def sitemaps(self) -> list[str]:
        """The robots.txt ``Sitemap:`` URLs (at most 50)."""
        if self.parser is None:
            return []
        try:
            return list(self.parser.sitemaps)[:50]
        except Exception:
            return []


def _origin(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme.lower()}://{p.netloc.lower()}"


class RobotsCache:
    """Per-origin robots.txt cache shared by all workers of a crawl.

    Concurrent callers for the same origin share one in-flight fetch, so a burst of
    URLs on a new host costs one robots.txt request, not one per worker.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        user_agent: str,
        ttl: float = 3600.0,
        *,
        failure_ttl: float = 60.0,
        timeout: aiohttp.ClientTimeout | None = None,
        max_bytes: int = MAX_ROBOTS_BYTES,
        url_allowed: Callable[[str], bool] = lambda _url: True,
    ) -> None:
        self._session = session
        self._user_agent = user_agent
        self._ttl = ttl
        self._failure_ttl = failure_ttl
        self._timeout = timeout or aiohttp.ClientTimeout(total=30, sock_connect=10, sock_read=20)
        self._max_bytes = max_bytes
        self._url_allowed = url_allowed  # the outbound policy (IP literals; names: the resolver)
        self._cache: dict[str, RobotsRules] = {}
        self._inflight: dict[str, asyncio.Future[RobotsRules]] = {}

    async def rules(self, url: str) -> RobotsRules:
        origin = _origin(url)
        cached = self._cache.get(origin)
        if cached is not None and cached.expires > time.monotonic():
            return cached
        fut = self._inflight.get(origin)
        if fut is None:
            fut = asyncio.ensure_future(self._load(origin))
            self._inflight[origin] = fut
            fut.add_done_callback(lambda _f, o=origin: self._inflight.pop(o, None))
        # shield: one caller being cancelled must not cancel the fetch others wait on
        return await asyncio.shield(fut)

    async def allowed(self, url: str) -> bool:
        return (await self.rules(url)).allowed(url)

    async def crawl_delay(self, host_url: str) -> float | None:
        return (await self.rules(host_url)).crawl_delay

    async def _load(self, origin: str) -> RobotsRules:
        rules = await self._fetch(origin)
        self._cache[origin] = rules
        return rules

    def _blanket(self, allow: bool, ttl: float, error: str | None = None) -> RobotsRules:
        now = time.monotonic()
        return RobotsRules(None, allow, now + ttl, now, self._user_agent, error)

    async def _fetch(self, origin: str) -> RobotsRules:
        url = origin + "/robots.txt"
        headers = {"User-Agent": self._user_agent, "Accept": "text/plain,*/*;q=0.5"}
        try:
            for _ in range(MAX_ROBOTS_REDIRECTS + 1):
                if not self._url_allowed(url):
                    return self._blanket(False, self._failure_ttl, "blocked")
                async with self._session.get(
                    url, headers=headers, allow_redirects=False, timeout=self._timeout
                ) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                        url = urljoin(url, resp.headers["Location"])
                        if urlsplit(url).scheme not in ("http", "https"):
                            return self._blanket(True, self._ttl)
                        continue
                    if resp.status == 429 or resp.status >= 500:
                        # unavailable: assume complete disallow, but retry soon
                        return self._blanket(False, self._failure_ttl)
                    if resp.status >= 400:
                        return self._blanket(True, self._ttl)
                    if resp.status >= 300:  # redirect without Location, 304, ...
                        return self._blanket(True, self._ttl)
                    body = bytearray()
                    async for chunk in resp.content.iter_chunked(65536):
                        body += chunk
                        if len(body) >= self._max_bytes:
                            del body[self._max_bytes :]
                            break
                    text = bytes(body).decode("utf-8", errors="replace")
                    try:
                        parser = Protego.parse(text)
                    except Exception:
                        log.debug("unparseable robots.txt at %s", url, exc_info=True)
                        return self._blanket(True, self._ttl)
                    now = time.monotonic()
                    return RobotsRules(parser, True, now + self._ttl, now, self._user_agent)
            # RFC 9309: more than 5 redirects may be treated as unavailable (4xx)
            return self._blanket(True, self._ttl)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # unreachable, timeout, reset: disallow for a while
            log.debug("robots.txt for %s unreachable: %r", origin, exc)
            return self._blanket(False, self._failure_ttl, classify_exception(exc))
