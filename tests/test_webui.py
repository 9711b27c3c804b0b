"""The browser UI, server-rendered: a real peer in-process, a real HTTP client over loopback.

These tests need no JavaScript: search and the crawl console's forms work without it.
Crawled titles, bodies and URLs are hostile input; the page structure is checked with
an HTML parser, so an escaping bug shows up as an injected element or attribute.
"""

from __future__ import annotations

import re

import aiohttp
import pytest
from bs4 import BeautifulSoup

from peerutil import linked_pages

HOSTILE_TITLE = "<script>alert(1)</script>Evil"
#: Pages whose title, body and URL try to break out of the markup.
HOSTILE_PAGES = {
    "/evil": (
        f"<html><head><title>{HOSTILE_TITLE}</title></head><body>"
        "<p>evilword &lt;script&gt;alert(2)&lt;/script&gt; and &lt;img src=x onerror=alert(3)&gt; "
        "<img src=x onerror=alert(4)> text</p>"
        # a link whose URL carries markup and quotes
        "<a href='/q?x=\"&gt;&lt;script&gt;alert(5)&lt;/script&gt;'>more</a>"
        "<a href=\"/missing?'&quot;&gt;&lt;script&gt;alert(9)&lt;/script&gt;\">gone</a>"
        "</body></html>"
    ),
    "/q": (
        "<html><head><title>\"&gt;&lt;img src=x onerror=alert(6)&gt;</title></head>"
        "<body><p>evilword in a page whose URL has markup in it</p></body></html>"
    ),
}
ZEBRA_PAGES = 25  # linked_pages(): every page says "zebras"


def assert_inert(html: str, allowed_scripts: tuple[str, ...] = ()) -> BeautifulSoup:
    """No element or attribute that crawled input could have injected."""
    soup = BeautifulSoup(html, "html.parser")
    scripts = soup.find_all("script")
    # search.js (autocomplete, "/" shortcut) is on every page with the search box
    srcs = [s.get("src", "").split("?")[0] for s in scripts]
    assert [src for src in srcs if src != "/static/search.js"] == list(allowed_scripts), scripts
    assert all(not s.string for s in scripts), "inline script"
    for el in soup.find_all(True):
        handlers = [a for a in el.attrs if a.lower().startswith("on")]
        assert not handlers, f"event handler attribute on {el}"
    main = soup.find("main")
    assert main is not None and main.find("img") is None
    for a in soup.find_all("a", href=True):
        assert not a["href"].strip().lower().startswith(("javascript:", "data:")), a
    return soup


@pytest.fixture
async def crawled(peer, crawl_site):
    """The peer after crawling 25 linked pages about zebras plus the hostile pages: (peer, site url)."""
    url = await crawl_site(peer, {**linked_pages(ZEBRA_PAGES), **HOSTILE_PAGES}, seeds=["/", "/evil"], depth=ZEBRA_PAGES + 2)
    assert peer.index.doc_count() == ZEBRA_PAGES + 2
    return peer, url


def _spec(urls, **kw):
    from yasearch.api import parse_crawl_spec

    return parse_crawl_spec({"urls": urls, **kw})


async def get(http: aiohttp.ClientSession, url: str, status: int = 200, **kw) -> str:
    async with http.get(url, **kw) as r:
        text = await r.text()
        assert r.status == status, text[:2000]
        if r.content_type == "text/html":
            assert "Traceback" not in text
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        return text


def main_text(html: str) -> str:
    main = BeautifulSoup(html, "html.parser").find("main")
    return " ".join(main.get_text(" ").split())


# -- pages render ----------------------------------------------------------------


async def test_home_page(peer, http):
    html = await get(http, peer.url + "/")
    soup = assert_inert(html)
    form = soup.find("form", attrs={"role": "search"})
    assert form["action"] == "/search" and form["method"] == "get"
    assert form.find("input", attrs={"name": "q"}) is not None
    assert "Nothing indexed here yet" in main_text(html)
    assert soup.find("link", rel="stylesheet")["href"].startswith("/static/style.css")


