"""Crash safety: a peer killed with SIGKILL keeps its index and resumes its crawl."""

from __future__ import annotations

import asyncio

import aiohttp

from peerutil import PeerProcess, StaticSite, free_port, linked_pages

PAGES = 40


async def _job(http: aiohttp.ClientSession, peer: PeerProcess, job_id: str) -> dict:
    async with http.get(f"{peer.url}/api/v1/crawl/{job_id}") as r:
        assert r.status == 200
        return await r.json()


async def test_kill_9_keeps_index_and_resumes_unfinished_job(tmp_path):
    # A slow site (one page every ~50 ms with delay) so the kill lands mid-crawl.
    site = StaticSite(linked_pages(PAGES), delay=0.02)
    url = await site.start()
    peer = PeerProcess(tmp_path / "data", free_port())
    await peer.start()
    try:
        async with aiohttp.ClientSession() as http:
            body = {"urls": [url], "depth": PAGES, "max_pages": PAGES, "delay": 0.05}
            async with http.post(peer.url + "/api/v1/crawl", json=body) as r:
                assert r.status == 201
                job_id = (await r.json())["id"]
            # wait until some pages are durably indexed, then crash
            while (await _job(http, peer, job_id))["indexed"] < 8:
                await asyncio.sleep(0.05)
            peer.kill()
            hits_before = len([h for h in site.hits if h != "/robots.txt"])
            assert hits_before < PAGES, "the crawl finished before the kill; make the site slower"

            await peer.start()  # same data dir, same port
            job = await _job(http, peer, job_id)
            assert job["state"] in ("running", "done")
            async with http.get(peer.url + "/api/v1/search", params={"q": "uniqueword1", "scope": "local"}) as r:
                assert (await r.json())["total"] == 1  # indexed before the kill, still there
            while job["state"] == "running":
                await asyncio.sleep(0.1)
                job = await _job(http, peer, job_id)
            assert job["state"] == "done"
            async with http.get(peer.url + "/api/v1/search", params={"q": "zebras", "limit": "100"}) as r:
                data = await r.json()
            # every page indexed exactly once
            assert data["total"] == PAGES
            assert len({hit["url"] for hit in data["results"]}) == PAGES
            # pages committed before the kill were not fetched again: only those in flight were
            page_hits = [h for h in site.hits if h != "/robots.txt"]
            refetched = len(page_hits) - len(set(page_hits))
            assert refetched <= 16, f"{refetched} pages fetched twice"
            async with http.get(peer.url + "/api/v1/status") as r:
                assert (await r.json())["documents"] == PAGES
        assert peer.terminate() == 0  # a polite stop exits cleanly too
    finally:
        peer.kill()
        await site.stop()
