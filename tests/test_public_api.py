"""Public APIs: YaCy's yacysearch.json/rss, OpenSearch description, suggestions, OpenAPI."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from email.utils import parsedate_to_datetime

import aiohttp
import pytest

from yasearch.crawler.types import CrawlSpec
from peerutil import StaticSite, peer_config
from yasearch.app import build_app
from yasearch.peer import Peer

OS = "{http://a9.com/-/spec/opensearch/1.1/}"
YACY = "{http://www.yacy.net/}"

#: path -> title; every body mentions "striped", titles give the suggester words to complete.
TITLES = {
    "/": "Zebra crossings of Amsterdam",
    "/a": "Zebras on the savanna",
    "/b": "Zebrafish genetics",
    "/c": "Computing machinery and intelligence",
    "/d": "Computers for zebra researchers",
    "/e": "Striped things & <odd> \"markup\"",
}


def _pages() -> dict[str, str]:
    links = "".join(f'<a href="{p}">{p}</a> ' for p in TITLES if p != "/")
    return {
        path: (
            f"<html><head><title>{title.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')}</title></head>"
            f"<body><h1>{path}</h1><p>Something striped about page {path}, with a description.</p>"
            f"{links if path == '/' else ''}</body></html>"
        )
        for path, title in TITLES.items()
    }


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def peer(tmp_path):
    p = Peer(peer_config(tmp_path / "peer"))
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def crawled(peer):
    """The peer, after crawling the six pages of a local site; yields (peer, site url)."""
    site = StaticSite(_pages())
    url = await site.start()
    try:
        job = await peer.start_crawl(CrawlSpec(urls=[url + "/"], depth=2, max_pages=20))
        await peer.jobs.wait(job.id)
        assert job.progress.indexed == len(TITLES)
        yield peer, url
    finally:
        await site.stop()


async def _json_error(resp: aiohttp.ClientResponse, status: int) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]
    return body["error"]


# -- yacysearch.json / .rss ----------------------------------------------------------------


async def test_yacysearch_json_shape(crawled, http):
    peer, site = crawled
    async with http.get(peer.url + "/yacysearch.json", params={"query": "striped", "contentdom": "text", "verify": "false", "nav": "all"}) as r:
        assert r.status == 200 and r.content_type == "application/json"
        data = await r.json()
    assert set(data) == {"channels"} and len(data["channels"]) == 1
    ch = data["channels"][0]
    assert {"title", "description", "link", "startIndex", "itemsPerPage", "searchTerms", "totalResults", "items", "navigation"} <= set(ch)
    # YaCy's templates render every figure as a string; clients expect that
    assert ch["totalResults"] == str(len(TITLES)) and ch["startIndex"] == "0" and ch["itemsPerPage"] == "10"
    assert ch["searchTerms"] == "striped"
    assert ch["link"].startswith(peer.url + "/search?q=striped")
    assert len(ch["items"]) == len(TITLES)
    by_link = {it["link"]: it for it in ch["items"]}
    assert set(by_link) == {site + p for p in TITLES}
    for path, title in TITLES.items():
        it = by_link[site + path]
        assert it["title"] == title
        assert "striped" in it["description"].lower()
        assert parsedate_to_datetime(it["pubDate"]).year >= 2024  # RFC 822, parseable
        assert it["pubDate"].endswith("GMT")
        assert it["host"] == "127.0.0.1"
        assert it["path"] == path
        assert it["file"] == path.rsplit("/", 1)[-1]
        assert it["guid"] == it["urlhash"] and len(it["urlhash"]) == 40
        assert all(isinstance(v, str) for v in it.values())
        float(it["ranking"])
    rankings = [float(it["ranking"]) for it in ch["items"]]
    assert rankings == sorted(rankings, reverse=True)


async def test_yacysearch_json_paging(crawled, http):
    peer, _ = crawled
    seen: list[str] = []
    for start in (0, 2, 4):
        params = {"query": "striped", "maximumRecords": "2", "startRecord": str(start)}
        async with http.get(peer.url + "/yacysearch.json", params=params) as r:
            ch = (await r.json())["channels"][0]
        assert ch["startIndex"] == str(start) and ch["itemsPerPage"] == "2"
        assert ch["totalResults"] == str(len(TITLES))
        assert len(ch["items"]) == 2
        seen += [it["link"] for it in ch["items"]]
    assert len(set(seen)) == len(TITLES)  # the pages partition the results
    async with http.get(peer.url + "/yacysearch.json", params={"query": "striped", "startRecord": "100"}) as r:
        ch = (await r.json())["channels"][0]
    assert ch["items"] == [] and ch["totalResults"] == str(len(TITLES))
    # YaCy's aliases: count/offset
    async with http.get(peer.url + "/yacysearch.json", params={"query": "striped", "count": "1", "offset": "1"}) as r:
        ch = (await r.json())["channels"][0]
    assert len(ch["items"]) == 1 and ch["startIndex"] == "1"


async def test_yacysearch_resource_local_and_global(crawled, http):
    peer, site = crawled
    answers = {}
    for resource in ("local", "global"):
        async with http.get(peer.url + "/yacysearch.json", params={"query": "zebrafish", "resource": resource}) as r:
            assert r.status == 200
            answers[resource] = (await r.json())["channels"][0]
    assert answers["local"]["scope"] == "local" and answers["global"]["scope"] == "global"
    for ch in answers.values():  # a network of one: both find the page
        assert ch["totalResults"] == "1"
        assert ch["items"][0]["link"] == site + "/b"
    # media content domains: a text index has none; unknown domains read as text (as in YaCy)
    async with http.get(peer.url + "/yacysearch.json", params={"query": "zebrafish", "contentdom": "image"}) as r:
        ch = (await r.json())["channels"][0]
    assert ch["items"] == [] and ch["totalResults"] == "0"
    async with http.get(peer.url + "/yacysearch.json", params={"query": "zebrafish", "contentdom": "whatever"}) as r:
        assert (await r.json())["channels"][0]["totalResults"] == "1"


@pytest.mark.parametrize(
    "params, code",
    [
        ({}, "missing_query"),
        ({"query": "  "}, "missing_query"),
        ({"query": "x" * 600}, "query_too_long"),
        ({"query": "a", "maximumRecords": "ten"}, "bad_parameter"),
        ({"query": "a", "maximumRecords": "0"}, "bad_parameter"),
        ({"query": "a", "maximumRecords": "101"}, "bad_parameter"),
        ({"query": "a", "startRecord": "-1"}, "bad_parameter"),
        ({"query": "a", "resource": "universe"}, "bad_parameter"),
        ({"query": "!!! ???"}, "bad_query"),
    ],
)
async def test_yacysearch_bad_parameters(peer, http, params, code):
    async with http.get(peer.url + "/yacysearch.json", params=params) as r:
        err = await _json_error(r, 400)
    assert err["code"] == code
    async with http.get(peer.url + "/yacysearch.rss", params=params) as r:
        assert r.status == 400 and r.content_type == "text/plain"
        assert (await r.text()).strip()


async def test_yacysearch_rss(crawled, http):
    peer, site = crawled
    async with http.get(peer.url + "/yacysearch.rss", params={"query": "striped", "maximumRecords": "4"}) as r:
        assert r.status == 200 and r.content_type == "application/rss+xml"
        raw = await r.read()
    rss = ET.fromstring(raw)
    assert rss.tag == "rss" and rss.get("version") == "2.0"
    ch = rss.find("channel")
    assert ch is not None
    assert ch.findtext(f"{OS}totalResults") == str(len(TITLES))
    assert ch.findtext(f"{OS}startIndex") == "0"
    assert ch.findtext(f"{OS}itemsPerPage") == "4"
    assert ch.find(f"{OS}Query").get("searchTerms") == "striped"
    assert ch.findtext("title") and ch.findtext("link").startswith(peer.url)
    items = ch.findall("item")
    assert len(items) == 4
    titles = dict((v, k) for k, v in TITLES.items())
    for item in items:
        link = item.findtext("link")
        assert link.startswith(site)
        assert titles[item.findtext("title")] == link[len(site):]  # escaped markup survives the round trip
        assert "striped" in item.findtext("description").lower()
        parsedate_to_datetime(item.findtext("pubDate"))
        assert item.find("guid").get("isPermaLink") == "false"
        assert item.findtext(f"{YACY}host") == "127.0.0.1"
    # the page whose title has markup characters is well-formed XML too
    async with http.get(peer.url + "/yacysearch.rss", params={"query": "odd markup"}) as r:
        item = ET.fromstring(await r.read()).find("channel/item")
    assert item.findtext("title") == TITLES["/e"]


# -- OpenSearch description -------------------------------------------------------------------


async def test_opensearch_description(peer, http):
    async with http.get(peer.url + "/opensearch.xml") as r:
        assert r.status == 200
        assert r.content_type == "application/opensearchdescription+xml"
        raw = await r.read()
    root = ET.fromstring(raw)
    assert root.tag == f"{OS}OpenSearchDescription"
    short = root.findtext(f"{OS}ShortName")
    assert short and len(short) <= 16
    assert root.findtext(f"{OS}Description")
    assert root.findtext(f"{OS}InputEncoding") == "UTF-8"
    urls = {u.get("type"): u.get("template") for u in root.findall(f"{OS}Url")}
    assert urls["text/html"] == peer.url + "/search?q={searchTerms}"
    assert urls["application/rss+xml"].startswith(peer.url + "/yacysearch.rss?query={searchTerms}")
    assert urls["application/x-suggestions+json"] == peer.url + "/api/v1/suggest?q={searchTerms}&format=opensearch"
    assert urls["application/opensearchdescription+xml"] == peer.url + "/opensearch.xml"
    # the templates follow the address the client used (a proxy, another interface)
    headers = {"Host": "search.example.org:8443", "X-Forwarded-Proto": "https"}
    async with http.get(peer.url + "/opensearch.xml", headers=headers) as r:
        root = ET.fromstring(await r.read())
    html = [u.get("template") for u in root.findall(f"{OS}Url") if u.get("type") == "text/html"]
    assert html == ["https://search.example.org:8443/search?q={searchTerms}"]
    # a forged Host header cannot inject markup: the peer falls back to its own address
    async with http.get(peer.url + "/opensearch.xml", headers={"Host": 'x"><script>'}) as r:
        root = ET.fromstring(await r.read())
    assert all(u.get("template").startswith(peer.url) for u in root.findall(f"{OS}Url"))


async def test_rss_and_suggest_templates_from_description_work(crawled, http):
    """Fill the description's templates like a browser does and follow them."""
    peer, _ = crawled
    async with http.get(peer.url + "/opensearch.xml") as r:
        root = ET.fromstring(await r.read())
    urls = {u.get("type"): u.get("template") for u in root.findall(f"{OS}Url")}
    rss = urls["application/rss+xml"].replace("{searchTerms}", "zebrafish").replace("{startIndex?}", "").replace("{count?}", "")
    async with http.get(rss) as r:
        assert r.status == 200
        assert ET.fromstring(await r.read()).findtext(f"channel/{OS}totalResults") == "1"
    async with http.get(urls["application/x-suggestions+json"].replace("{searchTerms}", "zeb")) as r:
        assert r.status == 200
        assert (await r.json(content_type=None))[0] == "zeb"