async def test_status_page(crawled, http):
    peer, _ = crawled
    html = await get(http, peer.url + "/status")
    soup = assert_inert(html)
    assert soup.find(id="doc-count").get_text() == str(ZEBRA_PAGES + 2)
    text = main_text(html)
    assert peer.name in text and peer.peer_id in text
    assert "this peer" in text
    assert soup.find(id="status-crawl") is not None


async def test_static_files_are_served(peer, http):
    async with http.get(peer.url + "/static/style.css") as r:
        assert r.status == 200 and r.content_type == "text/css"
        assert "[hidden]" in await r.text()
    async with http.get(peer.url + "/static/crawl.js") as r:
        assert r.status == 200 and "javascript" in r.content_type
        assert "/api/v1/crawl" in await r.text()
    async with http.get(peer.url + "/static/nope.js") as r:
        assert r.status == 404


# -- search ------------------------------------------------------------------------


async def test_search_results_show_title_url_snippet_count_time(crawled, http):
    peer, url = crawled
    html = await get(http, peer.url + "/search", params={"q": "uniqueword3"})
    soup = assert_inert(html)
    results = soup.select("ol.results li.result")
    assert len(results) == 1
    hit = results[0]
    link = hit.select_one(".title a")
    assert link.get_text() == "Page 3 uniqueword3"
    assert link["href"] == url + "/p3"
    assert hit.select_one(".url").get_text() == url.removeprefix("http://") + "/p3"
    snippet = hit.select_one(".snippet")
    assert [m.get_text().lower() for m in snippet.find_all("mark")] == ["uniqueword3"]
    assert "zebras" in snippet.get_text()
    summary = " ".join(soup.select_one("#summary").get_text().split())
    assert re.match(r"1 result · \d+ ms ·", summary), summary
    assert soup.find("input", attrs={"name": "q"})["value"] == "uniqueword3"
    assert soup.select_one("nav.pagination") is None


async def test_search_pagination(crawled, http):
    peer, _ = crawled
    html = await get(http, peer.url + "/search", params={"q": "zebras"})
    soup = assert_inert(html)
    assert len(soup.select("li.result")) == 10
    assert all(r.select_one(".snippet mark") for r in soup.select("li.result"))
    assert re.match(rf"{ZEBRA_PAGES} results · \d+ ms", " ".join(soup.select_one("#summary").get_text().split()))
    nav = soup.select_one("nav.pagination")
    assert nav.select_one(".current").get_text() == "1"
    assert [a["href"] for a in nav.select("a:not(.next)")] == ["/search?q=zebras&page=2", "/search?q=zebras&page=3"]
    assert nav.select_one("a.next")["href"] == "/search?q=zebras&page=2"
    assert nav.select_one("a.prev") is None

    seen = {r.select_one(".title a")["href"] for r in soup.select("li.result")}
    html = await get(http, peer.url + nav.select_one("a.next")["href"])
    soup = assert_inert(html)
    assert "Results 11–20 of 25" in " ".join(soup.select_one("#summary").get_text().split())
    assert soup.select_one("ol.results")["start"] == "11"
    nav = soup.select_one("nav.pagination")
    assert nav.select_one(".current").get_text() == "2"
    assert nav.select_one("a.prev")["href"] == "/search?q=zebras"
    page2 = {r.select_one(".title a")["href"] for r in soup.select("li.result")}
    assert len(page2) == 10 and not (seen & page2)

    html = await get(http, peer.url + nav.select_one("a.next")["href"])
    soup = assert_inert(html)
    assert "Results 21–25 of 25" in " ".join(soup.select_one("#summary").get_text().split())
    assert len(soup.select("li.result")) == 5
    assert soup.select_one("nav.pagination a.next") is None

    # past the last page: a message and a way back, not an empty list
    html = await get(http, peer.url + "/search", params={"q": "zebras", "page": "7"})
    assert "No more results" in main_text(html)
    assert BeautifulSoup(html, "html.parser").find("a", href="/search?q=zebras") is not None


