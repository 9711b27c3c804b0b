"""The crawler, specified against real local web sites on 127.0.0.1.

Every test drives the real :class:`crawler.engine.Crawler` with a real
:class:`crawler.state.FrontierStore` against a :class:`tests.site.LocalSite`, which
records each request (path and arrival time) so that what was fetched, and when,
is asserted from the server's point of view.
"""

from __future__ import annotations

import asyncio

import pytest

from yasearch.crawler.engine import Crawler
from yasearch.crawler.state import FrontierStore
from yasearch.crawler.outbound import OutboundPolicy
from yasearch.crawler.types import CrawlerSettings, CrawlProgress, CrawlSpec, Page
from yasearch.crawler.urls import canonicalize
from tests.site import LocalSite, closed_port

#: Timer granularity allowance for politeness gaps measured by the server.
EPSILON = 0.01


def settings(**kw: object) -> CrawlerSettings:
    """Fast settings for loopback tests: no politeness delay unless asked."""
    kw.setdefault("user_agent", "yasearch-test/1.0")
    kw.setdefault("delay", 0.0)
    kw.setdefault("concurrency", 4)
    kw.setdefault("connect_timeout", 2.0)
    kw.setdefault("read_timeout", 2.0)
    kw.setdefault("outbound", OutboundPolicy(allow_private=True))  # the test sites are on loopback
    return CrawlerSettings(**kw)  # type: ignore[arg-type]


class Run:
    """One crawler plus a sink that records pages and marks them 'done' like jobs.py."""

    def __init__(self, store: FrontierStore, session, urls: list[str], *, job_id: str = "job",
                 settings_: CrawlerSettings | None = None, mark_done: bool = True,
                 on_page=None, **spec: object) -> None:
        spec.setdefault("depth", 20)
        spec.setdefault("max_pages", 100)
        # these tests count a site's requests: sitemap reading has tests of its own (test_sitemaps.py)
        spec.setdefault("sitemaps", False)
        self.store = store
        self.job_id = job_id
        self.pages: list[Page] = []
        self.mark_done = mark_done
        self.on_page = on_page
        self.progress = CrawlProgress()
        self.crawler = Crawler(
            job_id, CrawlSpec(urls=urls, **spec), settings_ or settings(), store, self._sink,  # type: ignore[arg-type]
            session=session, parse_pool=None, progress=self.progress,
        )

    async def _sink(self, page: Page) -> None:
        self.pages.append(page)
        if self.mark_done:  # what the index commit callback does in yasearch/jobs.py
            await self.store.mark(self.job_id, [(page.requested_url or page.url, "done", None)])
        if self.on_page is not None:
            self.on_page(self, page)

    async def run(self, timeout: float = 10.0) -> "Run":
        # the timeout only guards against a hang; no test asserts on speed
        await asyncio.wait_for(self.crawler.run(), timeout)
        return self

    def urls(self) -> list[str]:
        return [p.url for p in self.pages]

    def paths(self, site: LocalSite) -> list[str]:
        return [p.url.removeprefix(site.base) for p in self.pages]


@pytest.fixture
def crawl(crawl_store, http):
    """``await crawl(urls, **spec)`` runs a crawl to its end and returns the :class:`Run`."""

    async def go(urls: list[str], **kw: object) -> Run:
        return await Run(crawl_store, http, urls, **kw).run()

    return go


def page_hits(site: LocalSite) -> list[str]:
    return [p for p in site.paths() if p != "/robots.txt"]


async def url_rows(store: FrontierStore, job_id: str = "job") -> dict[str, tuple[str, str | None]]:
    return await store.url_states(job_id)


# -- robots.txt --------------------------------------------------------------------


async def test_robots_disallow_is_honoured(make_site, crawl, crawl_store):
    site = await make_site(robots="User-agent: *\nDisallow: /private\n")
    site.html("/", links=["/private/secret", "/public"])
    site.html("/public", links=["/private/other"])
    site.html("/private/secret", body="secret")
    site.html("/private/other", body="secret")

    run = await crawl([site.url("/")])

    assert sorted(run.paths(site)) == ["/", "/public"]
    assert not any(p.startswith("/private") for p in site.paths())
    assert site.count("/robots.txt") == 1  # cached per host
    assert run.progress.skipped == 2 and run.progress.failed == 0
    rows = await url_rows(crawl_store)
    assert rows[site.url("/private/secret")] == ("skipped", "robots")
    assert rows[site.url("/private/other")] == ("skipped", "robots")


