"""The web UI in a real headless Chromium (Playwright, Debian's chromium binary).

The harness (``browser``/``page`` fixtures, watched pages) is in tests/browserutil.py
and conftest.py.
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from browserutil import Watched, submit_crawl_form, watch_fetched
from peerutil import linked_pages

pytestmark = pytest.mark.browser

#: The scripts of a page, by path: on search pages only the search box's own script.
OWN_SCRIPTS = "Array.from(document.scripts).map(s => s.src ? new URL(s.src).pathname : 'inline')"
HOSTILE_TITLE = "<script>alert(1)</script>Evil"
HOSTILE_PAGES = {
    "/": (
        f"<html><head><title>{HOSTILE_TITLE}</title></head><body>"
        "<p>evilword &lt;script&gt;alert(2)&lt;/script&gt; &lt;img src=x onerror=alert(3)&gt;</p>"
        "<a href='/q?x=\"&gt;&lt;script&gt;alert(4)&lt;/script&gt;'>more</a></body></html>"
    ),
    "/q": (
        "<html><head><title>\"&gt;&lt;img src=x onerror=alert(5)&gt;</title></head>"
        "<body><p>evilword again</p></body></html>"
    ),
}


async def test_type_a_query_and_see_results(peer, page, crawl_site):
    url = await crawl_site(peer, linked_pages(15))
    p = page.page
    await p.goto(peer.url + "/")
    box = p.get_by_role("searchbox", name="Search query")
    await expect(box).to_be_focused()  # autofocus: typing goes straight into the box
    await box.press_sequentially("uniqueword7")
    await box.press("Enter")
    await p.wait_for_url("**/search?q=uniqueword7")
    hit = p.locator("li.result")
    await expect(hit).to_have_count(1)
    await expect(hit.locator(".title a")).to_have_text("Page 7 uniqueword7")
    await expect(hit.locator(".title a")).to_be_visible()
    await expect(hit.locator(".title a")).to_have_attribute("href", url + "/p7")
    await expect(hit.locator(".snippet mark")).to_have_text("uniqueword7")
    await expect(p.locator("#summary")).to_contain_text("1 result")
    await expect(p.locator("#summary")).to_contain_text(" ms")
    assert await p.title() == "uniqueword7 · yasearch"

    # a second query from the results page's own box, then the next page of results
    box = p.get_by_role("searchbox", name="Search query")
    await box.fill("zebras")
    await box.press("Enter")
    await p.wait_for_url("**/search?q=zebras")
    await expect(p.locator("li.result")).to_have_count(10)
    await expect(p.locator("#summary")).to_contain_text("15 results")
    await p.get_by_role("link", name="Next").click()
    await p.wait_for_url("**/search?q=zebras&page=2")
    await expect(p.locator("li.result")).to_have_count(5)
    await expect(p.locator("#summary")).to_contain_text("Results 11–15 of 15")


async def test_search_and_crawl_forms_work_without_javascript(peer, browser, static_site, crawl_site):
    """Plain form posts from a real browser pass the peer's cross-site check."""
    await crawl_site(peer, linked_pages(3))
    url = (await static_site(linked_pages(30, [f"slowword{i}" for i in range(30)]))).url
    context = await browser.new_context(java_script_enabled=False)
    try:
        w = Watched(await context.new_page())
        p = w.page
        await p.goto(peer.url + "/")
        await p.fill("#q", "uniqueword2")
        await p.press("#q", "Enter")
        await p.wait_for_url("**/search?q=uniqueword2")
        await expect(p.locator("li.result .title a")).to_have_text("Page 2 uniqueword2")

        await p.goto(peer.url + "/crawl")
        await p.fill("#urls", url + "/")
        await p.fill("#depth", "40")
        await p.fill("#delay", "0.2")  # slow enough to still be running when Cancel is clicked
        await p.click("#crawl-submit")
        await p.wait_for_url(peer.url + "/crawl#job-*")
        job_id = p.url.rsplit("#job-", 1)[1]
        row = p.locator(f"tbody#job-{job_id}")
        await expect(row.locator('[data-field="seed"]')).to_have_text(url + "/")
        await row.get_by_role("button", name="Cancel").click()
        await p.wait_for_url(peer.url + "/crawl#job-" + job_id)
        await expect(row.locator('[data-field="state"]')).to_have_text("cancelled")
        assert peer.jobs.get(job_id).state == "cancelled"
        w.check()
    finally:
        await context.close()