async def test_empty_query_shows_the_home_page(crawled, http):
    peer, _ = crawled
    for params in ({"q": ""}, {"q": "   "}, {}):
        html = await get(http, peer.url + "/search", params=params)
        soup = assert_inert(html)
        assert soup.select("li.result") == []
        assert soup.find("input", attrs={"name": "q"}) is not None
        assert f"indexed {ZEBRA_PAGES + 2} documents" in main_text(html)
    # a query on the home page's URL goes to the results page
    async with http.get(peer.url + "/", params={"q": "zebras"}, allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "/search?q=zebras"


async def test_search_before_anything_is_indexed(peer, http):
    """A new peer with an empty index answers "no results", not an error page."""
    html = await get(http, peer.url + "/search", params={"q": "zebras"})
    assert "No results for zebras" in main_text(html)


async def test_no_results(crawled, http):
    peer, _ = crawled
    html = await get(http, peer.url + "/search", params={"q": "platypus"})
    soup = assert_inert(html)
    assert soup.select("li.result") == []
    text = main_text(html)
    assert "No results for platypus" in text
    assert re.search(r"\d+ ms", text)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"q": "!!! ???"}, "no searchable words"),
        ({"q": "zebras", "page": "two"}, "whole number"),
        ({"q": "zebras", "page": "0"}, "between 1 and 100"),
        ({"q": "zebras", "page": "101"}, "between 1 and 100"),
        ({"q": "zebras", "scope": "universe"}, "scope"),
        ({"q": "x" * 600}, "at most 512"),
    ],
)
async def test_bad_query_shows_a_message(crawled, http, params, message):
    peer, _ = crawled
    html = await get(http, peer.url + "/search", 400, params=params)
    soup = assert_inert(html)
    alert = soup.find(attrs={"role": "alert"})
    assert alert is not None and message in alert.get_text()
    assert soup.select("li.result") == []
    # the query box is still there to fix the query
    assert soup.find("input", attrs={"name": "q"})["value"] == params["q"]


async def test_hostile_crawled_html_is_escaped(crawled, http):
    peer, url = crawled
    html = await get(http, peer.url + "/search", params={"q": "evilword"})
    assert "&lt;script&gt;alert(1)&lt;/script&gt;Evil" in html
    assert "<script>alert" not in html and "<img src=x" not in html
    soup = assert_inert(html)  # no <script>, no <img>, no on* attribute anywhere
    titles = {a.get_text() for a in soup.select("li.result .title a")}
    assert HOSTILE_TITLE in titles  # shown as text, exactly as the page had it
    assert '"><img src=x onerror=alert(6)>' in titles
    evil = next(r for r in soup.select("li.result") if r.select_one(".title a").get_text() == HOSTILE_TITLE)
    snippet = evil.select_one(".snippet")
    assert "<script>alert(2)</script>" in snippet.get_text()
    assert [m.get_text() for m in snippet.find_all("mark")] == ["evilword"]
    assert set(snippet.find_all(True)) == set(snippet.find_all("mark"))  # <mark> is the only markup
    # the page whose URL carries markup and quotes: the URL is shown as text, the link stays a link
    q = next(r for r in soup.select("li.result") if "/q?" in r.select_one(".title a")["href"])
    assert q.select_one(".title a")["href"].startswith(url + "/q?x=")
    assert q.select_one(".url").get_text() == q.select_one(".title a")["href"].removeprefix("http://")

    # the title of the search page and the query box echo a hostile query as text
    hostile_q = '<script>alert(7)</script> "><img src=x onerror=alert(8)> evilword'
    html = await get(http, peer.url + "/search", params={"q": hostile_q})
    soup = assert_inert(html)
    assert soup.find("input", attrs={"name": "q"})["value"] == hostile_q
    assert soup.title.get_text().startswith(hostile_q[:80])

    # the crawl console lists the failed URL that carried markup (canonicalized: percent-encoded)
    html = await get(http, peer.url + "/crawl")
    soup = assert_inert(html, allowed_scripts=("/static/crawl.js",))
    failed = [li.get_text() for li in soup.select(".failure-list .failed-url")]
    assert any(f.startswith(url + "/missing?") for f in failed), failed


# -- crawl console without JavaScript -------------------------------------------------