async def test_robots_user_agent_group_is_matched(make_site, crawl):
    robots = "User-agent: yasearch-test\nDisallow: /mine\n\nUser-agent: *\nDisallow: /\n"
    site = await make_site(robots=robots)
    site.html("/", links=["/mine", "/other"])
    site.html("/mine")
    site.html("/other")

    run = await crawl([site.url("/")])

    assert sorted(run.paths(site)) == ["/", "/other"]


@pytest.mark.parametrize("status", [404, 403, 410])
async def test_robots_4xx_allows_everything(make_site, crawl, status):
    # the body says "disallow all", but a 4xx robots.txt means there are no rules
    site = await make_site(robots="User-agent: *\nDisallow: /\n", robots_status=status)
    site.html("/", links=["/a"])
    site.html("/a")

    run = await crawl([site.url("/")])

    assert sorted(run.paths(site)) == ["/", "/a"]
    assert run.progress.skipped == 0


@pytest.mark.parametrize("status", [500, 503])
async def test_robots_5xx_disallows_the_host(make_site, crawl, crawl_store, status):
    site = await make_site(robots="User-agent: *\nAllow: /\n", robots_status=status)
    site.html("/", links=["/a"])
    site.html("/b")

    run = await crawl([site.url("/"), site.url("/b")])

    assert run.pages == []
    assert site.paths() == ["/robots.txt"]  # one robots.txt attempt, no page request
    rows = await url_rows(crawl_store)
    assert rows[site.url("/")] == ("skipped", "robots")
    assert rows[site.url("/b")] == ("skipped", "robots")
    assert run.progress.skipped == 2 and run.progress.failed == 0


async def test_robots_unreachable_disallows_the_host(make_site, crawl, crawl_store):
    dead = f"http://127.0.0.1:{closed_port()}"
    site = await make_site()
    site.html("/", links=[dead + "/a", dead + "/b"])

    run = await crawl([site.url("/")])

    assert run.paths(site) == ["/"]
    assert run.crawler.state == "done"
    # an unreachable host's URLs are failures with the network reason, not robots skips
    rows = await url_rows(crawl_store)
    assert rows[dead + "/a"] == ("failed", "refused")
    assert rows[dead + "/b"] == ("failed", "refused")
    assert run.progress.fetched == 1
    assert dict(run.progress.failures) == {"refused": 2}


# -- politeness --------------------------------------------------------------------


def assert_spaced(site: LocalSite, count: int, seconds: float) -> None:
    """``site`` saw ``count`` gaps between requests (robots.txt's request counted), none
    shorter than ``seconds``."""
    gaps = site.gaps()
    assert len(gaps) == count and min(gaps) >= seconds - EPSILON, gaps


async def test_per_host_delay_between_requests(make_site, crawl):
    site = await make_site(robots="User-agent: *\nAllow: /\n")
    site.html("/", links=["/a", "/b", "/c"])
    for p in ("/a", "/b", "/c"):
        site.html(p)

    run = await crawl([site.url("/")], delay=0.2, settings_=settings(concurrency=8))

    assert len(run.pages) == 4
    assert site.paths()[0] == "/robots.txt"
    assert_spaced(site, 4, 0.2)


async def test_settings_delay_is_the_default(make_site, crawl):
    site = await make_site(robots="User-agent: *\nAllow: /\n")
    site.html("/", links=["/a"])
    site.html("/a")

    await crawl([site.url("/")], settings_=settings(delay=0.2))

    assert_spaced(site, 2, 0.2)


@pytest.mark.parametrize("job_delay", [0.0, 0.05])
async def test_robots_crawl_delay_wins_when_larger(make_site, crawl, job_delay):
    site = await make_site(robots="User-agent: *\nCrawl-delay: 0.3\n")
    for p in ("/a", "/b", "/c"):
        site.html(p)

    # three seeds on one host: workers must not fire them together while robots.txt loads
    run = await crawl([site.url("/a"), site.url("/b"), site.url("/c")], delay=job_delay,
                      settings_=settings(concurrency=8))

    assert len(run.pages) == 3
    assert_spaced(site, 3, 0.3)


