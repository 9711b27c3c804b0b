"""A network of peers as separate processes: `yasearch peer --bootstrap ...` for real.

Three `yasearch peer` processes on loopback join through the first one. Peer A
crawls a small site; peer C, which crawled nothing, finds its pages with a
global search. Then peer B is killed with SIGKILL and restarted with no
--bootstrap: it keeps its node ID and its shard, re-joins from the neighbours it
saved, and answers global searches again.

Everything waits on real state (HTTP status figures, search answers) with a
deadline; nothing sleeps for a fixed time and no timing is asserted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from peerutil import PeerProcess, StaticSite, free_port, linked_pages

PAGES = 8
DEADLINE = 60.0


async def get(http: aiohttp.ClientSession, url: str, **params: str) -> dict[str, Any]:
    async with http.get(url, params=params or None) as r:
        assert r.status == 200, f"{url}: {r.status} {await r.text()}"
        return await r.json()


async def status(http: aiohttp.ClientSession, peer: PeerProcess) -> dict[str, Any]:
    return await get(http, peer.url + "/api/v1/status")


async def search(http: aiohttp.ClientSession, peer: PeerProcess, q: str, scope: str = "global") -> dict[str, Any]:
    return await get(http, peer.url + "/api/v1/search", q=q, scope=scope, limit="100")


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = DEADLINE) -> None:
    """Poll real state until ``check()`` holds; fail with ``what`` after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"not reached in {timeout:.0f} s: {what}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def site() -> AsyncIterator[StaticSite]:
    s = StaticSite(linked_pages(PAGES))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def test_peer_processes_share_an_index_and_a_killed_peer_rejoins(tmp_path: Path, site: StaticSite) -> None:
    port_a = free_port()
    boot = ("--bootstrap", f"127.0.0.1:{port_a}")
    a = PeerProcess(tmp_path / "a", port_a, "--name", "A")
    b = PeerProcess(tmp_path / "b", free_port(), "--name", "B", *boot)
    c = PeerProcess(tmp_path / "c", free_port(), "--name", "C", *boot)
    running = [a, b, c]
    try:
        for p in running:
            await p.start()
        async with aiohttp.ClientSession() as http:

            async def everybody_knows_everybody() -> bool:
                return min([(await status(http, p))["peers_known"] for p in (a, b, c)]) >= 2

            await eventually(everybody_knows_everybody, "three peers know each other")

            # A crawls; nobody else does
            body = {"urls": [site.url + "/"], "depth": PAGES, "max_pages": PAGES, "delay": 0}
            async with http.post(a.url + "/api/v1/crawl", json=body) as r:
                assert r.status == 201, await r.text()
                job_id = (await r.json())["id"]

            async def crawled() -> bool:
                return (await get(http, f"{a.url}/api/v1/crawl/{job_id}"))["state"] != "running"

            await eventually(crawled, "the crawl on A ends")
            job = await get(http, f"{a.url}/api/v1/crawl/{job_id}")
            assert job["state"] == "done" and job["indexed"] == PAGES, job

            async def published() -> bool:
                pub = (await status(http, a))["publish"]
                return pub["pending"] == 0 and pub.get("published_docs", PAGES) >= PAGES

            await eventually(published, "A publishes its postings")

            # C crawled nothing, yet finds A's pages
            c_status = await status(http, c)
            assert c_status["documents"] == 0
            assert (await search(http, c, "zebras", scope="local"))["total"] == 0
            found = await search(http, c, "zebras")
            assert found["total"] == PAGES, found
            want = {site.url + ("/" if i == 0 else f"/p{i}") for i in range(PAGES)}
            assert {hit["url"] for hit in found["results"]} == want
            assert found["peers"]["answered"] >= 1
            one = await search(http, c, "uniqueword3")
            assert [hit["url"] for hit in one["results"]] == [site.url + "/p3"], one

            # B holds a share of the postings (r = 3 >= peers: a full copy)
            before = await status(http, b)
            assert before["documents"] == 0 and before["postings_held"] > 0, before

            # crash B; restart it with no --bootstrap at all
            b.kill()
            running.remove(b)
            b = PeerProcess(tmp_path / "b", b.port, "--name", "B")
            await b.start()
            running.append(b)
            after = await status(http, b)
            assert after["peer_id"] == before["peer_id"]
            assert after["postings_held"] == before["postings_held"]

            async def rejoined() -> bool:
                return (await status(http, b))["peers_known"] >= 2

            await eventually(rejoined, "B re-joins from its saved neighbours")
            again = await search(http, b, "zebras")
            assert {hit["url"] for hit in again["results"]} == want, again
            assert (await search(http, b, "uniqueword5"))["total"] == 1

            # A and C learn that B is back, and still find everything
            async def all_back() -> bool:
                return min([(await status(http, p))["peers_known"] for p in (a, c)]) >= 2

            await eventually(all_back, "A and C know B again")
            assert {hit["url"] for hit in (await search(http, c, "zebras"))["results"]} == want
        for p in list(running):
            running.remove(p)
            assert p.terminate() == 0, p.log.read_text()[-2000:]
    finally:
        for p in running:
            p.kill()
