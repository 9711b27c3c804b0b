"""The JSON API: answers, validation errors (400), admin rule (403), size limit (413)."""

from __future__ import annotations

import aiohttp
import pytest

from peerutil import StaticSite, linked_pages, peer_config
from yasearch.peer import Peer


@pytest.fixture
async def peer(tmp_path):
    p = Peer(peer_config(tmp_path / "peer"))
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s


async def _error(resp: aiohttp.ClientResponse, status: int) -> dict:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] and body["error"]["message"]
    return body["error"]


async def test_crawl_then_search_over_http(peer, http):
    site = StaticSite(linked_pages(5))
    url = await site.start()
    try:
        async with http.post(peer.url + "/api/v1/crawl", json={"urls": [url], "depth": 5, "max_pages": 10}) as r:
            assert r.status == 201
            job_id = (await r.json())["id"]
        await peer.jobs.wait(job_id)
        async with http.get(f"{peer.url}/api/v1/crawl/{job_id}") as r:
            job = await r.json()
        assert job["state"] == "done"
        assert job["fetched"] == 5 and job["indexed"] == 5 and job["failed"] == 0
        async with http.get(peer.url + "/api/v1/search", params={"q": "uniqueword3", "scope": "local"}) as r:
            data = await r.json()
        assert data["total"] == 1
        hit = data["results"][0]
        assert hit["url"] == url + "/p3"
        assert "uniqueword3" in hit["title"].lower()
        assert hit["origin"] == "local"
        assert {"query", "total", "took_ms", "results", "peers"} <= set(data)
        async with http.get(peer.url + "/api/v1/search", params={"q": "zebras", "limit": "2", "offset": "2"}) as r:
            data = await r.json()
        assert data["total"] == 5 and len(data["results"]) == 2
        async with http.get(peer.url + "/api/v1/status") as r:
            status = await r.json()
        assert status["documents"] == 5 and status["peer_id"] == peer.peer_id
        assert {"postings_held", "peers_known", "crawl", "publish"} <= set(status)
    finally:
        await site.stop()


@pytest.mark.parametrize(
    "params, code",
    [
        ({}, "missing_query"),
        ({"q": "   "}, "missing_query"),
        ({"q": "x" * 600}, "query_too_long"),
        ({"q": "a", "limit": "many"}, "bad_parameter"),
        ({"q": "a", "limit": "1000"}, "bad_parameter"),
        ({"q": "a", "offset": "-1"}, "bad_parameter"),
        ({"q": "a", "scope": "universe"}, "bad_parameter"),
        ({"q": "!!! ???"}, "bad_query"),
    ],
)
async def test_search_rejects_bad_parameters(peer, http, params, code):
    async with http.get(peer.url + "/api/v1/search", params=params) as r:
        assert (await _error(r, 400))["code"] == code


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"urls": []}, "urls"),
        ({"urls": ["ftp://example.org/"]}, "ftp://example.org/"),
        ({"urls": ["not a url"]}, "not a url"),
        ({"urls": [42]}, "42"),
        ({"urls": ["http://127.0.0.1:1/"], "depth": -1}, "depth"),
        ({"urls": ["http://127.0.0.1:1/"], "depth": "deep"}, "depth"),
        ({"urls": ["http://127.0.0.1:1/"], "max_pages": 0}, "max_pages"),
        ({"urls": ["http://127.0.0.1:1/"], "delay": -2}, "delay"),
        ({"urls": ["http://127.0.0.1:1/"], "allow": ["(unclosed"]}, "allow"),
        ({"urls": ["http://127.0.0.1:1/"], "colour": "red"}, "colour"),
        (["http://127.0.0.1:1/"], "JSON object"),
    ],
)
async def test_crawl_rejects_bad_bodies(peer, http, body, fragment):
    async with http.post(peer.url + "/api/v1/crawl", json=body) as r:
        err = await _error(r, 400)
    assert fragment in err["message"]
    assert peer.jobs.list() == []  # nothing was started


async def test_crawl_rejects_non_json(peer, http):
    async with http.post(peer.url + "/api/v1/crawl", data=b"{not json", headers={"Content-Type": "application/json"}) as r:
        assert (await _error(r, 400))["code"] == "bad_json"


async def test_oversized_body_gets_413(peer, http):
    big = b'{"urls": ["' + b"a" * (2 * 1024 * 1024) + b'"]}'
    async with http.post(peer.url + "/api/v1/crawl", data=big, headers={"Content-Type": "application/json"}) as r:
        err = await _error(r, 413)
    assert "limit" in err["message"]
    assert peer.jobs.list() == []


async def test_unknown_job_and_route_are_json_404(peer, http):
    async with http.get(peer.url + "/api/v1/crawl/nope") as r:
        assert (await _error(r, 404))["code"] == "no_such_job"
    async with http.get(peer.url + "/api/v1/nothing-here") as r:
        await _error(r, 404)


async def test_admin_token_required_when_configured(tmp_path, http):
    p = Peer(peer_config(tmp_path / "peer", admin_token="s3cret"))
    await p.start()
    try:
        body = {"urls": ["http://127.0.0.1:1/"], "max_pages": 1}
        async with http.post(p.url + "/api/v1/crawl", json=body) as r:
            err = await _error(r, 403)
        assert "Bearer" in err["message"]
        async with http.post(p.url + "/api/v1/crawl", json=body, headers={"Authorization": "Bearer wrong"}) as r:
            await _error(r, 403)
        async with http.get(p.url + "/api/v1/crawl") as r:
            await _error(r, 403)
        async with http.post(p.url + "/api/v1/crawl", json=body, headers={"Authorization": "Bearer s3cret"}) as r:
            assert r.status == 201
        # anyone may search and read the status
        async with http.get(p.url + "/api/v1/status") as r:
            assert r.status == 200
    finally:
        await p.stop()


def test_admin_rule_without_token_is_loopback_only():
    from yasearch.auth import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("127.3.4.5") and is_loopback("::1")
    assert not is_loopback("192.168.1.10") and not is_loopback("10.0.0.1") and not is_loopback(None)
    assert not is_loopback("not-an-ip")


async def test_cross_site_browser_posts_are_refused(peer, http):
    """A foreign web page must not be able to start crawls on the user's loopback peer."""
    body = '{"urls": ["http://127.0.0.1:9/"]}'
    headers = {"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
    async with http.post(peer.url + "/api/v1/crawl", data=body, headers=headers) as r:
        err = await _error(r, 403)
    assert err["code"] == "cross_site"
    async with http.post(peer.url + "/api/v1/crawl", data=body, headers={"Origin": "https://evil.example"}) as r:
        await _error(r, 403)
    assert peer.jobs.list() == []