async def test_job_delay_wins_over_smaller_crawl_delay(make_site, crawl):
    site = await make_site(robots="User-agent: *\nCrawl-delay: 0.05\n")
    site.html("/", links=["/a"])
    site.html("/a")

    await crawl([site.url("/")], delay=0.25)

    assert_spaced(site, 2, 0.25)


async def test_redirect_hops_keep_the_delay(make_site, crawl):
    site = await make_site()
    site.redirect("/", "/r1")
    site.redirect("/r1", "/final")
    site.html("/final", body="arrived")

    run = await crawl([site.url("/")], delay=0.15)

    assert run.urls() == [site.url("/final")]
    assert site.paths() == ["/robots.txt", "/", "/r1", "/final"]
    assert min(site.gaps()) >= 0.15 - EPSILON, site.gaps()


async def test_hosts_are_crawled_in_parallel(make_site, crawl):
    """Politeness is per host: a slow host does not hold back another one."""
    slow = await make_site()
    fast = await make_site()
    slow.slow("/", 0.5)
    fast.html("/", links=["/a"])
    fast.html("/a")
    run = await crawl([slow.url("/"), fast.url("/")])

    # /a of the fast host was handed over before the slow host's only page
    assert run.urls().index(fast.url("/a")) < run.urls().index(slow.url("/"))


# -- limits ------------------------------------------------------------------------


def tree_site(site: LocalSite) -> LocalSite:
    """/ -> /a, /b; /a -> /a1, /a2; /a1 -> /a1x; /b -> /b1"""
    site.html("/", links=["/a", "/b"])
    site.html("/a", links=["/a1", "/a2"])
    site.html("/b", links=["/b1"])
    site.html("/a1", links=["/a1x"])
    for p in ("/a2", "/b1", "/a1x"):
        site.html(p)
    return site


@pytest.mark.parametrize(
    "depth, expected",
    [
        (0, {"/"}),
        (1, {"/", "/a", "/b"}),
        (2, {"/", "/a", "/b", "/a1", "/a2", "/b1"}),
    ],
)
async def test_depth_limit(make_site, crawl, depth, expected):
    site = tree_site(await make_site())

    run = await crawl([site.url("/")], depth=depth)

    assert set(run.paths(site)) == expected
    assert len(run.pages) == len(expected)
    assert sorted(page_hits(site)) == sorted(expected)
    assert {p.depth for p in run.pages} == set(range(depth + 1))


@pytest.mark.parametrize("max_pages", [1, 3, 5])
async def test_max_pages_limit(make_site, crawl, max_pages):
    site = await make_site()
    links = [f"/p{i}" for i in range(12)]
    site.html("/", links=links)
    for p in links:
        site.html(p, links=links)

    run = await crawl([site.url("/")], max_pages=max_pages, settings_=settings(concurrency=8))

    assert len(run.pages) == max_pages
    assert len(page_hits(site)) == max_pages
    assert run.crawler.state == "done"


async def test_failures_do_not_count_towards_max_pages(make_site, crawl):
    site = await make_site()
    site.html("/", links=["/gone1", "/gone2", "/a", "/b"])
    site.html("/a")
    site.html("/b")

    run = await crawl([site.url("/")], max_pages=3, settings_=settings(concurrency=1))

    assert sorted(run.paths(site)) == ["/", "/a", "/b"]
    assert run.progress.failures["http_404"] == 2


async def test_allow_deny_and_same_site(make_site, crawl):
    other = await make_site()
    other.html("/", body="other host")
    site = await make_site()
    site.html("/", links=["/docs/a", "/docs/private/b", "/blog/c", other.url("/")])
    for p in ("/docs/a", "/docs/private/b", "/blog/c"):
        site.html(p)

    run = await crawl([site.url("/")], allow=["/docs/", r"/$"], deny=["private"], same_site=True)

    assert sorted(run.paths(site)) == ["/", "/docs/a"]
    assert other.hits == []
    assert run.progress.skipped == 3


# -- canonical duplicates ----------------------------------------------------------