async def test_crawl_page_shows_live_progress(peer, page, static_site):
    # 40 pages in a chain with a 0.15 s politeness delay: the crawl takes several of the
    # console's one-second polls, so the counters must change in front of our eyes.
    n = 40
    url = (await static_site(linked_pages(n))).url
    p = page.page
    await p.goto(peer.url + "/crawl")
    await expect(p.locator("#jobs-empty")).to_be_visible()
    await p.evaluate("window.__sameDocument = true")  # gone if the page reloads

    row, job_id = await submit_crawl_form(p, url + "/", depth=n + 5, max_pages=n, delay="0.15")
    job = peer.jobs.get(job_id)
    assert job is not None and job.spec.delay == 0.15 and job.spec.urls == [url + "/"]
    await expect(row.locator('[data-field="seed"]')).to_have_text(url + "/")
    await expect(p.locator("#jobs-empty")).to_be_hidden()

    # the "Fetched" cell as the page updates it: three values
    values = await watch_fetched(p)
    assert values == sorted(values) and len(set(values)) >= 3, values
    assert values[-1] < n, "the crawl finished before progress was seen"

    # Pause and resume with the row's buttons (the script posts to the JSON API).
    await row.get_by_role("button", name="Pause").click()
    await expect(row.locator('[data-field="state"]')).to_have_text("paused")
    assert job.state == "paused"
    await expect(row.get_by_role("button", name="Pause")).to_be_hidden()
    await row.get_by_role("button", name="Resume").click()
    await expect(row.locator('[data-field="state"]')).to_have_text("running")

    # ... and on to the end, still without a reload.
    await expect(row.locator('[data-field="state"]')).to_have_text("done")
    await expect(row.locator('[data-field="fetched"]')).to_have_text(str(n))
    await expect(row.locator('[data-field="indexed"]')).to_have_text(str(n))
    await expect(row.get_by_role("button")).to_have_text(["Delete"])  # pause/resume/cancel hidden: hidden buttons do not count
    assert await p.evaluate("window.__sameDocument") is True
    assert p.url == peer.url + "/crawl"


async def test_hostile_title_is_shown_as_text(peer, page, crawl_site):
    await crawl_site(peer, HOSTILE_PAGES)
    p = page.page
    await p.goto(peer.url + "/")
    await p.fill("#q", "evilword")
    await p.press("#q", "Enter")
    await p.wait_for_url("**/search?q=evilword")
    titles = p.locator("li.result .title a")
    await expect(titles).to_have_count(2)
    texts = await titles.all_text_contents()
    assert HOSTILE_TITLE in texts
    assert '"><img src=x onerror=alert(5)>' in texts
    evil = p.locator("li.result", has=p.get_by_text(HOSTILE_TITLE, exact=True))
    await expect(evil.locator(".snippet")).to_contain_text("<script>alert(2)</script>")
    # nothing from the crawled pages became an element
    injected = await p.evaluate("document.querySelectorAll('main script, main img, main iframe, [onerror]').length")
    assert injected == 0
    assert await p.evaluate(OWN_SCRIPTS) == ["/static/search.js"]  # only our own, none injected

    # the window title of a hostile query is that text, literally
    hostile_q = "<script>alert(6)</script>evilword"
    await p.goto(peer.url + "/search?q=" + hostile_q.replace("<", "%3C").replace(">", "%3E"))
    assert await p.title() == hostile_q + " · yasearch"
    await expect(p.get_by_role("searchbox", name="Search query")).to_have_value(hostile_q)
    assert await p.evaluate(OWN_SCRIPTS) == ["/static/search.js"]  # only our own, none injected
    # page fixture teardown fails the test if any dialog fired