async def test_crawl_page_renders_form_and_empty_job_list(peer, http):
    html = await get(http, peer.url + "/crawl")
    soup = assert_inert(html, allowed_scripts=("/static/crawl.js",))
    form = soup.find("form", id="crawl-form")
    assert form["method"] == "post" and form["action"] == "/crawl"
    names = {el["name"] for el in form.find_all(["input", "textarea"])}
    assert {"urls", "depth", "max_pages", "delay"} <= names
    assert not soup.find(id="jobs-empty").has_attr("hidden")
    assert soup.find(id="jobs").has_attr("hidden")
    assert soup.select("tbody.job[data-job-id]") == []
    assert soup.find("template", id="job-template") is not None


async def test_crawl_form_post_starts_a_job(peer, http, static_site):
    url = (await static_site(linked_pages(5))).url
    form = {"urls": f"{url}/\n# a comment\n\n", "depth": "10", "max_pages": "4", "delay": "0"}
    async with http.post(peer.url + "/crawl", data=form, allow_redirects=False) as r:
        assert r.status == 303, await r.text()
        location = r.headers["Location"]
    match = re.fullmatch(r"/crawl#job-(\w+)", location)
    assert match
    job_id = match.group(1)
    job = peer.jobs.get(job_id)
    assert job is not None and job.spec.urls == [url + "/"] and job.spec.max_pages == 4 and job.spec.delay == 0
    await peer.jobs.wait(job_id)

    html = await get(http, peer.url + "/crawl")
    soup = assert_inert(html, allowed_scripts=("/static/crawl.js",))
    row = soup.find("tbody", id=f"job-{job_id}")
    assert row is not None and row["data-state"] == "done"
    assert row.select_one('[data-field="seed"]').get_text() == url + "/"
    assert row.select_one('[data-field="fetched"]').get_text() == "4"
    assert row.select_one('[data-field="indexed"]').get_text() == "4"
    assert row.select_one('[data-field="state"]').get_text() == "done"
    # a finished job offers no pause/resume/cancel, only delete
    assert [f["data-action"] for f in row.select("form[data-action]") if not f.has_attr("hidden")] == ["delete"]
    assert soup.find(id="jobs-empty").has_attr("hidden")

    # the redirect target works for a browser following it
    async with http.post(peer.url + "/crawl", data=form) as r:
        assert r.status == 200 and str(r.url).startswith(peer.url + "/crawl")
    assert len(peer.jobs.list()) == 2


@pytest.mark.parametrize(
    "form, message",
    [
        ({"urls": ""}, "urls"),
        ({"urls": "ftp://example.org/"}, "ftp://example.org/"),
        ({"urls": "http://127.0.0.1:1/", "depth": "deep"}, "depth must be a number"),
        ({"urls": "http://127.0.0.1:1/", "max_pages": "0"}, "max_pages"),
        ({"urls": "http://127.0.0.1:1/", "delay": "-1"}, "delay"),
        ({"urls": "http://127.0.0.1:1/", "allow": "(unclosed"}, "allow"),
    ],
)
async def test_crawl_form_errors_are_shown_with_the_form(peer, http, form, message):
    async with http.post(peer.url + "/crawl", data=form, allow_redirects=False) as r:
        assert r.status == 400
        html = await r.text()
    soup = assert_inert(html, allowed_scripts=("/static/crawl.js",))
    assert message in soup.find(id="form-message").get_text()
    assert soup.find("textarea", id="urls").get_text() == form["urls"]  # nothing typed is lost
    assert peer.jobs.list() == []