async def test_canonical_variants_fetched_once(make_site, crawl):
    site = await make_site()
    b = site.base
    site.html("/", links=[
        "/a", "/a#section", "a?", "./a", "/x/../a", f"{b}/a", f"{b}/a#top",
        "/c",  # declares /a canonical
        "/moved",  # redirects to /a
        "/", "#", "/?",
    ])
    site.html("/a", body="the a page", links=["/", "/a"])
    site.html("/c", body="copy of a", head=f'<link rel="canonical" href="{b}/a">')
    site.redirect("/moved", "/a#frag")
    # a default port is dropped, so such links collapse as well
    assert canonicalize("HTTP://LocalHost:80/a#x") == "http://localhost/a"

    run = await crawl([site.url("/"), site.url("/#top")], settings_=settings(concurrency=1))

    assert sorted(run.urls()) == [site.url("/"), site.url("/a")]
    for path in ("/", "/a", "/c", "/moved"):
        assert site.count(path) <= 1, (path, site.paths())
    assert site.count("/a") == 1


async def test_host_case_and_redirect_to_seen_url(make_site, crawl_store, http):
    site = await make_site()
    port = site.port
    # "localhost" resolves to this site; the mixed-case host is the same URL
    site.html("/", links=[f"http://LocalHost:{port}/a", f"http://LOCALHOST:{port}/a#x"])
    site.html("/a", links=["/old", "/new"])
    site.redirect("/old", "/a")  # to a page already fetched: not fetched again
    site.html("/new", body="fresh")
    seed = f"http://localhost:{port}/"

    run = await Run(crawl_store, http, [seed], settings_=settings(concurrency=1)).run()

    assert sorted(run.urls()) == [f"http://localhost:{port}{p}" for p in ("/", "/a", "/new")]
    assert site.count("/a") == 1
    assert site.count("/old") == 1
    assert run.progress.failed == 0


async def test_rel_canonical_page_handed_over_under_its_canonical_url(make_site, crawl):
    site = await make_site()
    site.html("/", links=["/print?id=1"])
    site.html("/print?id=1", body="printable", head='<link rel="canonical" href="/article">')

    run = await crawl([site.url("/")])

    by_url = {p.url: p for p in run.pages}
    assert set(by_url) == {site.url("/"), site.url("/article")}
    assert by_url[site.url("/article")].requested_url == site.url("/print?id=1")
    assert site.count("/article") == 0


# -- noindex / nofollow ------------------------------------------------------------


async def test_noindex_and_nofollow(make_site, crawl):
    site = await make_site()
    site.page("/", '<html><head><title>home</title></head><body>'
                     '<a href="/noindex">n</a> <a href="/nofollow">f</a> <a href="/none">x</a> '
                     '<a rel="nofollow" href="/relnofollow">r</a> '
                     '<a rel="external NoFollow" href="/relnofollow2">r2</a></body></html>')
    site.html("/noindex", head='<meta name="robots" content="noindex">', links=["/from-noindex"])
    site.html("/nofollow", head='<meta name="ROBOTS" content="index, nofollow">', links=["/from-nofollow"])
    site.html("/none", head='<meta name="robots" content="none">', links=["/from-none"])
    for p in ("/from-noindex", "/from-nofollow", "/from-none", "/relnofollow", "/relnofollow2"):
        site.html(p)

    run = await crawl([site.url("/")])

    by_path = {p.removeprefix(site.base): pg for p, pg in zip(run.urls(), run.pages)}
    # a noindex page is handed over flagged, so the index can drop an older copy of it
    assert by_path["/noindex"].noindex and not by_path["/noindex"].nofollow
    assert by_path["/none"].noindex and by_path["/none"].nofollow
    assert not by_path["/nofollow"].noindex and by_path["/nofollow"].nofollow
    assert not by_path["/"].noindex
    indexable = {p for p, pg in by_path.items() if not pg.noindex}
    assert indexable == {"/", "/nofollow", "/from-noindex"}
    # noindex alone still follows; nofollow (meta or rel) never does
    assert site.count("/from-noindex") == 1
    for p in ("/from-nofollow", "/from-none", "/relnofollow", "/relnofollow2"):
        assert site.count(p) == 0, p
    assert by_path["/nofollow"].links == []


# -- content types -----------------------------------------------------------------


