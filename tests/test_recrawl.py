"""Recrawl: adaptive next visits, conditional GET, changed and vanished pages across peers,
failure backoff and removal."""

from __future__ import annotations

import hashlib
import time

import pytest
from aiohttp import web

from yasearch.crawler.types import CrawlSpec, Page
from yasearch.recrawl import initial_interval, next_interval, retry_delay

DAY = 86400.0
LATER = 10**10  # a round "at" this time finds every page due


# -- the schedule -------------------------------------------------------------------------


def test_interval_halves_on_change_and_doubles_without_within_bounds():
    assert next_interval(8 * DAY, True, DAY, 60 * DAY) == 4 * DAY
    assert next_interval(8 * DAY, False, DAY, 60 * DAY) == 16 * DAY
    assert next_interval(DAY, True, DAY, 60 * DAY) == DAY
    assert next_interval(40 * DAY, False, DAY, 60 * DAY) == 60 * DAY


def test_first_interval_follows_sitemap_hints_within_bounds():
    now = time.time()
    page = lambda **kw: Page(url="http://x/", status=200, content_type="text/html", **kw)  # noqa: E731
    assert initial_interval(page(changefreq="weekly"), DAY, 60 * DAY, now) == 7 * DAY
    assert initial_interval(page(changefreq="hourly"), DAY, 60 * DAY, now) == DAY
    assert initial_interval(page(changefreq="never"), DAY, 60 * DAY, now) == 60 * DAY
    ten_days_ago = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 10 * DAY))
    assert abs(initial_interval(page(lastmod=ten_days_ago), DAY, 60 * DAY, now) - 10 * DAY) < 5
    assert initial_interval(page(), DAY, 60 * DAY, now) == DAY


def test_retries_back_off():
    assert [retry_delay(n, 3600, DAY) for n in (1, 2, 3, 10)] == [3600, 7200, 14400, DAY]


# -- a site whose pages change, vanish and fail ----------------------------------------------


