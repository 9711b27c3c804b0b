"""The index browser (/index) and the admin index API (/api/v1/index...).

Removal is checked where it matters: the document leaves local search at once, and
in a three-peer network its postings leave every peer's shard store, so a global
search from another peer no longer finds it. Admin rule, CSRF and escaping as for
the crawl console; one real-browser test clicks through a removal.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from bs4 import BeautifulSoup
from playwright.async_api import expect

from peerutil import assert_json_error, linked_pages
from test_webui import assert_inert
from yasearch.analysis import analyze
from yasearch.api import parse_crawl_spec
from yasearch.peer import Peer

HOSTILE_TITLE = "<script>alert(1)</script>Evil \"quoted\" 'title' <img src=x onerror=alert(2)>"
SITE_A = {
    **linked_pages(6),  # "/" and /p1../p5, each with uniqueword<i>
    "/evil": (
        "<html><head><title>&lt;script&gt;alert(1)&lt;/script&gt;Evil \"quoted\" 'title' "
        "&lt;img src=x onerror=alert(2)&gt;</title></head><body><p>evilword here</p></body></html>"
    ),
}
SITE_B = linked_pages(3, ["bravoword0", "bravoword1", "bravoword2"])


@pytest.fixture
async def sites(static_site):
    return [(await static_site(SITE_A)).url, (await static_site(SITE_B)).url]


async def crawl_sites(peer: Peer, urls: list[str]) -> None:
    seeds = [u + "/" for u in urls] + [urls[0] + "/evil"]
    job = await peer.start_crawl(parse_crawl_spec({"urls": seeds, "depth": 10, "max_pages": 100}))
    await peer.jobs.wait(job.id)
    await peer.settle()
    assert peer.index.doc_count() == len(SITE_A) + len(SITE_B)


@pytest.fixture
async def crawled(peer, sites):
    """One peer that crawled both sites: (peer, site A url, site B url)."""
    await crawl_sites(peer, sites)
    return peer, sites[0], sites[1]


def host(url: str) -> str:
    return urlsplit(url).netloc


async def local_urls(peer: Peer, q: str) -> list[str]:
    return [h.url for h in (await peer.search(q, scope="local", limit=50)).results]


async def get_html(http: aiohttp.ClientSession, url: str, status: int = 200, **kw) -> str:
    async with http.get(url, **kw) as r:
        text = await r.text()
        assert r.status == status, text[:2000]
        assert r.content_type == "text/html" and "Traceback" not in text
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        return text


# -- the API ---------------------------------------------------------------------------


async def test_api_lookup_and_remove_a_url(crawled, http):
    peer, a, _ = crawled
    target = a + "/p3"
    assert await local_urls(peer, "uniqueword3") == [target]
    # any spelling that canonicalizes alike finds it
    async with http.get(peer.url + "/api/v1/index", params={"url": target + "#frag"}) as r:
        assert r.status == 200
        rec = await r.json()
    assert rec["url"] == target and rec["title"] == "Page 3 uniqueword3"
    assert rec["host"] == host(a) and rec["length"] > 0 and rec["crawled_at"] > 0 and len(rec["doc_id"]) == 40

    async with http.delete(peer.url + "/api/v1/index", params={"url": target}) as r:
        assert r.status == 200, await r.text()
        assert await r.json() == {"removed": 1, "url": target, "doc_id": rec["doc_id"]}
    assert await local_urls(peer, "uniqueword3") == []
    assert await local_urls(peer, "zebras")  # the others are still there
    assert peer.index.doc_count() == len(SITE_A) + len(SITE_B) - 1
    async with http.get(peer.url + "/api/v1/index", params={"url": target}) as r:
        await assert_json_error(r, 404, "not_indexed")
    async with http.delete(peer.url + "/api/v1/index", params={"url": target}) as r:
        await assert_json_error(r, 404, "not_indexed")


async def test_api_hosts_and_host_removal(crawled, http):
    peer, a, b = crawled
    async with http.get(peer.url + "/api/v1/index/hosts") as r:
        assert r.status == 200
        body = await r.json()
    assert body["total"] == 2 and body["documents"] == len(SITE_A) + len(SITE_B)
    assert body["hosts"] == [{"host": host(a), "documents": len(SITE_A)}, {"host": host(b), "documents": len(SITE_B)}]
    async with http.get(peer.url + "/api/v1/index/hosts", params={"limit": 1, "offset": 1}) as r:
        assert (await r.json())["hosts"] == [{"host": host(b), "documents": len(SITE_B)}]

    # one host's documents, ordered by URL, paged
    async with http.get(f"{peer.url}/api/v1/index/hosts/{host(a)}", params={"limit": 3, "offset": 2}) as r:
        assert r.status == 200
        body = await r.json()
    all_a = sorted([a + "/", a + "/evil"] + [f"{a}/p{i}" for i in range(1, 6)])
    assert body["total"] == len(SITE_A) and [d["url"] for d in body["documents"]] == all_a[2:5]

    assert await local_urls(peer, "bravoword1") == [b + "/p1"]
    async with http.delete(f"{peer.url}/api/v1/index/hosts/{host(b).upper()}") as r:
        assert r.status == 200, await r.text()
        assert await r.json() == {"removed": len(SITE_B), "host": host(b)}
    for w in ("bravoword0", "bravoword1", "bravoword2"):
        assert await local_urls(peer, w) == []
    assert [h for h, _ in await peer.documents_by_host()] == [host(a)]
    assert await local_urls(peer, "uniqueword1") == [a + "/p1"]
    async with http.delete(f"{peer.url}/api/v1/index/hosts/{host(b)}") as r:
        await assert_json_error(r, 404, "not_indexed")
    async with http.get(f"{peer.url}/api/v1/index/hosts/{host(b)}") as r:
        await assert_json_error(r, 404, "not_indexed")


@pytest.mark.parametrize(
    "method, path, params, code",
    [
        ("get", "/api/v1/index", {}, "missing_url"),
        ("get", "/api/v1/index", {"url": "   "}, "missing_url"),
        ("get", "/api/v1/index", {"url": "ftp://example.org/x"}, "bad_url"),
        ("get", "/api/v1/index", {"url": "not a url"}, "bad_url"),
        ("delete", "/api/v1/index", {"url": "http://example.org/" + "a" * 3000}, "bad_url"),
        ("get", "/api/v1/index/hosts", {"limit": "0"}, "bad_parameter"),
        ("get", "/api/v1/index/hosts", {"limit": "x"}, "bad_parameter"),
        ("get", "/api/v1/index/hosts", {"offset": "-1"}, "bad_parameter"),
        ("get", "/api/v1/index/hosts/exa%20mple.org", {}, "bad_host"),
        ("delete", "/api/v1/index/hosts/" + "a" * 400, {}, "bad_host"),
        ("delete", "/api/v1/index/hosts/%3Cscript%3E", {}, "bad_host"),
    ],
)
async def test_api_rejects_bad_input(peer, http, method, path, params, code):
    async with http.request(method, peer.url + path, params=params) as r:
        await assert_json_error(r, 400, code)


async def test_api_is_admin_only(tmp_path, sites, http, make_peer):
    p = await make_peer(tmp_path / "tokenpeer", admin_token="s3cret")
    await crawl_sites(p, sites)
    a = sites[0]
    calls = [
        ("get", "/api/v1/index", {"url": a + "/p1"}),
        ("delete", "/api/v1/index", {"url": a + "/p1"}),
        ("get", "/api/v1/index/hosts", {}),
        ("get", f"/api/v1/index/hosts/{host(a)}", {}),
        ("delete", f"/api/v1/index/hosts/{host(a)}", {}),
    ]
    for method, path, params in calls:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with http.request(method, p.url + path, params=params, headers=headers) as r:
                await assert_json_error(r, 403, "forbidden")
    # a browser on another site cannot make an admin's browser delete anything
    async with http.delete(
        p.url + "/api/v1/index",
        params={"url": a + "/p1"},
        headers={"Authorization": "Bearer s3cret", "Origin": "http://evil.example"},
    ) as r:
        await assert_json_error(r, 403, "cross_site")
    assert p.index.doc_count() == len(SITE_A) + len(SITE_B)
    auth = {"Authorization": "Bearer s3cret"}
    async with http.get(p.url + "/api/v1/index/hosts", headers=auth) as r:
        assert r.status == 200
    async with http.delete(p.url + "/api/v1/index", params={"url": a + "/p1"}, headers=auth) as r:
        assert r.status == 200
    assert await local_urls(p, "uniqueword1") == []


# -- the network: removal withdraws the postings ----------------------------------------


async def test_removal_withdraws_postings_from_the_network(make_network, sites, http):
    peers = await make_network(["p0", "p1", "p2"])
    origin, _, asker = peers
    a, b = sites
    await crawl_sites(origin, sites)
    for p in peers:
        await p.settle()
    term, bterm = analyze("uniqueword4")[0], analyze("bravoword2")[0]

    async def df(t: str) -> list[int]:
        return [(await p.shard.df([t]))[t] for p in peers]

    async def global_urls(q: str) -> list[str]:
        async with http.get(asker.url + "/api/v1/search", params={"q": q, "scope": "global"}) as r:
            assert r.status == 200
            return [hit["url"] for hit in (await r.json())["results"]]

    assert sum(await df(term)) >= 1 and sum(await df(bterm)) >= 1
    assert await global_urls("uniqueword4") == [a + "/p4"]
    assert await global_urls("bravoword2") == [b + "/p2"]

    # one URL
    async with http.delete(origin.url + "/api/v1/index", params={"url": a + "/p4"}) as r:
        assert r.status == 200
    await origin.settle()
    assert await df(term) == [0, 0, 0]
    assert await global_urls("uniqueword4") == []
    assert await local_urls(origin, "uniqueword4") == []
    assert await global_urls("uniqueword3") == [a + "/p3"]  # its neighbours are untouched

    # a whole host, through the page's form this time
    async with http.post(origin.url + "/index/remove", data={"host": host(b)}, allow_redirects=False) as r:
        assert r.status == 303
    await origin.settle()
    for w in ("bravoword0", "bravoword1", "bravoword2"):
        assert await df(analyze(w)[0]) == [0, 0, 0]
        assert await global_urls(w) == []
    assert await global_urls("uniqueword3") == [a + "/p3"]


# -- the page --------------------------------------------------------------------------


async def test_index_page_lists_hosts_and_looks_up_urls(crawled, http):
    peer, a, b = crawled
    soup = assert_inert(await get_html(http, peer.url + "/index"))
    assert soup.select_one('nav a[href="/index"]')["aria-current"] == "page"
    assert soup.select_one('link[rel="stylesheet"][href^="/static/index.css"]') is not None
    rows = {tr["data-host"]: tr for tr in soup.select("table#hosts tr.host")}
    assert list(rows) == [host(a), host(b)]
    assert rows[host(a)].select_one('[data-field="documents"]').get_text(strip=True) == str(len(SITE_A))
    assert soup.select_one("#doc-total").get_text() == str(len(SITE_A) + len(SITE_B))

    # a host's document list, with pagination links when it is long
    link = rows[host(a)].select_one("a")["href"]
    soup = assert_inert(await get_html(http, peer.url + link))
    assert [tr.select_one(".doc-url")["href"] for tr in soup.select("table#documents tr.doc")] == sorted(
        [a + "/", a + "/evil"] + [f"{a}/p{i}" for i in range(1, 6)]
    )
    await get_html(http, peer.url + "/index/host?" + urlencode({"host": "nohost.example"}), 404)
    await get_html(http, peer.url + "/index/host?" + urlencode({"host": "<bad host>"}), 400)

    # look up: the record, or "not in the index"
    soup = assert_inert(await get_html(http, peer.url + "/index?" + urlencode({"url": a + "/p2"})))
    result = soup.select_one("#lookup-result")
    assert result.select_one(".record-title").get_text() == "Page 2 uniqueword2"
    assert result.select_one(".record-url a")["href"] == a + "/p2"
    text = " ".join(result.get_text(" ").split())
    assert "Language" in text and "Crawled" in text and "terms" in text
    assert soup.select_one("#lookup-url")["value"] == a + "/p2"
    assert result.select_one("#remove-url") is not None
    html = await get_html(http, peer.url + "/index?" + urlencode({"url": a + "/nothing"}))
    assert "is not in the index" in BeautifulSoup(html, "html.parser").select_one("#not-indexed").get_text()
    html = await get_html(http, peer.url + "/index?" + urlencode({"url": "javascript:alert(1)"}), 400)
    assert BeautifulSoup(html, "html.parser").select_one("#lookup-error") is not None
    await get_html(http, peer.url + "/index?page=zero", 400)


async def test_host_lists_are_paginated(crawled, http, monkeypatch):
    from yasearch.webui import indexbrowser

    peer, a, b = crawled
    monkeypatch.setattr(indexbrowser, "DOCS_PER_PAGE", 3)
    monkeypatch.setattr(indexbrowser, "HOSTS_PER_PAGE", 1)
    everything = sorted([a + "/", a + "/evil"] + [f"{a}/p{i}" for i in range(1, 6)])
    seen: list[str] = []
    path = "/index/host?" + urlencode({"host": host(a)})
    while path:
        soup = BeautifulSoup(await get_html(http, peer.url + path), "html.parser")
        seen += [tr.select_one(".doc-url")["href"] for tr in soup.select("table#documents tr.doc")]
        nxt = soup.select_one('nav.pagination a[rel="next"]')
        path = nxt["href"] if nxt else ""
    assert seen == everything
    soup = BeautifulSoup(await get_html(http, peer.url + "/index?page=2"), "html.parser")
    assert [tr["data-host"] for tr in soup.select("table#hosts tr.host")] == [host(b)]
    assert soup.select_one("nav.pagination .current").get_text() == "2"
    # past the end: the last page
    soup = BeautifulSoup(await get_html(http, peer.url + "/index/host?" + urlencode({"host": host(a), "page": 99})), "html.parser")
    assert [tr.select_one(".doc-url")["href"] for tr in soup.select("table#documents tr.doc")] == everything[6:]


async def test_remove_a_url_with_the_page_forms(crawled, http):
    peer, a, _ = crawled
    target = a + "/p5"
    assert await local_urls(peer, "uniqueword5") == [target]
    # the button on the lookup result leads to a confirmation page (a GET: nothing happens yet)
    soup = BeautifulSoup(await get_html(http, peer.url + "/index?" + urlencode({"url": target})), "html.parser")
    form = soup.select_one("#remove-url").find_parent("form")
    assert form["method"] == "get" and form["action"] == "/index/remove"
    soup = assert_inert(await get_html(http, peer.url + "/index/remove?" + urlencode({"url": target})))
    assert await local_urls(peer, "uniqueword5") == [target]
    confirm = soup.select_one("form#confirm-remove")
    assert confirm["method"] == "post" and confirm["action"] == "/index/remove"
    data = {i["name"]: i["value"] for i in confirm.select("input[type=hidden]")}
    assert data == {"url": target}

    # confirm: POST, then a redirect (PRG) to a page with the message
    async with http.post(peer.url + "/index/remove", data=data, allow_redirects=False) as r:
        assert r.status == 303
        location = r.headers["Location"]
    assert parse_qs(urlsplit(location).query) == {"removed_url": [target]}
    soup = assert_inert(await get_html(http, peer.url + location))
    assert target in soup.select_one("#flash").get_text()
    assert await local_urls(peer, "uniqueword5") == []
    html = await get_html(http, peer.url + "/search?" + urlencode({"q": "uniqueword5"}))
    assert target not in html

    # removing it again: back to the lookup, which says it is not there
    async with http.post(peer.url + "/index/remove", data=data, allow_redirects=False) as r:
        assert r.status == 303
        location = urlsplit(r.headers["Location"])
        assert location.path == "/index" and parse_qs(location.query) == {"url": [target]}
    await get_html(http, peer.url + "/index/remove?" + urlencode({"url": target}), 404)


async def test_remove_a_host_with_the_page_forms(crawled, http):
    peer, a, b = crawled
    soup = assert_inert(await get_html(http, peer.url + "/index/remove?" + urlencode({"host": host(b)})))
    assert soup.select_one("#confirm-count").get_text() == str(len(SITE_B))
    assert f"Remove {len(SITE_B)} documents of this host" in soup.select_one("#confirm-button").get_text()
    async with http.post(peer.url + "/index/remove", data={"host": host(b)}) as r:  # follows the redirect
        assert r.status == 200
        soup = assert_inert(await r.text())
    assert f"Removed {len(SITE_B)} documents of host {host(b)}" in " ".join(soup.select_one("#flash").get_text().split())
    assert [tr["data-host"] for tr in soup.select("table#hosts tr.host")] == [host(a)]
    assert await local_urls(peer, "bravoword0") == []
    assert await local_urls(peer, "uniqueword1") == [a + "/p1"]
    await get_html(http, peer.url + "/index/remove?" + urlencode({"host": host(b)}), 404)


async def test_cross_site_removals_are_refused(crawled, http):
    peer, a, b = crawled
    before = peer.index.doc_count()
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site", "Origin": peer.url}):
        for data in ({"url": a + "/p1"}, {"host": host(b)}):
            async with http.post(peer.url + "/index/remove", data=data, headers=headers, allow_redirects=False) as r:
                assert r.status == 403
                assert "another site" in await r.text()
    assert peer.index.doc_count() == before
    # a same-origin browser post passes (Chromium may say "Origin: null")
    headers = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    async with http.post(peer.url + "/index/remove", data={"url": a + "/p1"}, headers=headers, allow_redirects=False) as r:
        assert r.status == 303
    assert peer.index.doc_count() == before - 1


async def test_page_is_admin_only_with_a_login_form(tmp_path, sites, http, make_peer):
    p = await make_peer(tmp_path / "tokenpeer", admin_token="s3cret")
    await crawl_sites(p, sites)
    a = sites[0]
    for path in ("/index", "/index?" + urlencode({"url": a + "/p1"}), "/index/host?host=" + host(a), "/index/remove?host=" + host(a)):
        html = await get_html(http, p.url + path, 403)
        soup = assert_inert(html)
        assert a not in html  # nothing of the index shows
        login = soup.find("form", action="/index/login")
        assert login is not None and login.find("input", attrs={"name": "token", "type": "password"}) is not None
    async with http.post(p.url + "/index/remove", data={"host": host(a)}, allow_redirects=False) as r:
        assert r.status == 403
    assert p.index.doc_count() == len(SITE_A) + len(SITE_B)

    async with http.post(p.url + "/index/login", data={"token": "guess"}, allow_redirects=False) as r:
        assert r.status == 403 and "not right" in await r.text()
    async with http.post(p.url + "/index/login", data={"token": "s3cret"}, headers={"Origin": "http://evil.example"}) as r:
        assert r.status == 403
    async with http.post(p.url + "/index/login", data={"token": "s3cret"}, allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == "/index"
        assert r.cookies["yasearch_admin"]["samesite"] == "Strict"
    soup = BeautifulSoup(await get_html(http, p.url + "/index"), "html.parser")
    assert len(soup.select("table#hosts tr.host")) == 2
    async with http.post(p.url + "/index/remove", data={"url": a + "/p1"}, allow_redirects=False) as r:
        assert r.status == 303
    assert await local_urls(p, "uniqueword1") == []
    # the same cookie opens the crawl console: one login for the admin pages
    await get_html(http, p.url + "/crawl")


async def test_login_without_a_token_explains_loopback(crawled, http):
    peer, _, _ = crawled
    async with http.post(peer.url + "/index/login", data={"token": "x"}) as r:
        assert r.status == 403
        text = await r.text()
    assert "loopback" in text and 'action="/index/login"' not in text


async def test_hostile_titles_and_flash_are_escaped(crawled, http):
    peer, a, _ = crawled
    evil = a + "/evil"
    pages = [
        "/index?" + urlencode({"url": evil}),
        "/index/host?" + urlencode({"host": host(a)}),
        "/index/remove?" + urlencode({"url": evil}),
        "/index?" + urlencode({"removed_url": '"><script>alert(7)</script>', "page": "1"}),
        "/index?" + urlencode({"removed_host": "<img src=x onerror=alert(8)>", "n": "2"}),
        "/index?" + urlencode({"url": 'http://x.example/"><script>alert(9)</script>'}),
    ]
    for path in pages:
        html = await get_html(http, peer.url + path)
        soup = assert_inert(html)
        assert "<script>alert" not in html and "<img src=x" not in html
    soup = BeautifulSoup(await get_html(http, peer.url + pages[0]), "html.parser")
    assert soup.select_one(".record-title").get_text() == HOSTILE_TITLE
    soup = BeautifulSoup(await get_html(http, peer.url + pages[1]), "html.parser")
    assert HOSTILE_TITLE in [t.get_text() for t in soup.select(".doc-title")]
    soup = BeautifulSoup(await get_html(http, peer.url + pages[3]), "html.parser")
    assert soup.select_one(".flash-url").get_text() == '"><script>alert(7)</script>'


# -- in a real browser -------------------------------------------------------------------


@pytest.mark.browser
async def test_browser_look_up_remove_and_search(crawled, page):  # noqa: F811 - fixture
    peer, a, _ = crawled
    target = a + "/p2"
    p = page.page
    await p.goto(peer.url + "/index")
    await expect(p.locator("table#hosts tr.host")).to_have_count(2)
    await p.fill("#lookup-url", target)
    await p.get_by_role("button", name="Look up").click()
    await expect(p.locator("#lookup-result .record-title")).to_have_text("Page 2 uniqueword2")
    await p.click("#remove-url")
    await p.wait_for_url(lambda u: urlsplit(u).path == "/index/remove")
    await expect(p.locator("#confirm-button")).to_have_text("Remove this URL")
    await p.click("#confirm-button")
    await p.wait_for_url(lambda u: "removed_url=" in u)
    await expect(p.locator("#flash")).to_contain_text(target)
    await expect(p.locator(f'table#hosts tr[data-host="{host(a)}"] [data-field="documents"]')).to_have_text(str(len(SITE_A) - 1))

    # phone width: nothing overflows sideways
    await p.set_viewport_size({"width": 360, "height": 740})
    for path in ("/index?" + urlencode({"url": a + "/evil"}), "/index/host?" + urlencode({"host": host(a)})):
        await p.goto(peer.url + path)
        assert await p.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path

    await p.goto(peer.url + "/search?" + urlencode({"q": "uniqueword2"}))
    await expect(p.locator("li.result")).to_have_count(0)
    await p.goto(peer.url + "/search?" + urlencode({"q": "uniqueword3"}))
    await expect(p.locator("li.result .title a")).to_have_text("Page 3 uniqueword3")
    # the lookup now says so
    await p.goto(peer.url + "/index?" + urlencode({"url": target}))
    await expect(p.locator("#not-indexed")).to_contain_text("is not in the index")