async def test_non_html_skipped_and_plain_text_accepted(make_site, crawl, crawl_store):
    site = await make_site()
    site.html("/", links=["/img.png", "/doc.pdf", "/data.json", "/notes.txt", "/x.xhtml"])
    site.page("/img.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, content_type="image/png")
    site.page("/doc.pdf", b"%PDF-1.4 zebra", content_type="application/pdf")
    site.page("/data.json", '{"zebra": 1}', content_type="application/json")
    site.page("/notes.txt", "Plain notes\nabout zebras", content_type="text/plain; charset=utf-8")
    site.page("/x.xhtml", '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>xh</title>'
              '</head><body><p>xhtml zebra</p></body></html>', content_type="application/xhtml+xml")

    run = await crawl([site.url("/")])

    assert sorted(run.paths(site)) == ["/", "/notes.txt", "/x.xhtml"]
    text = next(p for p in run.pages if p.url.endswith("/notes.txt"))
    assert text.content_type == "text/plain" and "zebras" in text.body and text.title == "Plain notes"
    assert run.progress.skipped == 3 and run.progress.failed == 0
    rows = await url_rows(crawl_store)
    for p in ("/img.png", "/doc.pdf", "/data.json"):
        assert rows[site.url(p)] == ("skipped", "not_html")


# -- oversized bodies --------------------------------------------------------------


async def test_oversized_body_truncated_and_crawl_continues(make_site, crawl):
    limit = 64 * 1024
    site = await make_site()
    site.html("/", links=["/huge", "/after"])
    site.huge("/huge", size=4 * 1024 * 1024)
    site.html("/after", body="still crawling")

    run = await crawl([site.url("/")], settings_=settings(max_body_bytes=limit))

    by_path = dict(zip(run.paths(site), run.pages))
    assert set(by_path) == {"/", "/huge", "/after"}
    huge = by_path["/huge"]
    assert huge.truncated and huge.title == "huge"
    assert 0 < len(huge.body) <= limit
    assert not by_path["/after"].truncated and not by_path["/"].truncated
    assert run.progress.failed == 0


# -- failures ----------------------------------------------------------------------


async def test_failures_counted_with_reasons_and_crawl_continues(make_site, crawl, crawl_store):
    dead = f"http://127.0.0.1:{closed_port()}/page"
    site = await make_site()
    site.html("/", links=["/missing", "/error", "/slow", dead, "/ok"])
    site.page("/error", "boom", status=500, content_type="text/html")
    site.slow("/slow", 3.0)
    site.html("/ok", links=["/ok2"])
    site.html("/ok2")

    run = await crawl([site.url("/")], settings_=settings(read_timeout=0.3, concurrency=2))

    assert sorted(run.paths(site)) == ["/", "/ok", "/ok2"]
    assert dict(run.progress.failures) == {"http_404": 1, "http_500": 1, "timeout": 1, "refused": 1}
    assert run.progress.failed == 4
    assert run.crawler.state == "done"
    rows = await url_rows(crawl_store)
    assert rows[site.url("/missing")] == ("failed", "http_404")
    assert rows[site.url("/error")] == ("failed", "http_500")
    assert rows[site.url("/slow")] == ("failed", "timeout")
    assert rows[dead] == ("failed", "refused")
    assert {u for u, _, _ in run.progress.recent_failures} == {
        site.url("/missing"), site.url("/error"), site.url("/slow"), dead}


async def test_too_many_redirects_counted(make_site, crawl):
    site = await make_site()
    site.html("/", links=["/loop0", "/ok"])
    for i in range(10):
        site.redirect(f"/loop{i}", f"/loop{i + 1}")
    site.html("/ok")

    run = await crawl([site.url("/")], settings_=settings(max_redirects=3))

    assert sorted(run.paths(site)) == ["/", "/ok"]
    assert run.progress.failures["too_many_redirects"] == 1
    assert site.count("/loop4") == 0


async def test_broken_html_and_bad_bytes_do_not_stop_the_crawl(make_site, crawl):
    site = await make_site()
    site.html("/", links=["/broken", "/bytes"])
    site.page("/broken", "<html><title>half<<div <a href='/after'>x</a><p <<<")
    site.page("/bytes", b"<title>caf\xe9 \xff\xfe</title><p>\x00zebra</p>",
              content_type="text/html; charset=utf-8")
    site.html("/after")

    run = await crawl([site.url("/")])

    assert {"/", "/broken", "/bytes"} <= set(run.paths(site))
    assert run.crawler.state == "done"


# -- pause / resume / cancel -------------------------------------------------------


def chain_site(site: LocalSite, n: int) -> LocalSite:
    for i in range(n):
        site.html(f"/p{i}", body=f"page {i}", links=[f"/p{i + 1}"] if i + 1 < n else [])
    return site


async def paused_run(make_site, crawl_store: FrontierStore, http, n: int) -> tuple[LocalSite, Run, asyncio.Task]:
    """A run over a chain of ``n`` pages, paused before its task starts: (site, run, task)."""
    site = chain_site(await make_site(), n)
    run = Run(crawl_store, http, [site.url("/p0")])
    run.crawler.pause()
    return site, run, asyncio.create_task(run.run())


async def test_pause_stops_new_fetches_until_resumed(make_site, crawl_store, http):
    site = chain_site(await make_site(), 5)

    paused = asyncio.Event()

    def on_page(run: Run, page: Page) -> None:
        if page.url == site.url("/p1"):
            run.crawler.pause()
            paused.set()

    run = Run(crawl_store, http, [site.url("/p0")], on_page=on_page)
    task = asyncio.create_task(run.run())
    await paused.wait()
    assert run.crawler.state == "paused"
    hits = list(site.paths())
    await asyncio.sleep(0.3)  # nothing may happen while paused
    assert site.paths() == hits
    assert page_hits(site) == ["/p0", "/p1"]
    assert not task.done()

    run.crawler.resume()
    assert run.crawler.state == "running"
    await task
    assert page_hits(site) == [f"/p{i}" for i in range(5)]
    assert run.crawler.state == "done"


async def test_paused_before_run_starts_nothing(make_site, crawl_store, http):
    site, run, task = await paused_run(make_site, crawl_store, http, 2)
    await asyncio.sleep(0.2)
    assert site.hits == [] and run.crawler.state == "paused"
    run.crawler.resume()
    await task
    assert page_hits(site) == ["/p0", "/p1"]


async def test_cancel_ends_run(make_site, crawl_store, http):
    site = await make_site()
    site.html("/", links=["/slow1", "/slow2", "/slow3"])
    for p in ("/slow1", "/slow2", "/slow3"):
        site.slow(p, 30.0)
    run = Run(crawl_store, http, [site.url("/")])
    task = asyncio.create_task(run.run())
    while not any(p.startswith("/slow") for p in site.paths()):
        await site.request_event.wait()
        site.request_event.clear()

    run.crawler.cancel()

    await asyncio.wait_for(task, 5)  # returns instead of waiting 30 s for the slow pages
    assert run.crawler.state == "cancelled"
    assert run.urls() == [site.url("/")]
    rows = await url_rows(crawl_store)
    # abandoned pages stay pending for a resume
    assert {s for u, (s, _) in rows.items() if "/slow" in u} == {"queued"}


async def test_cancel_before_run(make_site, crawl_store, http):
    site = chain_site(await make_site(), 2)
    run = Run(crawl_store, http, [site.url("/p0")])
    run.crawler.cancel()
    await run.run()  # returns at once, does not raise
    assert run.crawler.state == "cancelled" and site.hits == []


async def test_cancel_while_paused(make_site, crawl_store, http):
    site, run, task = await paused_run(make_site, crawl_store, http, 3)
    await asyncio.sleep(0.05)
    run.crawler.cancel()
    await asyncio.wait_for(task, 5)
    assert run.crawler.state == "cancelled" and site.hits == []


# -- resume from the store ---------------------------------------------------------


async def test_resume_fetches_only_what_remains(make_site, crawl_store, http):
    n = 8
    site = chain_site(await make_site(), n)
    site.html("/p0", links=["/p1", "/side"])
    site.html("/side")

    def stop_after_three(run: Run, page: Page) -> None:
        if len(run.pages) == 3:
            run.crawler.cancel()

    first = await Run(crawl_store, http, [site.url("/p0")], settings_=settings(concurrency=1),
                      on_page=stop_after_three).run()
    assert first.crawler.state == "cancelled"
    assert len(first.pages) == 3
    before = page_hits(site)

    second = await Run(crawl_store, http, [site.url("/p0")], settings_=settings(concurrency=1)).run()

    assert second.crawler.state == "done"
    assert not set(first.urls()) & set(second.urls())
    assert sorted(first.urls() + second.urls()) == sorted(site.url(p) for p in [f"/p{i}" for i in range(n)] + ["/side"])
    hits = page_hits(site)
    assert len(hits) == len(set(hits)), hits  # nothing fetched twice
    assert hits[: len(before)] == before
    counts = await crawl_store.url_counts("job")
    assert counts == {"done": n + 1}


async def test_resume_refetches_pages_not_confirmed_done(make_site, crawl_store, http):
    """A page fetched but never committed to the index (crash) is fetched again."""
    site = chain_site(await make_site(), 4)

    def on_page(run: Run, page: Page) -> None:
        if page.url == site.url("/p1"):
            run.crawler.cancel()

    first = Run(crawl_store, http, [site.url("/p0")], mark_done=False, on_page=on_page)
    await first.run()
    # simulate the index commit of /p0 only
    await crawl_store.mark("job", [(site.url("/p0"), "done", None)])

    second = await Run(crawl_store, http, [site.url("/p0")]).run()

    assert second.paths(site) == ["/p1", "/p2", "/p3"]
    assert site.count("/p0") == 1 and site.count("/p1") == 2


async def test_finished_job_restarted_fetches_nothing(make_site, crawl_store, http):
    site = chain_site(await make_site(), 3)
    await Run(crawl_store, http, [site.url("/p0")]).run()
    hits = list(site.paths())

    again = await Run(crawl_store, http, [site.url("/p0")]).run()

    assert again.pages == [] and site.paths() == hits
    assert again.crawler.state == "done"


async def test_other_job_ids_are_independent(make_site, crawl_store, http):
    site = chain_site(await make_site(), 2)
    await Run(crawl_store, http, [site.url("/p0")], job_id="one").run()
    two = await Run(crawl_store, http, [site.url("/p0")], job_id="two").run()
    assert two.paths(site) == ["/p0", "/p1"]


# -- re-crawl replaces -------------------------------------------------------------


async def test_recrawled_page_replaced_not_duplicated(peer, static_site):
    site = await static_site({
        "/": '<html><head><title>Home</title></head><body><p>zebras and oldword</p>'
             '<a href="/other">other</a></body></html>',
        "/other": "<html><head><title>Other</title></head><body><p>zebras elsewhere</p></body></html>",
    })
    url = site.url
    job = await peer.start_crawl(CrawlSpec(urls=[url], depth=1, max_pages=10))
    await peer.jobs.wait(job.id)
    assert (await peer.search("oldword", scope="local")).total == 1
    docs = peer.index.doc_count()
    assert docs == 2

    site.pages["/"] = ('<html><head><title>Home v2</title></head><body><p>zebras and newword</p>'
                       '<a href="/other">other</a></body></html>')
    job2 = await peer.start_crawl(CrawlSpec(urls=[url + "/#again"], depth=1, max_pages=10))
    await peer.jobs.wait(job2.id)

    assert job2.progress.fetched == 2
    assert (await peer.search("newword", scope="local")).total == 1
    assert (await peer.search("oldword", scope="local")).total == 0
    zebras = await peer.search("zebras", scope="local")
    assert zebras.total == 2
    assert peer.index.doc_count() == docs

    # a page that now says noindex leaves the index on the next crawl
    site.pages["/"] = ('<html><head><title>Home v3</title><meta name="robots" content="noindex">'
                       '</head><body><p>zebras and thirdword</p><a href="/other">o</a></body></html>')
    job3 = await peer.start_crawl(CrawlSpec(urls=[url], depth=1, max_pages=10))
    await peer.jobs.wait(job3.id)
    assert (await peer.search("thirdword", scope="local")).total == 0
    assert (await peer.search("newword", scope="local")).total == 0
    assert peer.index.doc_count() == docs - 1
    assert site.hits.count("/other") == 3  # noindex still follows


async def test_a_link_to_loopback_is_not_followed(crawl, make_site):
    target = await make_site()
    target.html("/crawl", title="admin")
    outside = await make_site(host="127.0.0.2")
    outside.html("/", title="home", links=[target.url("/crawl"), "/about"])
    outside.html("/about", title="about")
    policy = OutboundPolicy(allow_networks=("127.0.0.2/32",))
    run = await crawl([outside.url("/")], depth=2, settings_=settings(outbound=policy))
    assert target.paths() == []
    assert sorted(p for p in outside.paths() if p != "/robots.txt") == ["/", "/about"]
    assert run.progress.failures.get("blocked") == 1