# -- suggestions -----------------------------------------------------------------------------------


async def test_suggest_completes_title_words(crawled, http):
    peer, _ = crawled
    async with http.get(peer.url + "/api/v1/suggest", params={"q": "zeb"}) as r:
        assert r.status == 200 and r.content_type == "application/json"
        data = await r.json()
    assert data["query"] == "zeb"
    # surface words of titles, not stems; "zebra" is in three titles (zebra, zebras, zebra)
    assert data["suggestions"][0] == "zebra"
    assert {"zebra", "zebras", "zebrafish"} <= set(data["suggestions"])
    assert all(s.startswith("zeb") for s in data["suggestions"])

    async with http.get(peer.url + "/api/v1/suggest", params={"q": "ZEB", "limit": "1"}) as r:
        assert (await r.json())["suggestions"] == ["zebra"]
    # the typed prefix ran past the stem ("comput"): still completed
    async with http.get(peer.url + "/api/v1/suggest", params={"q": "computi"}) as r:
        assert (await r.json())["suggestions"] == ["computing"]
    async with http.get(peer.url + "/api/v1/suggest", params={"q": "comp"}) as r:
        assert set((await r.json())["suggestions"]) == {"computing", "computers"}
    # the last word is completed; the rest of the query is kept as typed
    async with http.get(peer.url + "/api/v1/suggest", params={"q": "striped -zebraf"}) as r:
        assert (await r.json())["suggestions"] == ["striped -zebrafish"]
    for nothing in ("zeb ", "site:zeb", "qqqq", ""):
        async with http.get(peer.url + "/api/v1/suggest", params={"q": nothing}) as r:
            assert r.status == 200
            assert (await r.json())["suggestions"] == [], nothing