class Site:
    """Pages with ETags that answer If-None-Match with 304; a path can be given a status."""

    def __init__(self, make_site) -> None:
        self.make_site = make_site
        self.bodies: dict[str, str] = {}
        self.status: dict[str, int] = {}
        self.requests: list[tuple[str, str, int]] = []  # (path, If-None-Match, status answered)

    async def start(self, pages: dict[str, str]):
        self.site = await self.make_site()
        self.bodies.update(pages)
        for path in pages:
            self.site.handlers[path] = self.handle
        return self

    def url(self, path: str = "/") -> str:
        return self.site.url(path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        inm = request.headers.get("If-None-Match", "")
        status = self.status.get(path, 200)
        if status != 200:
            self.requests.append((path, inm, status))
            return web.Response(status=status, text="no")
        body = self.bodies[path]
        etag = '"' + hashlib.sha1(body.encode()).hexdigest()[:12] + '"'
        if inm == etag:
            self.requests.append((path, inm, 304))
            return web.Response(status=304, headers={"ETag": etag})
        self.requests.append((path, inm, 200))
        return web.Response(text=body, content_type="text/html", headers={"ETag": etag})


def html(title: str, body: str, links: tuple[str, ...] = ()) -> str:
    anchors = "".join(f'<a href="{link}">{link}</a>' for link in links)
    return f"<html><head><title>{title}</title></head><body><p>{body}</p>{anchors}</body></html>"


PAGES = {
    "/": html("home", "harbour lighthouse", ("/a", "/b")),
    "/a": html("alpha", "walrus saffron"),
    "/b": html("bravo", "pelican nutmeg"),
}


async def crawl(peer, site: Site) -> None:
    job = await peer.start_crawl(CrawlSpec(urls=[site.url("/")], depth=1, max_pages=10, delay=0.0, sitemaps=False))
    await peer.jobs.wait(job.id)
    await peer.settle()


@pytest.fixture
async def site(make_site) -> Site:
    return await Site(make_site).start(PAGES)


async def local_total(peer, q: str) -> int:
    return (await peer.search(q, scope="local")).total


async def test_unchanged_pages_cost_one_conditional_request_and_nothing_else(make_peer, site):
    peer = await make_peer()
    await crawl(peer, site)
    assert (await peer.status())["recrawl"]["tracked"] == 3
    added, published = [], []
    orig_add, orig_enqueue = peer.index.add, peer.publisher.enqueue

    async def spy_add(doc):
        added.append(doc.url)
        await orig_add(doc)

    async def spy_enqueue(docs):
        published.extend(d.url for d in docs)
        await orig_enqueue(docs)

    peer.index.add, peer.publisher.enqueue = spy_add, spy_enqueue
    site.requests.clear()

    assert await peer.recrawler.run_round(now=LATER) == 3
    await peer.settle()

    assert sorted(r[0] for r in site.requests) == ["/", "/a", "/b"]
    assert all(inm and status == 304 for _, inm, status in site.requests)
    assert added == [] and published == []
    figures = (await peer.status())["recrawl"]
    assert figures["revisited"] == 3 and figures["unchanged"] == 3 and figures["changed"] == 0
    row = await peer.recrawler.store.get(site.url("/a"))
    assert row.interval == 2 * peer.config.recrawl_min_interval  # doubled: it did not change
    assert figures["due"] == 0


async def test_the_status_page_shows_the_recrawl_figures(peer, site, http):
    await crawl(peer, site)
    async with http.get(peer.url + "/status") as r:
        page = await r.text()
    assert 'id="status-recrawl"' in page and "Recrawl (freshness)" in page
    for label in ("tracked", "due", "revisited", "unchanged", "changed", "gone"):
        assert f"<dt>{label}</dt>" in page


async def test_a_changed_page_is_reindexed_and_its_lost_terms_withdrawn_on_another_peer(make_network, site):
    origin, _, asker = await make_network(["p0", "p1", "p2"])
    await crawl(origin, site)
    for p in (origin, asker):
        await p.settle()
    assert (await asker.search("walrus")).total == 1

    site.bodies["/a"] = html("alpha", "otter ginger")
    await origin.recrawler.run_round(now=LATER)
    await origin.settle()

    assert (await asker.search("walrus")).total == 0
    assert (await asker.search("otter")).total == 1
    assert await local_total(origin, "walrus") == 0 and await local_total(origin, "otter") == 1
    figures = (await origin.status())["recrawl"]
    assert figures["changed"] == 1 and figures["unchanged"] == 2
    row = await origin.recrawler.store.get(site.url("/a"))
    assert row.interval == origin.config.recrawl_min_interval  # halved, at the lower bound


@pytest.mark.parametrize("status", [404, 410])
async def test_a_vanished_page_is_removed_and_withdrawn_across_peers(make_network, site, status):
    origin, _, asker = await make_network(["p0", "p1", "p2"])
    await crawl(origin, site)
    await origin.settle()
    assert (await asker.search("pelican")).total == 1

    site.status["/b"] = status
    await origin.recrawler.run_round(now=LATER)
    await origin.settle()

    assert await local_total(origin, "pelican") == 0
    assert (await asker.search("pelican")).total == 0
    for p in (origin, asker):
        assert sum((await p.shard.df(["pelican"])).values()) == 0
    assert (await origin.status())["recrawl"]["gone"] == 1
    assert await origin.recrawler.store.get(site.url("/b")) is None


async def test_failures_back_off_then_remove_the_page(make_peer, site):
    peer = await make_peer(recrawl_max_failures=2, recrawl_retry_delay=600.0)
    await crawl(peer, site)
    site.status["/a"] = 503

    before = time.time()
    await peer.recrawler.run_round(now=LATER)
    row = await peer.recrawler.store.get(site.url("/a"))
    assert row.failures == 1 and before + 600 <= row.next_visit <= time.time() + 600
    assert await local_total(peer, "walrus") == 1  # kept while it may come back

    await peer.recrawler.run_round(now=LATER)
    await peer.settle()
    assert await peer.recrawler.store.get(site.url("/a")) is None
    assert await local_total(peer, "walrus") == 0
    figures = (await peer.status())["recrawl"]
    assert figures["failed"] == 2 and figures["removed"] == 1


async def test_a_page_that_recovers_resets_its_failures(make_peer, site):
    peer = await make_peer(recrawl_max_failures=2)
    await crawl(peer, site)
    site.status["/a"] = 500
    await peer.recrawler.run_round(now=LATER)
    del site.status["/a"]
    await peer.recrawler.run_round(now=LATER)
    row = await peer.recrawler.store.get(site.url("/a"))
    assert row is not None and row.failures == 0


async def test_the_schedule_survives_a_restart(make_peer, site, tmp_path):
    peer = await make_peer(tmp_path / "p")
    await crawl(peer, site)
    await peer.stop()
    again = await make_peer(tmp_path / "p")
    assert (await again.status())["recrawl"]["tracked"] == 3
    assert await again.recrawler.run_round(now=LATER) == 3
