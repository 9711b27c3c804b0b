"""The search page over HTTP: facets (navigators) by host and language, lang: filters,
the no-result help, and the same facets in /api/v1/search, on one peer and across peers.

Two sites are crawled: one addressed as 127.0.0.1, one as localhost, so they are two
hosts for site: (which ignores ports) and for the host facet; the first declares
English pages, the second German ones.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from bs4 import BeautifulSoup

from peerutil import chain_pages
from yasearch.openapi import spec as openapi_spec
from yasearch.query import QueryError, parse_query
from yasearch.search import count_facets, facet_host, facet_language

EN_PAGES = 6
DE_PAGES = 3


def pages(n: int, lang: str, word: str) -> dict[str, str]:
    """n linked pages that all mention zebras, each with a unique word."""
    return chain_pages(n, lambda i, nxt: (
        f'<html lang="{lang}"><head><title>{word.title()} page {i} {word}{i}</title></head>'
        f"<body><p>zebras and {word} number {i}, with stripes.</p>{nxt}</body></html>"
    ))


@pytest.fixture
def crawl_sites(crawl_site):
    """Has a peer crawl the English site (as 127.0.0.1) and/or the German one (as localhost)."""

    async def crawl(peer, en: bool = True, de: bool = True) -> None:
        if en:
            await crawl_site(peer, pages(EN_PAGES, "en-GB", "english"), depth=EN_PAGES + 1, max_pages=EN_PAGES)
        if de:
            await crawl_site(peer, pages(DE_PAGES, "de", "deutsch"), host="localhost", depth=DE_PAGES + 1, max_pages=DE_PAGES)

    return crawl


@pytest.fixture
async def peer(peer, crawl_sites):
    await crawl_sites(peer)
    assert peer.index.doc_count() == EN_PAGES + DE_PAGES
    return peer


async def get_json(http: aiohttp.ClientSession, url: str, status: int = 200) -> dict:
    async with http.get(url) as r:
        body = await r.json()
        assert r.status == status, body
        return body


async def get_html(http: aiohttp.ClientSession, url: str, status: int = 200) -> BeautifulSoup:
    async with http.get(url) as r:
        text = await r.text()
        assert r.status == status, text[:2000]
        assert "Traceback" not in text
        return BeautifulSoup(text, "html.parser")


def result_hosts(soup: BeautifulSoup) -> list[str]:
    return [urlsplit(a["href"]).hostname for a in soup.select("li.result .title a")]


def facet_links(soup: BeautifulSoup, name: str) -> dict[str, dict]:
    out = {}
    for a in soup.select(f"#facet-{name} a.facet-link"):
        out[a["data-value"]] = {
            "href": a["href"],
            "count": a.select_one(".count").get_text(strip=True),
            "active": "active" in a.get("class", []),
        }
    return out


def q_of(href: str) -> str:
    return parse_qs(urlsplit(href).query)["q"][0]


# -- units -------------------------------------------------------------------------


def test_lang_operator_parses():
    p = parse_query("zebras lang:DE -lang:en_GB site:Example.org")
    assert p.terms == ["zebra"] and p.languages == ["de"] and p.excluded_languages == ["en-gb"]
    assert p.sites == ["example.org"]
    # not a language code: searched as words, never an error
    assert parse_query("lang:!! zebras").languages == []
    with pytest.raises(QueryError, match="lang: only narrows"):
        parse_query("lang:en")


def test_count_facets_strips_ports_and_regions():
    facets = count_facets(
        [("a.org:8080", "en-GB"), ("a.org", "en"), ("[::1]:99", "de"), ("b.org", ""), ("a.org", "EN_us")]
    )
    assert facets["host"] == [["a.org", 3], ["::1", 1], ["b.org", 1]]
    assert facets["language"] == [["en", 3], ["de", 1]]
    assert facet_host("Localhost:123") == "localhost" and facet_language("pt_BR") == "pt"
    many = count_facets((f"h{i:02}.org", "") for i in range(30))
    assert len(many["host"]) == 10


def test_openapi_describes_facets():
    schema = openapi_spec()["components"]["schemas"]["SearchResponse"]
    assert set(schema["properties"]["facets"]["properties"]) == {"host", "language"}


# -- one peer ------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["local", "global"])
async def test_api_search_returns_facets(peer, http, scope):
    body = await get_json(http, f"{peer.url}/api/v1/search?q=zebras&limit=2&scope={scope}")
    assert body["total"] == EN_PAGES + DE_PAGES and len(body["results"]) == 2
    # counted over every match, not just the page of two
    assert body["facets"] == {
        "host": [["127.0.0.1", EN_PAGES], ["localhost", DE_PAGES]],
        "language": [["en", EN_PAGES], ["de", DE_PAGES]],
    }


async def test_api_search_skips_facets_when_told(peer, http):
    body = await get_json(http, f"{peer.url}/api/v1/search?q=zebras&limit=2&scope=local&facets=false")
    assert body["total"] == EN_PAGES + DE_PAGES and body["facets"] == {"host": [], "language": []}
    assert body["total_estimated"] is False
    bad = await get_json(http, f"{peer.url}/api/v1/search?q=zebras&facets=maybe", status=400)
    assert bad["error"] == {"code": "bad_parameter", "message": "facets must be true or false, not 'maybe'"}


@pytest.mark.parametrize("scope", ["local", "global"])
async def test_lang_filter(peer, http, scope):
    de = await get_json(http, f"{peer.url}/api/v1/search?q=zebras+lang:de&limit=50&scope={scope}")
    assert de["total"] == DE_PAGES
    assert {r["language"] for r in de["results"]} == {"de"}
    en = await get_json(http, f"{peer.url}/api/v1/search?q=zebras+lang:en&limit=50&scope={scope}")
    assert en["total"] == EN_PAGES  # lang:en matches pages declared en-GB
    not_de = await get_json(http, f"{peer.url}/api/v1/search?q=zebras+-lang:de&limit=50&scope={scope}")
    assert not_de["total"] == EN_PAGES
    none = await get_json(http, f"{peer.url}/api/v1/search?q=zebras+lang:fr&scope={scope}")
    assert none["total"] == 0 and none["facets"] == {"host": [], "language": []}
    listing = await get_json(http, f"{peer.url}/api/v1/search?q=site:localhost+lang:de&limit=50&scope={scope}")
    assert listing["total"] == DE_PAGES


async def test_facet_links_refine_the_query(peer, http):
    soup = await get_html(http, peer.url + "/search?q=zebras")
    hosts = facet_links(soup, "host")
    assert {h: v["count"] for h, v in hosts.items()} == {"127.0.0.1": str(EN_PAGES), "localhost": str(DE_PAGES)}
    assert not any(v["active"] for v in hosts.values())
    langs = facet_links(soup, "language")
    assert {h: v["count"] for h, v in langs.items()} == {"en": str(EN_PAGES), "de": str(DE_PAGES)}
    assert "English" in soup.select_one("#facet-language").get_text()
    assert q_of(hosts["localhost"]["href"]) == "zebras site:localhost"
    assert q_of(langs["de"]["href"]) == "zebras lang:de"

    # follow the host facet: only that host's pages, and the facet is now active
    refined = await get_html(http, peer.url + hosts["localhost"]["href"])
    assert set(result_hosts(refined)) == {"localhost"}
    assert "3 results" in refined.select_one("#summary").get_text()
    assert refined.select_one("#q")["value"] == "zebras site:localhost"
    active = facet_links(refined, "host")
    assert list(active) == ["localhost"] and active["localhost"]["active"]
    assert q_of(active["localhost"]["href"]) == "zebras"  # following it again removes the filter

    # the other host replaces the site: filter rather than being ORed with it
    other = await get_html(http, peer.url + "/search?" + "q=zebras+site%3Alocalhost+lang%3Ade")
    assert set(result_hosts(other)) == {"localhost"}
    lang_active = facet_links(other, "language")
    assert lang_active["de"]["active"] and q_of(lang_active["de"]["href"]) == "zebras site:localhost"

    # the language facet, scope kept in the link
    local = await get_html(http, peer.url + "/search?q=zebras&scope=local")
    de_href = facet_links(local, "language")["de"]["href"]
    assert parse_qs(urlsplit(de_href).query)["scope"] == ["local"]
    de_page = await get_html(http, peer.url + de_href)
    assert set(result_hosts(de_page)) == {"localhost"}


async def test_results_show_title_url_snippet_and_origin(peer, http):
    soup = await get_html(http, peer.url + "/search?q=deutsch1+stripes")
    hit = soup.select("li.result")[0]  # the one page with both words first (then pages with one: relaxed)
    assert hit.select_one(".title a").get_text() == "Deutsch page 1 deutsch1"
    assert hit.select_one(".url").get_text().startswith("localhost:")
    assert hit.select_one(".snippet mark") is not None
    assert hit.select_one(".origin").get_text(strip=True) == "local"
    assert soup.find("script", src=lambda s: s and s.startswith("/static/search.js"))


async def test_no_results_page_helps(peer, http):
    soup = await get_html(http, peer.url + "/search?q=nosuchwordanywhere+anothermissingword")
    empty = soup.select_one("#no-results")
    assert empty is not None and "No results for" in empty.get_text()
    broader = {q_of(a["href"]) for a in soup.select("#broader a")}
    assert "anothermissingword" in broader and "nosuchwordanywhere" in broader
    assert "lang:en" in soup.select_one(".syntax-list").get_text()  # the query syntax is shown
    assert soup.select_one("#facets") is None

    soup = await get_html(http, peer.url + "/search?q=zebras+site:nowhere.example&scope=local")
    links = {q_of(a["href"]): a["href"] for a in soup.select("#broader a")}
    assert "zebras" in links  # the site: filter dropped
    assert any("scope=local" not in href and q == "zebras site:nowhere.example" for q, href in links.items())
    follow = await get_html(http, peer.url + links["zebras"])
    assert len(follow.select("li.result")) == EN_PAGES + DE_PAGES


async def test_query_errors_are_messages(peer, http):
    soup = await get_html(http, peer.url + "/search?q=lang:de", status=400)
    assert "lang: only narrows" in soup.select_one(".error").get_text()
    assert soup.select_one(".syntax-list") is not None
    body = await get_json(http, peer.url + "/api/v1/search?q=lang:de", status=400)
    assert body["error"]["code"] == "bad_query"


async def test_hostile_facet_values_are_escaped(make_peer, http, crawl_site):
    evil_lang = '"><script>alert(1)</script>'
    p = await make_peer()
    await crawl_site(p, {"/": f"<html lang='{evil_lang}'><head><title>t</title></head><body>zebras</body></html>"}, depth=2, max_pages=1)
    async with http.get(p.url + "/search?q=zebras") as r:
        text = await r.text()
    assert "<script>alert" not in text
    soup = BeautifulSoup(text, "html.parser")
    assert [s.get("src", "").split("?")[0] for s in soup.find_all("script")] == ["/static/search.js"]


# -- across peers -------------------------------------------------------------------------


@pytest.fixture
async def network(make_network, crawl_sites):
    """Three peers: the first crawled the English site, the second the German one,
    the third nothing; the third's global search must see both through the DHT."""
    peers = await make_network([f"n{i}" for i in range(3)])
    await crawl_sites(peers[0], de=False)
    await crawl_sites(peers[1], en=False)
    for p in peers:
        await p.settle()
    for p in peers:
        await p.dht.refresh_info()
    return peers


async def test_global_facets_and_lang_filter_across_peers(network, http):
    _en_peer, _de_peer, searcher = network
    body = await get_json(http, searcher.url + "/api/v1/search?q=zebras&limit=3")
    assert body["scope"] == "global" and body["total"] == EN_PAGES + DE_PAGES
    assert body["facets"] == {
        "host": [["127.0.0.1", EN_PAGES], ["localhost", DE_PAGES]],
        "language": [["en", EN_PAGES], ["de", DE_PAGES]],
    }
    de = await get_json(http, searcher.url + "/api/v1/search?q=zebras+lang:de&limit=50")
    assert de["total"] == DE_PAGES and {r["host"].split(":")[0] for r in de["results"]} == {"localhost"}

    soup = await get_html(http, searcher.url + "/search?q=zebras")
    href = facet_links(soup, "host")["localhost"]["href"]
    refined = await get_html(http, searcher.url + href)
    assert set(result_hosts(refined)) == {"localhost"} and len(result_hosts(refined)) == DE_PAGES
    assert all(o.get("data-origin") != "local" for o in refined.select(".origin"))