async def test_suggest_opensearch_format(crawled, http):
    peer, _ = crawled
    async with http.get(peer.url + "/api/v1/suggest", params={"q": "zebra", "format": "opensearch"}) as r:
        assert r.status == 200
        assert r.content_type == "application/x-suggestions+json"
        data = await r.json(content_type=None)
    assert isinstance(data, list) and len(data) == 2
    assert data[0] == "zebra"
    assert data[1][:2] == ["zebra", "zebras"] and "zebrafish" in data[1]


async def test_suggest_sees_new_commits(peer, http):
    async with http.get(peer.url + "/api/v1/suggest", params={"q": "zeb"}) as r:
        assert (await r.json())["suggestions"] == []
    site = StaticSite(_pages())
    url = await site.start()
    try:
        job = await peer.start_crawl(CrawlSpec(urls=[url + "/b"], depth=0, max_pages=1))
        await peer.jobs.wait(job.id)
    finally:
        await site.stop()
    async with http.get(peer.url + "/api/v1/suggest", params={"q": "zeb"}) as r:
        assert (await r.json())["suggestions"] == ["zebrafish"]
    # a removed document's words go at the next commit
    hit = (await peer.search("zebrafish", scope="local")).results[0]
    await peer.index.delete(hit.doc_id)
    await peer.index.flush()
    async with http.get(peer.url + "/api/v1/suggest", params={"q": "zeb"}) as r:
        assert (await r.json())["suggestions"] == []