async def test_crawl_job_buttons_without_javascript(peer, http, static_site):
    url = (await static_site(linked_pages(30), delay=0.05)).url
    job = await peer.start_crawl(_spec([url + "/"], depth=40, max_pages=30))

    async def act(action: str, status: int = 303) -> None:
        async with http.post(f"{peer.url}/crawl/{job.id}/{action}", allow_redirects=False) as r:
            assert r.status == status, await r.text()
            if status == 303:
                assert r.headers["Location"] == ("/crawl" if action == "delete" else f"/crawl#job-{job.id}")

    soup = BeautifulSoup(await get(http, peer.url + "/crawl"), "html.parser")
    row = soup.find("tbody", id=f"job-{job.id}")
    visible = {f["data-action"] for f in row.select("form[data-action]") if not f.has_attr("hidden")}
    assert visible == {"pause", "cancel"}

    await act("pause")
    assert job.state == "paused"
    soup = BeautifulSoup(await get(http, peer.url + "/crawl"), "html.parser")
    row = soup.find("tbody", id=f"job-{job.id}")
    assert row["data-state"] == "paused"
    assert {f["data-action"] for f in row.select("form[data-action]") if not f.has_attr("hidden")} == {"resume", "cancel"}

    await act("pause", 409)
    await act("delete", 409)  # a paused job is deleted only once cancelled
    await act("resume")
    assert job.state == "running"
    await act("cancel")
    assert job.state == "cancelled"
    await act("resume", 409)
    await peer.jobs.wait(job.id)
    soup = BeautifulSoup(await get(http, peer.url + "/crawl"), "html.parser")
    row = soup.find("tbody", id=f"job-{job.id}")
    assert {f["data-action"] for f in row.select("form[data-action]") if not f.has_attr("hidden")} == {"delete"}
    await act("delete")
    assert peer.get_job(job.id) is None
    async with http.post(f"{peer.url}/crawl/nosuchjob/cancel") as r:
        assert r.status == 404 and "There is no crawl job" in await r.text()


async def test_cross_site_form_posts_are_refused(peer, http):
    form = {"urls": "http://127.0.0.1:1/"}
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        async with http.post(peer.url + "/crawl", data=form, headers=headers, allow_redirects=False) as r:
            assert r.status == 403
    assert peer.jobs.list() == []
    # Sec-Fetch-Site decides when present, whatever Origin says
    for headers in ({"Origin": peer.url, "Sec-Fetch-Site": "same-site"}, {"Origin": "null"}):
        async with http.post(peer.url + "/crawl", data=form, headers=headers, allow_redirects=False) as r:
            assert r.status == 403
    assert peer.jobs.list() == []
    # same-origin browser posts pass: Chromium may send "Origin: null" with them
    for headers in (
        {"Origin": peer.url, "Sec-Fetch-Site": "same-origin"},
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
        {"Origin": peer.url},
    ):
        async with http.post(peer.url + "/crawl", data={**form, "max_pages": "1"}, headers=headers, allow_redirects=False) as r:
            assert r.status == 303, headers
    assert len(peer.jobs.list()) == 3


# -- admin token ------------------------------------------------------------------------


