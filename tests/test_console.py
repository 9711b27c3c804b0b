"""The crawl console (seed list uploads, live progress over Server-Sent Events,
pause/resume/cancel) and the network page's ID ring and sparklines.

HTTP tests talk to in-process peers with aiohttp; the browser tests drive Debian's
chromium through Playwright (fixtures shared with tests/test_browser.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from bs4 import BeautifulSoup
from playwright.async_api import expect

from peerutil import assert_json_error, linked_pages
from browserutil import Watched, submit_crawl_form, watch_fetched
from yasearch.api import parse_crawl_spec
from yasearch.crawlconsole import SEED_FILE_MAX_BYTES, SSE_STREAMS, SSE_TICK, parse_seed_file
from yasearch.history import History
from yasearch.webui.netviz import ID_SPACE, id_ring, sparkline


@pytest.fixture
async def slow_site(static_site):
    """40 pages in a chain, 0.1 s per page: a crawl that takes a few seconds."""
    return (await static_site(linked_pages(40), delay=0.1)).url


def seed_form(fields: dict[str, str], content: bytes, filename: str = "seeds.txt") -> aiohttp.FormData:
    form = aiohttp.FormData()
    for k, v in fields.items():
        form.add_field(k, v)
    form.add_field("seeds", content, filename=filename, content_type="text/plain")
    return form


# -- seed list uploads ----------------------------------------------------------------


async def test_seed_file_upload_starts_a_job(peer, http, static_site):
    url = (await static_site(linked_pages(3))).url
    seeds = f"# my seeds\n\n{url}/   # the start page\n  {url}/p1\n#{url}/p2 commented out\n".encode()
    form = seed_form({"urls": "", "depth": "0", "max_pages": "5", "delay": "0"}, seeds)
    async with http.post(peer.url + "/crawl", data=form, allow_redirects=False) as r:
        assert r.status == 303, await r.text()
        job_id = r.headers["Location"].rsplit("#job-", 1)[1]
    job = peer.jobs.get(job_id)
    assert job is not None and job.spec.urls == [url + "/", url + "/p1"] and job.spec.depth == 0
    await peer.jobs.wait(job_id)
    assert job.progress.indexed == 2

    # the JSON API takes the same multipart form: typed URLs and the file's add up
    form = seed_form({"urls": f"{url}/p2", "depth": "0", "allow": "p[12]$", "same_site": "1"}, f"{url}/p1\r\n".encode("utf-8-sig"))
    async with http.post(peer.url + "/api/v1/crawl", data=form) as r:
        assert r.status == 201, await r.text()
        job = peer.jobs.get((await r.json())["id"])
    assert job.spec.urls == [url + "/p2", url + "/p1"] and job.spec.allow == ["p[12]$"] and job.spec.same_site
    await peer.jobs.wait(job.id)

    # the console lists both
    async with http.get(peer.url + "/crawl") as r:
        soup = BeautifulSoup(await r.text(), "html.parser")
    assert len(soup.select("tbody.job[data-job-id]")) == 2
    assert soup.find("form", id="crawl-form")["enctype"] == "multipart/form-data"
    assert soup.find("input", id="seeds")["type"] == "file"


BAD_FILES = [
    pytest.param(b"http://127.0.0.1:1/\n" * (SEED_FILE_MAX_BYTES // 20 + 1), 413, "seed_file_too_large", "larger than 1 MiB", id="too-big"),
    pytest.param(b"# only comments\n\n   \n# nothing else\n", 400, "empty_seed_file", "has no URLs", id="no-urls"),
    pytest.param(b"", 400, "empty_seed_file", "has no URLs", id="empty"),
    pytest.param("http://example.org/caf\u00e9\n".encode("latin-1"), 400, "seed_file_not_utf8", "not UTF-8", id="latin-1"),
    pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00", 400, "seed_file_not_utf8", "not UTF-8", id="binary"),
    pytest.param(b"http://127.0.0.1:1/\nftp://example.org/x\n", 400, "bad_seed_file", "line 2: not an absolute http(s) URL", id="bad-url"),
    pytest.param(b"http://a.example/ http://b.example/\n", 400, "bad_seed_file", "line 1: one URL per line", id="two-per-line"),
    pytest.param(("".join(f"http://h{i}.example/\n" for i in range(10_001))).encode(), 413, "too_many_urls", "more than 10,000 URLs", id="too-many"),
]


@pytest.mark.parametrize("content, status, code, message", BAD_FILES)
async def test_bad_seed_files_are_refused_with_a_clear_message(peer, http, content, status, code, message):
    async with http.post(peer.url + "/api/v1/crawl", data=seed_form({"depth": "1"}, content, "list.txt")) as r:
        error = await assert_json_error(r, status, code)
    assert message in error["message"] and "list.txt" in error["message"], error

    # the plain form shows the same message on the console, keeping what was typed
    fields = {"urls": "", "allow": "keep-me", "depth": "1"}
    async with http.post(peer.url + "/crawl", data=seed_form(fields, content, "list.txt"), allow_redirects=False) as r:
        assert r.status == status
        soup = BeautifulSoup(await r.text(), "html.parser")
    assert message in soup.find(id="form-message").get_text()
    assert soup.find("textarea", id="allow").get_text() == "keep-me"
    assert peer.jobs.list() == []


async def test_seed_form_errors_from_the_form_fields(peer, http):
    form = seed_form({"depth": "deep"}, b"http://127.0.0.1:1/\n")
    async with http.post(peer.url + "/api/v1/crawl", data=form) as r:
        assert "depth must be a number" in (await assert_json_error(r, 400))["message"]
    form = seed_form({"bogus": "1"}, b"http://127.0.0.1:1/\n")
    async with http.post(peer.url + "/api/v1/crawl", data=form) as r:
        assert "unknown form field" in (await assert_json_error(r, 400))["message"]
    # no file chosen and no URLs typed: the usual message about urls
    form = aiohttp.FormData()
    form.add_field("urls", "")
    form.add_field("seeds", b"", filename="", content_type="application/octet-stream")
    async with http.post(peer.url + "/api/v1/crawl", data=form) as r:
        assert "urls" in (await assert_json_error(r, 400))["message"]
    assert peer.jobs.list() == []


def test_events_carry_a_short_seed_list():
    from types import SimpleNamespace

    from yasearch.crawlconsole import EVENT_SEED_URLS, job_event

    urls = [f"http://h{i}.example/" for i in range(25)]
    job = SimpleNamespace(to_dict=lambda: {"id": "j", "state": "running", "spec": {"urls": urls, "depth": 1}})
    d = job_event(job)
    assert d["spec"]["urls"] == urls[:EVENT_SEED_URLS] and d["spec"]["url_count"] == 25 and d["spec"]["depth"] == 1


def test_parse_seed_file_rules():
    assert parse_seed_file(b"\xef\xbb\xbfhttp://a.example/#frag # comment\n\thttps://b.example/x\n") == [
        "http://a.example/#frag", "https://b.example/x"]
    with pytest.raises(Exception) as e:
        parse_seed_file(b"http://a.example/\x00")
    assert "not a text file" in e.value.message


# -- live progress over Server-Sent Events ------------------------------------------------


async def read_events(resp: aiohttp.ClientResponse, until: Any, timeout: float = 30.0) -> list[tuple[str, Any]]:
    """(event name, parsed data) of each event until ``until(events)`` is true or the stream ends."""
    events: list[tuple[str, Any]] = []
    name, data = "message", []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = await asyncio.wait_for(resp.content.readline(), deadline - time.monotonic())
        if not raw:
            break  # the server ended the stream
        line = raw.decode().rstrip("\r\n")
        if line == "":
            if data:
                events.append((name, json.loads("\n".join(data))))
                if until(events):
                    break
            name, data = "message", []
        elif line.startswith(":"):
            continue  # heartbeat
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return events


async def test_event_stream_of_a_running_crawl(peer_server, peer, http, slow_site):
    job = await peer.start_crawl(parse_crawl_spec({"urls": [slow_site + "/"], "depth": 50, "max_pages": 25, "delay": 0}))
    async with http.get(f"{peer.url}/api/v1/crawl/{job.id}/events") as r:
        assert r.status == 200
        assert r.content_type == "text/event-stream" and r.headers["Cache-Control"] == "no-store"
        events = await read_events(r, lambda ev: ev[-1][0] == "end")
        assert await r.content.read() == b""  # and then the stream ends
    progress = [d for name, d in events if name == "message"]
    assert events[-1] == ("end", {"id": job.id, "state": "done"})
    for d in progress:
        assert {"queued", "fetched", "indexed", "failed", "skipped", "published", "pages_per_second", "state"} <= set(d)
    fetched = [d["fetched"] for d in progress]
    assert fetched == sorted(fetched) and len(set(fetched)) >= 3, fetched  # counters changed while we watched
    assert progress[0]["state"] == "running" and progress[-1]["state"] == "done" and progress[-1]["fetched"] == 25
    assert max(d["pages_per_second"] for d in progress) > 0
    await asyncio.sleep(SSE_TICK * 2)
    assert peer_server.app[SSE_STREAMS] == set()  # the server side of the stream is gone too


async def test_event_stream_of_every_job(peer, http, slow_site):
    async with http.get(peer.url + "/api/v1/crawl/events") as r:
        assert r.status == 200 and r.content_type == "text/event-stream"
        first = await read_events(r, lambda ev: True)
        assert first == [("message", {"jobs": []})]  # at once, even with nothing to show
        job = await peer.start_crawl(parse_crawl_spec({"urls": [slow_site + "/"], "depth": 50, "max_pages": 40, "delay": 0}))
        seen = await read_events(r, lambda ev: ev[-1][1]["jobs"] and ev[-1][1]["jobs"][0]["fetched"] >= 3)
        assert seen[-1][1]["jobs"][0]["id"] == job.id
        assert peer.jobs.cancel(job.id)
        seen = await read_events(r, lambda ev: ev[-1][1]["jobs"][0]["state"] == "cancelled", timeout=5)
        assert seen[-1][1]["jobs"][0]["state"] == "cancelled"  # a state change is pushed at once


async def test_event_streams_are_admin_only(tmp_path, http, make_peer):
    p = await make_peer(tmp_path / "tokenpeer", admin_token="s3cret")
    for path in ("/api/v1/crawl/events", "/api/v1/crawl/nosuchjob/events"):
        async with http.get(p.url + path) as r:
            await assert_json_error(r, 403, "forbidden")
        async with http.get(p.url + path, headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 403
    async with http.get(p.url + "/api/v1/crawl/nosuchjob/events", headers={"Authorization": "Bearer s3cret"}) as r:
        await assert_json_error(r, 404, "no_such_job")
    async with http.get(p.url + "/api/v1/crawl/events", headers={"Authorization": "Bearer s3cret"}) as r:
        assert r.status == 200 and await read_events(r, lambda ev: True) == [("message", {"jobs": []})]


async def test_open_streams_do_not_hold_up_shutdown(make_server, http):
    server = await make_server()
    p, app = server.peer, server.app
    responses = []
    try:
        for _ in range(3):
            r = await http.get(p.url + "/api/v1/crawl/events")
            await read_events(r, lambda ev: True)
            responses.append(r)
        assert len(app[SSE_STREAMS]) == 3
        # one client goes away: its stream notices and ends
        responses.pop().close()
        for _ in range(40):
            if len(app[SSE_STREAMS]) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(app[SSE_STREAMS]) == 2
    finally:
        started = time.monotonic()
        await p.stop()
        took = time.monotonic() - started
    assert took < 5, f"shutdown took {took:.1f} s with open event streams"
    for r in responses:  # the others were told why the stream ends
        assert await read_events(r, lambda ev: False, timeout=5) == [("bye", {"reason": "the peer is shutting down"})]
        r.close()
    assert len(app[SSE_STREAMS]) == 0


# -- the console in a browser ----------------------------------------------------------------


async def test_console_live_progress_over_sse_and_cancel(peer, page, tmp_path, static_site):
    n = 60
    url = (await static_site(linked_pages(n), delay=0.1)).url
    p = page.page
    await p.goto(peer.url + "/crawl")
    await expect(p.locator("#live")).to_have_attribute("data-mode", "sse")
    await p.evaluate("window.__sameDocument = true")  # gone if the page reloads
    # no polling: the page fetches nothing from /api/v1/crawl while events arrive
    polls: list[str] = []
    p.on("request", lambda req: req.url.endswith("/api/v1/crawl") and req.method == "GET" and polls.append(req.url))

    # start a crawl from a typed URL; the new row appears and counts up without a reload
    row, job_id = await submit_crawl_form(p, url + "/", depth=n + 5, max_pages=n, delay="0")
    values = await watch_fetched(p)
    assert values == sorted(values) and len(set(values)) >= 3 and values[-1] < n, values
    polls_during_crawl = len(polls)
    assert polls_during_crawl <= 1, polls  # one refresh right after submitting, then events only

    # cancel with the row's button; the state changes in place
    await row.get_by_role("button", name="Cancel").click()
    await expect(row.locator('[data-field="state"]')).to_have_text("cancelled")
    assert peer.jobs.get(job_id).state == "cancelled"
    await expect(row.get_by_role("button")).to_have_text(["Delete"])  # all a finished job offers
    fetched = int((await row.locator('[data-field="fetched"]').text_content()).replace(",", ""))
    assert fetched < n
    assert await p.evaluate("window.__sameDocument") is True

    # and a seed list file chosen in the form starts the next job
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(f"# two seeds\n{url}/p10\n{url}/p20\n")
    await p.fill("#depth", "0")
    await p.set_input_files("#seeds", str(seeds))
    await p.click("#crawl-submit")
    await expect(p.locator("#form-message")).to_contain_text("Started job")
    await expect(row).to_have_count(2)
    first = row.first  # newest first
    await expect(first.locator('[data-field="more"]')).to_have_text("+1 more")
    await expect(first.locator('[data-field="state"]')).to_have_text("done")
    await expect(first.locator('[data-field="indexed"]')).to_have_text("2")
    assert await p.evaluate("document.getElementById('seeds').value") == ""

    # a bad file: the peer's message is shown, nothing starts
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"# nothing here\n")
    await p.set_input_files("#seeds", str(bad))
    await p.click("#crawl-submit")
    await expect(p.locator("#form-message")).to_contain_text("bad.txt has no URLs")
    page.problems = [m for m in page.problems if "400" not in m]  # the refused upload's console line
    assert len(peer.jobs.list()) == 2

    # the cancelled job is deleted with its button: its row goes, the peer forgets it
    cancelled = p.locator(f'tbody.job[data-job-id="{job_id}"]')
    await cancelled.get_by_role("button", name="Delete").click()
    await expect(cancelled).to_have_count(0)
    await expect(row).to_have_count(1)
    assert peer.jobs.get(job_id) is None


async def test_console_falls_back_to_polling_without_event_source(peer, browser, tmp_path, static_site):  # noqa: F811
    url = (await static_site(linked_pages(20), delay=0.05)).url
    context = await browser.new_context()
    try:
        await context.add_init_script("delete window.EventSource")
        w = Watched(await context.new_page())
        p = w.page
        await p.goto(peer.url + "/crawl")
        await p.fill("#urls", url + "/")
        await p.fill("#depth", "30")
        await p.fill("#delay", "0")
        await p.click("#crawl-submit")
        row = p.locator("tbody.job[data-job-id]")
        await expect(p.locator("#live")).to_have_attribute("data-mode", "poll")
        await expect(row.locator('[data-field="state"]')).to_have_text("done")
        await expect(row.locator('[data-field="fetched"]')).to_have_text("20")
        w.check()
    finally:
        await context.close()


# -- the network page: ID ring and sparklines ----------------------------------------------


@pytest.fixture
async def three_peers(make_network):
    return await make_network(["alpha", "<b>beta</b>", "gamma"])


async def test_network_page_draws_the_id_ring_and_sparklines(three_peers, page):
    alpha, beta, gamma = three_peers
    assert len(await gamma.peers()) == 3
    gamma.history = History()  # forget the sample taken at start: the test decides
    p = page.page
    await p.goto(gamma.url + "/network")
    markers = p.locator("svg.id-ring [data-ring-peer]")
    await expect(markers).to_have_count(3)
    ids = {await m.get_attribute("data-ring-peer") for m in await markers.all()}
    assert ids == {x.peer_id for x in three_peers}
    shares = [float(await m.get_attribute("data-share")) for m in await markers.all()]
    assert sum(shares) == pytest.approx(100, abs=0.01) and all(s > 0 for s in shares)
    # this peer is highlighted, at the angle of its ID
    me = p.locator("svg.id-ring [data-self]")
    await expect(me).to_have_count(1)
    assert await me.get_attribute("data-ring-peer") == gamma.peer_id
    assert float(await me.get_attribute("data-angle")) == pytest.approx(int(gamma.peer_id, 16) / ID_SPACE * 360, abs=0.01)
    await expect(p.locator("svg.id-ring path.ring-arc")).to_have_count(3)
    await expect(p.locator("#ring-caption")).to_contain_text("numeric-ring approximation")
    legend = p.locator("#ring-legend li")
    await expect(legend).to_have_count(3)
    await expect(p.locator("#ring-legend li.self")).to_contain_text("gamma")
    await expect(p.locator("#ring-legend")).to_contain_text("<b>beta</b>")  # a name is text
    assert await p.evaluate("document.querySelectorAll('main b').length") == 0
    assert await p.evaluate("document.scripts.length") == 0  # drawn by the server, no script

    # no history yet: no lines
    await expect(p.locator("#history svg.sparkline")).to_have_count(0)
    await expect(p.locator("#history .spark-empty")).to_have_count(5)

    # two samples (the peer takes one every 10 s; the test calls the sampler itself)
    await gamma.sample_history()
    await gamma.sample_history()
    await p.reload()
    lines = p.locator("#history svg.sparkline polyline")
    await expect(lines).to_have_count(5)
    figures = await p.locator("#history li.spark").evaluate_all("els => els.map(e => e.dataset.figure)")
    assert figures == ["documents", "postings_held", "publish_sent", "publish_pending", "dht_contacts"]
    points = await lines.first.get_attribute("points")
    assert len(points.split()) == 2
    contacts = p.locator('#history li.spark[data-figure="dht_contacts"] .spark-value')
    await expect(contacts).to_have_text(str((await gamma.status())["dht"]["contacts"]))

    # a phone-sized window: nothing overflows sideways
    await p.set_viewport_size({"width": 320, "height": 640})
    await p.reload()
    await expect(markers.first).to_be_visible()
    assert await p.evaluate("document.documentElement.scrollWidth") <= 320


def test_id_ring_shares():
    quarter = ID_SPACE // 4
    peers = [{"peer_id": f"{i * quarter:040x}", "name": str(i), "self": i == 0} for i in range(4)]
    ring = id_ring(peers)
    assert [round(x["angle"]) for x in ring["peers"]] == [0, 90, 180, 270]
    assert [x["share_pct"] for x in ring["peers"]] == [25.0] * 4
    # uneven: the share is half of each gap to the neighbours
    ids = [0, ID_SPACE // 2, ID_SPACE // 2 + ID_SPACE // 8]
    ring = id_ring([{"peer_id": f"{i:040x}"} for i in ids])
    assert [x["share_pct"] for x in ring["peers"]] == [pytest.approx(v) for v in (18.75 + 25, 25 + 6.25, 6.25 + 18.75)]
    assert sum(x["share"] for x in ring["peers"]) == pytest.approx(1)
    # alone: everything, drawn as a full circle; bad IDs from other peers are left out
    ring = id_ring([{"peer_id": "ab" * 20, "self": True}, {"peer_id": "not-hex"}, {"peer_id": None}])
    assert len(ring["peers"]) == 1 and ring["peers"][0]["share_pct"] == 100.0
    assert ring["peers"][0]["arc"].count(" A ") == 2


def test_sparkline_and_history_bounds():
    assert sparkline([]) is None and sparkline([3]) is None
    line = sparkline([0, 5, 10])
    ys = [float(pt.split(",")[1]) for pt in line["points"].split()]
    assert ys[0] > ys[1] > ys[2]  # larger is higher up
    flat = sparkline([7, 7])
    assert len({pt.split(",")[1] for pt in flat["points"].split()}) == 1
    h = History(maxlen=5)
    for i in range(12):
        h.add({"documents": i, "bad": "x", "flag": True}, at=float(i))
    assert len(h) == 5 and h.series("documents") == [7, 8, 9, 10, 11] and h.series("bad") == []
    assert h.times() == [7.0, 8.0, 9.0, 10.0, 11.0]