async def test_admin_token_login_then_crawl(tmp_path, page, make_peer, static_site):
    """With an admin token the console asks for it; the cookie it sets also carries the script's API calls."""
    p2 = await make_peer(tmp_path / "tokenpeer", admin_token="s3cret")
    url = (await static_site(linked_pages(3))).url
    p = page.page
    response = await p.goto(p2.url + "/crawl")
    assert response is not None and response.status == 403
    await expect(p.get_by_role("heading", name="The crawl console is admin-only")).to_be_visible()
    await p.get_by_label("Admin token").fill("wrong")
    # a 403 answer is logged as a console error by Chromium; expected here, so forget it
    await p.get_by_role("button", name="Unlock").click()
    await expect(p.get_by_role("alert")).to_have_text("That token is not right.")
    await p.get_by_label("Admin token").fill("s3cret")
    await p.get_by_role("button", name="Unlock").click()
    await p.wait_for_url(p2.url + "/crawl")
    page.problems = [m for m in page.problems if "403" not in m]

    await p.fill("#urls", url + "/")
    await p.click("#crawl-submit")
    await expect(p.locator("#form-message")).to_contain_text("Started job")
    row = p.locator("tbody.job[data-job-id]")
    await expect(row.locator('[data-field="state"]')).to_have_text("done")
    await expect(row.locator('[data-field="indexed"]')).to_have_text("3")
    assert len(p2.jobs.list()) == 1


async def test_network_page_shows_every_peer(tmp_path, page, make_peer, crawl_site):
    """Three joined peers, one with a hostile name; the network page, reached from the nav, lists them all."""
    names = ["alpha", "<script>alert(7)</script>", "gamma"]
    peers = [await make_peer(tmp_path / f"p{i}", name=name) for i, name in enumerate(names)]
    for x in peers[1:] + peers:  # two rounds: everybody learns everybody and their info
        await x.join([("127.0.0.1", peers[0].port)])
    await crawl_site(peers[0], linked_pages(4))
    for x in peers:
        await x.settle()
    for x in peers:
        await x.dht.refresh_info()

    p = page.page
    await p.goto(peers[2].url + "/")
    await p.get_by_role("navigation", name="Main").get_by_role("link", name="Network").click()
    await p.wait_for_url(peers[2].url + "/network")
    assert await p.title() == "Network · yasearch"
    rows = p.locator("table#peers tbody tr.peer")
    await expect(rows).to_have_count(3)
    for x, docs in zip(peers, (4, 0, 0)):
        row = p.locator(f'tr.peer[data-peer-id="{x.peer_id}"]')
        await expect(row).to_be_visible()
        await expect(row.locator('[data-field="name"]')).to_contain_text(x.name)
        await expect(row.locator('[data-field="peer_id"]')).to_have_text(x.peer_id[:12])
        await expect(row.locator('[data-field="documents"]')).to_have_text(str(docs))
        await expect(row.get_by_role("link")).to_have_attribute("href", x.url)
    await expect(p.locator(f'tr.peer[data-peer-id="{peers[2].peer_id}"] [data-field="last_seen"]')).to_have_text("now")
    assert await p.evaluate("document.scripts.length") == 0  # the hostile name stayed text

    # a phone-sized window: the table scrolls inside its box, the page does not
    await p.set_viewport_size({"width": 320, "height": 640})
    await p.reload()
    await expect(rows.first).to_be_visible()
    assert await p.evaluate("document.documentElement.scrollWidth") <= 320
    # the page fixture fails the test if a dialog fired or the CSP blocked anything