async def test_admin_token_login(tmp_path, http, make_peer):
    p = await make_peer(tmp_path / "tokenpeer", admin_token="s3cret")
    # no token: 403 with a login form, and the form cannot start anything
    html = await get(http, p.url + "/crawl", 403)
    soup = assert_inert(html)
    login = soup.find("form", action="/crawl/login")
    assert login is not None and login["method"] == "post"
    assert login.find("input", attrs={"name": "token", "type": "password"}) is not None
    async with http.post(p.url + "/crawl", data={"urls": "http://127.0.0.1:1/"}) as r:
        assert r.status == 403
    async with http.post(p.url + "/api/v1/crawl") as r:
        assert r.status == 403
    assert p.jobs.list() == []
    # the home page and status stay public
    await get(http, p.url + "/")
    await get(http, p.url + "/status")

    # a wrong token: still 403, with a message
    async with http.post(p.url + "/crawl/login", data={"token": "guess"}, allow_redirects=False) as r:
        assert r.status == 403
        assert "not right" in await r.text()
        assert "yasearch_admin" not in r.cookies
    await get(http, p.url + "/crawl", 403)

    # the right token: a cookie, then the console works, including the JSON API its script uses
    async with http.post(p.url + "/crawl/login", data={"token": "s3cret"}, allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == "/crawl"
        cookie = r.cookies["yasearch_admin"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
    html = await get(http, p.url + "/crawl")
    assert BeautifulSoup(html, "html.parser").find("form", id="crawl-form") is not None
    async with http.post(p.url + "/crawl", data={"urls": "http://127.0.0.1:1/", "max_pages": "1"}, allow_redirects=False) as r:
        assert r.status == 303
    async with http.get(p.url + "/api/v1/crawl") as r:
        assert r.status == 200 and len((await r.json())["jobs"]) == 1

    # another client without the cookie is still locked out; a Bearer header also works
    async with aiohttp.ClientSession() as other:
        await get(other, p.url + "/crawl", 403)
        await get(other, p.url + "/crawl", headers={"Authorization": "Bearer s3cret"})


async def test_login_without_a_configured_token_explains_loopback(peer, http):
    async with http.post(peer.url + "/crawl/login", data={"token": "x"}) as r:
        assert r.status == 403
        text = await r.text()
    assert "loopback" in text and 'action="/crawl/login"' not in text


# -- the network page, and search across peers ------------------------------------------

HOSTILE_NAME = "<script>x</script>"
NET_PAGES = 12  # linked_pages(): crawled by the first peer only


@pytest.fixture
async def network(make_network, crawl_site):
    """Three real peers joined over loopback (UDP + HTTP); only the first crawled anything.

    The second has a hostile name, as any other peer may; the third crawled nothing.
    """
    peers = await make_network(["alpha", HOSTILE_NAME, "gamma"])
    await crawl_site(peers[0], linked_pages(NET_PAGES), depth=NET_PAGES + 1, max_pages=NET_PAGES)
    for p in peers:
        await p.settle()
    for p in peers:  # announce the new document count
        await p.dht.refresh_info()
    assert peers[0].index.doc_count() == NET_PAGES
    return peers


def peer_rows(soup: BeautifulSoup) -> dict[str, dict[str, str]]:
    """The peers table as {full peer ID: {field: text}}."""
    rows = {}
    for tr in soup.select("table#peers tbody tr.peer"):
        cells = {td["data-field"]: " ".join(td.get_text(" ").split()) for td in tr.select("td[data-field]")}
        cells["href"] = (tr.select_one('td[data-field="url"] a') or {}).get("href", "")
        rows[tr["data-peer-id"]] = cells
    return rows


async def test_network_page_lists_every_peer(network, http):
    alpha, hostile, gamma = network
    html = await get(http, gamma.url + "/network")
    soup = assert_inert(html)  # the hostile name injected no element
    assert soup.select_one('nav a[href="/network"]')["aria-current"] == "page"
    rows = peer_rows(soup)
    assert set(rows) == {alpha.peer_id, hostile.peer_id, gamma.peer_id}
    want = {alpha: NET_PAGES, hostile: 0, gamma: 0}
    for p, docs in want.items():
        row = rows[p.peer_id]
        assert row["name"].removesuffix(" (this peer)") == p.name
        assert row["peer_id"] == p.peer_id[:12]
        assert row["documents"] == str(docs)
        assert row["href"] == p.url and row["url"] == p.url.removeprefix("http://")
        assert row["version"] == gamma.config.version
        assert row["last_seen"] == "now" if p is gamma else re.fullmatch(r"just now|\d+ s ago", row["last_seen"])
    assert rows[gamma.peer_id]["name"] == "gamma (this peer)"
    assert list(rows)[0] == gamma.peer_id  # this peer first
    # the hostile name is text, escaped in the markup
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x" not in html
    assert soup.find("td", string=HOSTILE_NAME) is not None
    # this peer's own figures
    assert soup.select_one("#self-id").get_text() == gamma.peer_id
    assert soup.select_one("#net-peers").get_text() == "3"
    assert soup.select_one("#net-documents").get_text() == str(NET_PAGES)
    status = await gamma.status()
    assert soup.select_one("#net-postings").get_text() == f"{status['postings_held']:,}"
    assert status["postings_held"] > 0  # gamma holds a share of alpha's postings
    assert soup.select_one('#dht [data-field="contacts"]').get_text() == str(status["dht"]["contacts"])
    assert soup.select_one('#publishing [data-field="pending"]').get_text() == "0"

    # the publishing peer shows what it sent
    soup = assert_inert(await get(http, alpha.url + "/network"))
    sent = (await alpha.status())["publish"]["sent"]
    assert sent > 0 and soup.select_one('#publishing [data-field="sent"]').get_text() == f"{sent:,}"
    assert peer_rows(soup)[alpha.peer_id]["documents"] == str(NET_PAGES)

    # the status page carries the network figures too, and every page's title escapes the name
    html = await get(http, hostile.url + "/status")
    soup = assert_inert(html)
    assert soup.select_one("#peers-known").get_text() == "2"
    assert soup.select_one("#publish-pending").get_text() == "0"
    assert HOSTILE_NAME in soup.select_one(".status-page h1").get_text()
    assert soup.find("a", href="/network") is not None
    html = await get(http, hostile.url + "/network")
    soup = assert_inert(html)
    assert peer_rows(soup)[hostile.peer_id]["name"] == HOSTILE_NAME + " (this peer)"
    assert soup.select_one("#this-peer .peer-name").get_text() == HOSTILE_NAME
    assert HOSTILE_NAME in soup.select_one("footer").get_text()


async def test_search_on_a_peer_that_crawled_nothing(network, http):
    alpha, hostile, gamma = network
    assert gamma.index.doc_count() == 0
    html = await get(http, gamma.url + "/search", params={"q": "uniqueword5"})
    soup = assert_inert(html)
    results = soup.select("ol.results li.result")
    assert len(results) == 1
    assert results[0].select_one(".title a").get_text() == "Page 5 uniqueword5"
    summary = " ".join(soup.select_one("#summary").get_text().split())
    m = re.search(r"(\d+) of (\d+) peers? answered", summary)
    assert m and int(m.group(1)) >= 1 and int(m.group(1)) <= int(m.group(2)), summary
    assert "failed" not in summary
    origin = results[0].select_one(".origin")
    assert origin["data-origin"] == alpha.peer_id
    assert origin.select_one("code").get_text() == alpha.peer_id[:12]
    assert origin.select_one(".peer-name").get_text() == "alpha"

    html = await get(http, gamma.url + "/search", params={"q": "zebras"})
    soup = assert_inert(html)
    assert re.match(rf"{NET_PAGES} results · \d+ ms · \d+ of \d+ peers? answered", " ".join(soup.select_one("#summary").get_text().split()))
    assert {o["data-origin"] for o in soup.select("li.result .origin")} == {alpha.peer_id}

    # on the peer that crawled the pages they are its own: "local"
    soup = assert_inert(await get(http, alpha.url + "/search", params={"q": "uniqueword5"}))
    assert soup.select_one("li.result .origin").get_text().strip() == "local"
    # a local-scope search on the empty peer asks nobody and finds nothing
    html = await get(http, gamma.url + "/search", params={"q": "uniqueword5", "scope": "local"})
    text = main_text(html)
    assert "No results for uniqueword5" in text and "this peer's index only" in text


def test_peer_rows_distrust_what_other_peers_say():
    from yasearch.webui.filters import relative_time
    from yasearch.webui.netpages import _peer_row

    row = _peer_row(
        {"peer_id": "ab" * 20, "name": None, "url": "javascript:alert(1)", "version": 3, "documents": -4,
         "self": False, "last_seen": "yesterday", "postings_held": True},
        {"postings_held": 7},
    )
    assert row["href"] == "#" and row["name"] == "" and row["version"] == "3"
    assert row["documents"] is None and row["postings"] is None and row["last_seen"] == 0
    assert _peer_row({"self": True, "documents": 2}, {"postings_held": 7})["postings"] == 7
    now = 1_000_000.0
    assert [relative_time(now - a, now) for a in (1, 30, 300, 7200, 3 * 86400)] == [
        "just now", "30 s ago", "5 min ago", "2 h ago", "3 d ago"]
    assert relative_time(0, now) == "never" and relative_time(None, now) == "never"


# -- filters -------------------------------------------------------------------------------


def test_snippet_filter_lets_only_mark_through():
    import html

    from yasearch.webui.filters import safe_snippet

    # what the search module makes round-trips unchanged
    text = "a <b>bold</b> & 'quoted' \"text\" &lt;literal&gt;"
    made = html.escape(text).replace("bold", "<mark>bold</mark>")
    out = str(safe_snippet(made))
    assert html.unescape(out) == html.unescape(made)
    assert out.replace("<mark>", "").replace("</mark>", "").count("<") == 0
    # raw markup (say, from a misbehaving remote peer) is escaped, marks are balanced
    hostile = '<script>alert(1)</script><mark>hit</mark> <img src=x onerror=alert(2)> </mark><mark>open'
    out = str(safe_snippet(hostile))
    assert out == (
        "&lt;script&gt;alert(1)&lt;/script&gt;<mark>hit</mark> &lt;img src=x onerror=alert(2)&gt; <mark>open</mark>"
    )


@pytest.mark.parametrize(
    "url, href",
    [
        ("http://example.org/a?b=c", "http://example.org/a?b=c"),
        ("HTTPS://example.org/", "HTTPS://example.org/"),
        ("javascript:alert(1)", "#"),
        (" JavaScript:alert(1)", "#"),
        ("java\tscript:alert(1)", "#"),
        ("data:text/html,<script>alert(1)</script>", "#"),
        ("//evil.example/", "#"),
        ("http://[::1", "#"),
    ],
)
def test_result_links_are_http_only(url, href):
    from yasearch.webui.filters import safe_href

    assert safe_href(url) == href


# -- what every response carries, and the admin rule for remote clients --------------------


async def test_security_headers_on_every_response(peer, http):
    """The middleware adds them to JSON, errors, 404s and static files, not only to rendered pages."""
    for path, status in (
        ("/api/v1/status", 200),
        ("/api/v1/search", 400),
        ("/api/v1/nothing-here", 404),
        ("/no-such-page", 404),
        ("/static/style.css", 200),
        ("/", 200),
    ):
        async with http.get(peer.url + path) as r:
            assert r.status == status, path
            assert r.headers["X-Content-Type-Options"] == "nosniff", path
            assert r.headers["X-Frame-Options"] == "DENY", path
            assert "default-src 'self'" in r.headers["Content-Security-Policy"], path
            assert "script-src 'self'" in r.headers["Content-Security-Policy"], path
    # the API docs page allows its one inline style by hash, and still no inline script
    async with http.get(peer.url + "/api/v1/docs") as r:
        csp = r.headers["Content-Security-Policy"]
    assert "style-src 'self' 'sha256-" in csp and "script-src 'self';" in csp


def _remote_app(peer: Peer, remote: str) -> "aiohttp.web.Application":
    """The peer's real app, with every client appearing to come from ``remote`` (as
    behind a reverse proxy that sets the client address)."""
    from aiohttp import web

    from yasearch.server import build_site_app

    @web.middleware
    async def from_elsewhere(request, handler):
        return await handler(request.clone(remote=remote))

    app = build_site_app(peer)
    app.middlewares.insert(0, from_elsewhere)
    return app


async def test_admin_routes_refuse_remote_clients(peer, aiohttp_client):
    """Without a token only loopback clients are admins: an admin API route answers a
    JSON 403, an admin UI route its HTML page; public routes stay open."""
    client = await aiohttp_client(_remote_app(peer, "192.0.2.7"))
    for method, path in (("GET", "/api/v1/crawl"), ("POST", "/api/v1/crawl"), ("GET", "/api/v1/index/hosts")):
        async with client.request(method, path, json={"urls": ["http://127.0.0.1:1/"]}) as r:
            assert r.status == 403, path
            assert (await r.json())["error"]["code"] == "forbidden"
    for method, path, text in (("GET", "/crawl", "The crawl console is admin-only"), ("GET", "/index", "from this machine")):
        async with client.request(method, path) as r:
            assert r.status == 403 and r.content_type == "text/html", path
            assert text in " ".join((await r.text()).split()), path
    async with client.post("/crawl", data={"urls": "http://127.0.0.1:1/"}, allow_redirects=False) as r:
        assert r.status == 403 and r.content_type == "text/html"
    assert peer.list_jobs() == []
    async with client.get("/api/v1/status") as r:
        assert r.status == 200
    async with client.get("/") as r:
        assert r.status == 200
    # the same app answers a loopback client
    local = await aiohttp_client(_remote_app(peer, "127.0.0.1"))
    async with local.get("/api/v1/crawl") as r:
        assert r.status == 200
