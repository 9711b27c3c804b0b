"""Sitemaps (sitemaps.org): fetched with the crawl's session, parsed with bounds.

A crawl reads the sitemaps its seed hosts list in robots.txt plus ``/sitemap.xml``;
sitemap indexes are followed, gzip is inflated. A hostile sitemap is bounded in
every direction: bytes per document (inflated), URLs in all, documents fetched and
nesting. XML entities are refused (defusedxml), so no entity expansion bomb.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from defusedxml import ElementTree as SafeET

from .urls import canonicalize, host_of

log = logging.getLogger(__name__)

#: sitemaps.org: at most 50,000 URLs and 50 MiB (uncompressed) per sitemap.
MAX_SITEMAP_BYTES = 10 * 1024 * 1024
MAX_URLS = 50_000
MAX_DOCUMENTS = 20
MAX_NESTING = 2  # index -> sitemap (-> nothing deeper)
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class SitemapEntry:
    url: str
    lastmod: str = ""
    changefreq: str = ""


class SitemapTooLarge(ValueError):
    pass


def inflate(data: bytes, limit: int = MAX_SITEMAP_BYTES) -> bytes:
    """gzip-inflate ``data`` if it is gzip, refusing more than ``limit`` bytes out."""
    if not data.startswith(b"\x1f\x8b"):
        return data
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(data, limit + 1)
    if len(out) > limit or d.unconsumed_tail:
        raise SitemapTooLarge("inflated sitemap over the limit")
    return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def parse(data: bytes) -> tuple[list[SitemapEntry], list[str]]:
    """(page entries, child sitemap URLs) of one sitemap or sitemap index document."""
    root = SafeET.fromstring(inflate(data))
    pages: list[SitemapEntry] = []
    children: list[str] = []
    kind = _local(root.tag)
    for item in root:
        fields = {_local(c.tag): (c.text or "").strip() for c in item}
        loc = fields.get("loc", "")
        if not loc:
            continue
        if kind == "sitemapindex":
            children.append(loc)
        elif kind == "urlset":
            pages.append(SitemapEntry(loc, fields.get("lastmod", ""), fields.get("changefreq", "").lower()))
        if len(pages) + len(children) >= MAX_URLS:
            break
    return pages, children


#: Fetches one sitemap URL politely; returns its body (None when unusable).
Fetch = Callable[[str], Awaitable[bytes | None]]


async def read_sitemaps(start: list[str], fetch_body: Fetch, *, max_urls: int = MAX_URLS) -> list[SitemapEntry]:
    """Entries of the sitemaps at ``start`` and of the indexes they lead to, bounded.

    Only entries on the host of the sitemap that lists them are kept (the
    sitemaps.org rule), so a sitemap cannot aim a crawl at another site.
    """
    out: list[SitemapEntry] = []
    seen: set[str] = set()
    level = [(u, 0) for u in start]
    docs = 0
    while level and docs < MAX_DOCUMENTS and len(out) < max_urls:
        url, depth = level.pop(0)
        if url in seen:
            continue
        seen.add(url)
        docs += 1
        body = await fetch_body(url)
        if not body:
            continue
        try:
            pages, children = parse(body)
        except Exception as e:  # malformed, entities, too large: skip this document
            log.info("sitemap %s unusable: %s", url, e)
            continue
        host = host_of(url)
        for e in pages:
            c = canonicalize(e.url)
            if c is not None and host_of(c) == host and len(out) < max_urls:
                out.append(SitemapEntry(c, e.lastmod, e.changefreq))
        if depth + 1 < MAX_NESTING:
            level.extend((c, depth + 1) for c in children if urlsplit(c).scheme in ("http", "https"))
    return out


async def read_body(session: aiohttp.ClientSession, url: str, user_agent: str, timeout: aiohttp.ClientTimeout) -> bytes | None:
    """The body of ``url`` up to MAX_SITEMAP_BYTES, or None (not 200, error, too large)."""
    try:
        async with session.get(url, headers={"User-Agent": user_agent}, timeout=timeout) as resp:
            if resp.status != 200:
                return None
            body = bytearray()
            async for chunk in resp.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > MAX_SITEMAP_BYTES:
                    resp.close()
                    return None
            return bytes(body)
    except Exception as e:  # noqa: BLE001 - any failure: no sitemap from here
        log.debug("sitemap %s: %r", url, e)
        return None
