"""Result verification (config ``verify``): "origin" asks the origins (phrases,
snippets), "off" asks nobody, "fetch" re-fetches the top remote results through the
polite crawler fetcher (outbound policy, robots.txt, a cache) and drops pages that
are gone or no longer contain the query terms."""

from __future__ import annotations

import pytest

from yasearch.config import Config, ConfigError
from yasearch.crawler.outbound import OutboundPolicy
from yasearch.crawler.types import CrawlerSettings, CrawlSpec
from yasearch.records import SearchHit
from yasearch.resultcheck import ResultChecker

PAGES = {
    "/": '<html><head><title>Home</title></head><body><a href="/one">1</a> <a href="/two">2</a> <a href="/three">3</a></body></html>',
    "/one": "<html><head><title>One</title></head><body>the zebra grazes near the quagga</body></html>",
    "/two": "<html><head><title>Two</title></head><body>a zebra in the rain</body></html>",
    "/three": "<html><head><title>Three</title></head><body>zebra stripes all day</body></html>",
}


@pytest.fixture
async def published(make_network, static_site):
    """Peers a (verify = fetch) and b; b crawled the site and published it."""
    a, b = await make_network(["a", "b"], verify="fetch")
    site = await static_site(dict(PAGES))
    job = await b.start_crawl(CrawlSpec(urls=[site.url + "/"], depth=2, max_pages=10, delay=0.0))
    await b.jobs.wait(job.id)
    for p in (b, a, b):
        await p.settle()
    return a, b, site


def _urls(resp) -> set[str]:
    return {h.url.rsplit("/", 1)[-1] for h in resp.results}


async def test_fetch_drops_results_whose_page_changed_or_vanished(published) -> None:
    a, b, site = published
    a.global_search.verify = "origin"
    before = await a.search("zebra")
    assert _urls(before) == {"one", "two", "three"}
    assert all(h.origin == b.peer_id for h in before.results)
    site.pages["/one"] = "<html><head><title>One</title></head><body>no striped horses here any more</body></html>"
    del site.pages["/two"]
    a.global_search.verify = "origin"  # the holders' postings still claim all three
    assert _urls(await a.search("zebra")) == {"one", "two", "three"}
    a.global_search.verify = "fetch"
    hits_before = len(site.hits)
    resp = await a.search("zebra")
    assert _urls(resp) == {"three"}
    assert resp.total == before.total - 2
    fetched = site.hits[hits_before:]
    assert {"/one", "/two", "/three"} <= set(fetched) and "/robots.txt" in fetched
    # the outcomes are cached: the same query again fetches nothing
    n = len(site.hits)
    assert _urls(await a.search("zebra")) == {"three"}
    assert len(site.hits) == n


async def test_fetch_keeps_relaxed_results_that_hold_some_of_the_words(published) -> None:
    """A relaxed query's results need not have every word (yasearch.relax): a fetched
    page holding one of them stays."""
    a, _b, site = published
    hits_before = len(site.hits)
    resp = await a.search("zebra quagga")  # one page has both: too few, relaxed
    assert resp.relaxed and _urls(resp) == {"one", "two", "three"}
    assert resp.results[0].url.endswith("/one")  # the page with both words first
    assert {"/one", "/two", "/three"} <= set(site.hits[hits_before:])


async def test_off_asks_no_origin_and_origin_does(published) -> None:
    a, b, _site = published
    asked = []
    real = b.local.verify

    async def counting(req):
        asked.append(req)
        return await real(req)

    b.local.verify = counting  # type: ignore[method-assign]
    a.global_search.verify = "off"
    # phrases are checked on the records' title and description only: not found
    assert _urls(await a.search('"zebra stripes"')) == set()
    assert _urls(await a.search("zebra")) == {"one", "two", "three"}
    assert asked == []
    a.global_search.verify = "origin"  # the origin holds the text and finds the phrase
    assert _urls(await a.search('"zebra stripes"')) == {"three"}
    assert asked


async def test_fetch_verification_keeps_to_the_outbound_policy(static_site) -> None:
    """A result URL on loopback is not fetched by a peer without allow_private_networks:
    it is dropped, and the site sees no request."""
    site = await static_site(dict(PAGES))
    checker = ResultChecker(CrawlerSettings(outbound=OutboundPolicy()))
    hit = SearchHit(url=site.url + "/three", title="t", snippet="", snippet_html="", score=1.0, origin="ab" * 20)
    try:
        assert await checker.keep([hit], ["zebra"]) == []
    finally:
        await checker.close()
    assert site.hits == []


async def test_fetch_keeps_pages_that_hold_every_term_and_skips_local_results(static_site) -> None:
    site = await static_site(dict(PAGES))
    checker = ResultChecker(CrawlerSettings(outbound=OutboundPolicy(allow_private=True)))
    remote = [SearchHit(url=site.url + p, title="", snippet="", snippet_html="", score=1.0, origin="ab" * 20) for p in ("/one", "/two", "/nope")]
    local = SearchHit(url=site.url + "/gone", title="", snippet="", snippet_html="", score=1.0, origin="local")
    try:
        kept = await checker.keep([local, *remote], ["zebra", "quagga"])
    finally:
        await checker.close()
    assert [h.url.rsplit("/", 1)[-1] for h in kept] == ["gone", "one"]
    assert "/gone" not in site.hits


def test_verify_must_be_a_known_mode() -> None:
    assert Config.from_dict({}).verify == "origin"
    with pytest.raises(ConfigError, match="verify"):
        Config.from_dict({"verify": "maybe"})
