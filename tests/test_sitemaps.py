"""Sitemaps: a crawl reads its seed hosts' sitemaps (robots.txt lines and /sitemap.xml),
follows sitemap indexes and gzip, and stays bounded on hostile sitemaps."""

from __future__ import annotations

import gzip

import pytest

from yasearch.crawler import sitemaps
from yasearch.crawler.sitemaps import SitemapTooLarge, inflate, parse
from tests.test_crawler import Run, settings


def urlset(*locs: str, changefreq: str = "") -> str:
    cf = f"<changefreq>{changefreq}</changefreq>" if changefreq else ""
    items = "".join(f"<url><loc>{u}</loc><lastmod>2024-01-02</lastmod>{cf}</url>" for u in locs)
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{items}</urlset>'


def index(*locs: str) -> str:
    items = "".join(f"<sitemap><loc>{u}</loc></sitemap>" for u in locs)
    return f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{items}</sitemapindex>'


async def crawl_with_sitemaps(crawl_store, http, site, **spec):
    spec.setdefault("depth", 1)
    return await Run(crawl_store, http, [site.url("/")], sitemaps=True, **spec).run()


async def test_sitemap_xml_urls_enter_the_frontier_with_their_hints(make_site, crawl_store, http):
    site = await make_site()
    site.html("/")  # links nowhere: only the sitemap knows the other pages
    site.html("/a")
    site.html("/b")
    site.page("/sitemap.xml", urlset(site.url("/a"), site.url("/b"), changefreq="daily"),
              content_type="application/xml")

    run = await crawl_with_sitemaps(crawl_store, http, site)

    assert sorted(run.paths(site)) == ["/", "/a", "/b"]
    hinted = {p.url.removeprefix(site.base): p.changefreq for p in run.pages}
    assert hinted["/a"] == "daily" and hinted["/"] == ""


async def test_robots_sitemap_line_and_gzip_index(make_site, crawl_store, http):
    site = await make_site()
    site.robots = f"User-agent: *\nAllow: /\nSitemap: {site.url('/maps/index.xml')}\n"
    site.html("/")
    site.html("/deep/one")
    site.html("/deep/two")
    site.page("/maps/index.xml", index(site.url("/maps/pages.xml.gz")), content_type="application/xml")
    site.page("/maps/pages.xml.gz", gzip.compress(urlset(site.url("/deep/one"), site.url("/deep/two")).encode()),
              content_type="application/gzip")

    run = await crawl_with_sitemaps(crawl_store, http, site)

    assert sorted(run.paths(site)) == ["/", "/deep/one", "/deep/two"]
    assert site.count("/sitemap.xml") == 1  # read too, a 404 here


async def test_sitemap_urls_obey_the_jobs_rules_and_other_hosts_are_ignored(make_site, crawl_store, http):
    site = await make_site()
    site.html("/")
    site.html("/keep")
    site.html("/private/no")
    site.page("/sitemap.xml", urlset(site.url("/keep"), site.url("/private/no"), "http://elsewhere.example/x"),
              content_type="application/xml")

    run = await crawl_with_sitemaps(crawl_store, http, site, deny=["/private/"])

    assert sorted(run.paths(site)) == ["/", "/keep"]


async def test_a_job_can_turn_sitemaps_off(make_site, crawl_store, http):
    site = await make_site()
    site.html("/")
    site.html("/a")
    site.page("/sitemap.xml", urlset(site.url("/a")), content_type="application/xml")

    run = await Run(crawl_store, http, [site.url("/")], depth=1, sitemaps=False).run()

    assert run.paths(site) == ["/"] and site.count("/sitemap.xml") == 0


def test_a_gzip_bomb_is_refused():
    bomb = gzip.compress(b"<" + b"x" * (sitemaps.MAX_SITEMAP_BYTES + 10))
    with pytest.raises(SitemapTooLarge):
        inflate(bomb)


def test_entity_expansion_is_refused():
    evil = ('<?xml version="1.0"?><!DOCTYPE u [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            '<urlset><url><loc>&b;</loc></url></urlset>')
    with pytest.raises(Exception):
        parse(evil.encode())


async def test_url_count_and_nesting_are_bounded(make_site, crawl_store, http, monkeypatch):
    monkeypatch.setattr(sitemaps, "MAX_URLS", 5)
    site = await make_site()
    site.html("/")
    # an index pointing at itself and at a chain of further indexes
    site.page("/sitemap.xml", index(site.url("/sitemap.xml"), site.url("/i1.xml")), content_type="application/xml")
    site.page("/i1.xml", index(site.url("/i2.xml")), content_type="application/xml")
    site.page("/i2.xml", urlset(site.url("/never")), content_type="application/xml")
    many = [site.url(f"/p{i}") for i in range(50)]

    async def body(url: str) -> bytes | None:
        return urlset(*many).encode()

    entries = await sitemaps.read_sitemaps(["http://x/"], body, max_urls=5)
    assert len(entries) == 0  # on another host than the sitemap: none kept
    assert len(parse(urlset(*many).encode())[0]) == 5

    run = await crawl_with_sitemaps(crawl_store, http, site)
    assert run.paths(site) == ["/"]
    assert site.count("/sitemap.xml") == 1 and site.count("/i2.xml") == 0  # nesting stops at 2
