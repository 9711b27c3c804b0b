""""More from this host": host diversity leaves a host's further results off the page, and
the page links to them (a site: search) and says how many, in HTML and JSON."""

from __future__ import annotations

from bs4 import BeautifulSoup

from peerutil import chain_pages
from yasearch.dedupe import PER_HOST, arrange, mark_more_from_host
from yasearch.records import SearchHit


def pages(n: int, word: str) -> dict[str, str]:
    return chain_pages(n, lambda i, nxt: (
        f"<html><head><title>{word.title()} {i}</title></head>"
        f"<body><p>zebras of {word} number {i}, with stripes.</p>{nxt}</body></html>"
    ))


def test_arrange_reports_what_host_diversity_moved_back() -> None:
    ranked = [(f"a{i}", 10.0 - i) for i in range(5)] + [("b0", 4.0), ("b1", 3.0)]
    hosts = {d: d[0] for d, _s in ranked}
    folded: dict[str, list[str]] = {}
    out = arrange(ranked, lambda d: (f"http://{hosts[d]}/{d}", hosts[d], "", 1), 4, folded)
    assert [d for d, _s in out][:4] == ["a0", "a1", "b0", "b1"]
    assert folded == {"a": ["a2", "a3", "a4"]}
    hits = [SearchHit(url=d, title=d, snippet="", snippet_html="", score=s, origin="local", doc_id=d, host=hosts[d])
            for d, s in out[:5]]  # a2 made it onto a page of five
    mark_more_from_host(hits, folded)
    assert [(h.doc_id, h.more_from_host) for h in hits] == [("a0", 2), ("a1", 2), ("b0", 0), ("b1", 0), ("a2", 2)]


async def test_json_hits_say_how_many_results_of_their_host_were_folded(peer, http, crawl_site) -> None:
    await crawl_site(peer, pages(6, "english"))
    await crawl_site(peer, pages(6, "deutsch"), host="localhost")
    async with http.get(peer.url + "/api/v1/search", params={"q": "zebras", "scope": "local", "limit": "4"}) as r:
        assert r.status == 200
        hits = (await r.json())["results"]
    hosts = [h["host"].split(":")[0] for h in hits]
    assert hosts.count("localhost") == PER_HOST and len(hits) == 4
    assert all(h["more_from_host"] == 6 - PER_HOST for h in hits)
    # one host, every result on the page: nothing folded away
    async with http.get(peer.url + "/api/v1/search", params={"q": "english", "scope": "local"}) as r:
        assert {h["more_from_host"] for h in (await r.json())["results"]} == {0}
    async with http.get(peer.url + "/api/v1/openapi.json") as r:
        hit = (await r.json())["components"]["schemas"]["SearchHit"]["properties"]
        assert hit["more_from_host"]["type"] == "integer"


async def test_results_page_links_more_from_this_host(peer, http, crawl_site) -> None:
    url = await crawl_site(peer, pages(12, "english"))
    await crawl_site(peer, pages(12, "deutsch"), host="localhost")
    async with http.get(peer.url + "/search", params={"q": "zebras site:nowhere.org -x", "scope": "local"}) as r:
        assert "more-from-host" not in await r.text()
    async with http.get(peer.url + "/search", params={"q": "zebras", "scope": "local"}) as r:
        soup = BeautifulSoup(await r.text(), "html.parser")
    links = soup.select("li.result a.more-from-host")
    assert {a["data-host"] for a in links} == {"127.0.0.1", "localhost"}
    for a in links:
        host = a["data-host"]
        assert a["href"] == f"/search?q=zebras+site%3A{host}&scope=local"
        # under the last result of that host on the page
        results = soup.select("li.result")
        li = a.find_parent("li")
        later = results[results.index(li) + 1:]
        assert all(f"//{host}:" not in r.select_one(".url")["title"] for r in later)
        assert a.get_text().startswith(f"More from {host} (")
    assert url.startswith("http://127.0.0.1")


async def test_global_hits_say_how_many_results_of_their_host_were_folded(peer, http, crawl_site) -> None:
    await crawl_site(peer, pages(6, "english"))
    await crawl_site(peer, pages(6, "deutsch"), host="localhost")
    async with http.get(peer.url + "/api/v1/search", params={"q": "zebras", "scope": "global", "limit": "4"}) as r:
        assert r.status == 200
        hits = (await r.json())["results"]
    assert len(hits) == 4
    assert all(h["more_from_host"] == 6 - PER_HOST for h in hits)
