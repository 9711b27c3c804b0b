"""Sitemap hints on every read: a lastmod newer than a tracked page's last fetch makes it due
now; a changefreq sets its interval within the bounds."""

from __future__ import annotations

import time

from test_recrawl import DAY, PAGES, Site
from yasearch.crawler.sitemaps import SitemapEntry
from yasearch.crawler.types import CrawlSpec
from yasearch.recrawl import apply_hint, lastmod_time
from yasearch.recrawlstore import PageRow


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


def sitemap(site: Site, entries: dict[str, tuple[str, str]]) -> str:
    urls = "".join(
        f"<url><loc>{site.url(path)}</loc>"
        + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "")
        + (f"<changefreq>{freq}</changefreq>" if freq else "")
        + "</url>"
        for path, (lastmod, freq) in entries.items()
    )
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'


async def crawl(peer, site: Site, **spec) -> None:
    job = await peer.start_crawl(CrawlSpec(urls=[site.url("/")], depth=1, max_pages=10, delay=0.0, **spec))
    await peer.jobs.wait(job.id)
    await peer.settle()


def test_a_hint_moves_the_next_visit_within_the_bounds():
    now = 1_000_000_000.0
    row = lambda: PageRow("http://x/", "d", "", "", "h", 8 * DAY, now + 7 * DAY, now - DAY, now - DAY)  # noqa: E731
    r = row()
    assert apply_hint(r, SitemapEntry("http://x/", iso(now - 2 * DAY), ""), DAY, 60 * DAY, now) is False
    assert r.next_visit == now + 7 * DAY  # modified before the last fetch: nothing to do
    assert apply_hint(r, SitemapEntry("http://x/", iso(now - 3600), ""), DAY, 60 * DAY, now) is True
    assert r.next_visit == now  # modified since the last fetch: due now
    r = row()
    assert apply_hint(r, SitemapEntry("http://x/", "", "yearly"), DAY, 60 * DAY, now)
    assert r.interval == 60 * DAY and r.next_visit == now - DAY + 60 * DAY
    assert apply_hint(r, SitemapEntry("http://x/", "", "hourly"), DAY, 60 * DAY, now)
    assert r.interval == DAY
    assert lastmod_time("2024-05-01") == lastmod_time("2024-05-01T00:00:00Z")
    assert lastmod_time("yesterday") is None


async def test_every_sitemap_read_adjusts_the_tracked_pages(make_peer, make_site):
    site = Site(make_site)
    await site.start({**PAGES, "/sitemap.xml": ""})
    site.bodies["/sitemap.xml"] = sitemap(site, {"/a": ("", "weekly"), "/b": ("", "")})
    peer = await make_peer(recrawl_min_interval=DAY, recrawl_max_interval=60 * DAY)
    store = peer.recrawler.store
    await crawl(peer, site)
    a, b = await store.get(site.url("/a")), await store.get(site.url("/b"))
    assert a.interval == 7 * DAY and b.interval == DAY
    assert b.next_visit > time.time()

    # The site says /b changed after we fetched it and /a now changes monthly; a later crawl
    # that does not fetch them (denied) still reads the sitemap and reschedules both.
    site.bodies["/sitemap.xml"] = sitemap(site, {"/a": ("", "monthly"), "/b": (iso(b.last_visit + 60), "")})
    await crawl(peer, site, deny=[r"/a$", r"/b$"])
    a2, b2 = await store.get(site.url("/a")), await store.get(site.url("/b"))
    assert a2.interval == 30 * DAY and a2.next_visit == a.last_visit + 30 * DAY
    assert b2.next_visit <= time.time() and b2.interval == DAY
    assert (await peer.status())["recrawl"]["due"] == 1

    # And again: the third read's changefreq wins, clamped to the lower bound.
    site.bodies["/sitemap.xml"] = sitemap(site, {"/a": ("", "always")})
    await crawl(peer, site, deny=[r"/a$", r"/b$"])
    assert (await store.get(site.url("/a"))).interval == DAY

    # A crawl with sitemaps: false reads none, so nothing moves.
    site.bodies["/sitemap.xml"] = sitemap(site, {"/a": ("", "yearly")})
    await crawl(peer, site, deny=[r"/a$", r"/b$"], sitemaps=False)
    assert (await store.get(site.url("/a"))).interval == DAY