@pytest.mark.parametrize(
    "params, code",
    [
        ({}, "missing_query"),
        ({"q": "x" * 300}, "query_too_long"),
        ({"q": "zeb", "limit": "0"}, "bad_parameter"),
        ({"q": "zeb", "limit": "21"}, "bad_parameter"),
        ({"q": "zeb", "limit": "lots"}, "bad_parameter"),
        ({"q": "zeb", "format": "xml"}, "bad_parameter"),
    ],
)
async def test_suggest_bad_parameters(peer, http, params, code):
    async with http.get(peer.url + "/api/v1/suggest", params=params) as r:
        assert (await _json_error(r, 400))["code"] == code


# -- OpenAPI ------------------------------------------------------------------------------------------


def _app_routes(peer: Peer) -> set[tuple[str, str]]:
    app = build_app(peer)
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = route.resource.canonical if route.resource is not None else ""
        if route.method in ("HEAD", "OPTIONS") or "prefix" in info:
            continue
        out.add((path, route.method.lower()))
    return out


async def test_openapi_describes_every_api_route(peer, http):
    async with http.get(peer.url + "/api/v1/openapi.json") as r:
        assert r.status == 200 and r.content_type == "application/json"
        doc = await r.json()
    # structure
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["servers"] == [{"url": peer.url}]
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and set(error["properties"]["error"]["required"]) == {"code", "message"}
    for path, item in doc["paths"].items():
        ops = {m: op for m, op in item.items() if m in ("get", "post", "put", "patch", "delete")}
        assert ops, path
        for method, op in ops.items():
            assert op["summary"] and op["operationId"] and op["responses"], (method, path)
            assert any(status.startswith("2") for status in op["responses"]), (method, path)
            # error responses of JSON routes use the shared error schema
            for status, resp in op["responses"].items():
                if status.startswith(("4", "5")) and "$ref" not in resp:
                    assert "application/json" not in resp.get("content", {}), (method, path, status)
            # every path parameter is declared
            declared = {p["name"] for p in item.get("parameters", []) + op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(part[1:-1] for part in path.split("/") if part.startswith("{")), path

    routes = _app_routes(peer)
    api_routes = {(p, m) for p, m in routes if p.startswith("/api/v1/")}
    assert ("/api/v1/search", "get") in api_routes and ("/api/v1/crawl/{id}/{action}", "post") in api_routes
    undocumented = sorted(f"{m.upper()} {p}" for p, m in api_routes if m not in doc["paths"].get(p, {}))
    assert not undocumented, f"routes missing from openapi.json: {undocumented}"
    for compat in ("/yacysearch.json", "/yacysearch.rss", "/opensearch.xml"):
        assert "get" in doc["paths"][compat] and (compat, "get") in routes
    # and nothing is described that the app does not serve
    stale = sorted(f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item if m in ("get", "post") and (p, m) not in routes)
    assert not stale, f"described but not served: {stale}"

    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)


async def test_api_docs_page(peer, http):
    async with http.get(peer.url + "/api/v1/openapi.json") as r:
        doc = await r.json()
    async with http.get(peer.url + "/api/v1/docs") as r:
        assert r.status == 200 and r.content_type == "text/html"
        page = await r.text()
    assert page.startswith("<!doctype html>")
    for path, item in doc["paths"].items():
        assert path in page
        for method in item:
            if method in ("get", "post"):
                assert item[method]["summary"].replace("'", "&#x27;") in page
    assert "<script" not in page and "http://" not in page.split("</style>")[0]  # no external assets
    async with http.get(peer.url + "/api", allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "/api/v1/docs"



async def test_every_page_links_the_opensearch_description(tmp_path) -> None:
    """Browsers offer to add yasearch as a search engine from any page."""
    import aiohttp

    from peerutil import peer_config
    from yasearch.peer import Peer

    peer = Peer(peer_config(tmp_path / "linkpeer"))
    await peer.start()
    try:
        async with aiohttp.ClientSession() as s:
            for path in ("/", "/search?q=zebra", "/status", "/network", "/crawl"):
                async with s.get(peer.url + path) as r:
                    html = await r.text()
                assert '<link rel="search" type="application/opensearchdescription+xml"' in html, path
    finally:
        await peer.stop()
