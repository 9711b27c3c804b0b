"""A full disk under the SQLite stores: the shard store (the holder's side) answers
p2p writes 503 ``storage_full`` with ``Retry-After``, never 500, and the publish
outbox (the origin's side) keeps what it could not write and sends it later; both
make the peer report ``degraded`` and recover by themselves when space returns,
and nothing acknowledged is lost. On a real small tmpfs (root only, like
tests/test_faults.py; skipped with a message elsewhere). The crawl frontier, whose
store fails a few writes, pauses the crawl and loses no page."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import forger
from peerutil import eventually, peer_config
from test_crawler import Run
from test_faults import _mount_tmpfs, fill
from yasearch.crawler.sqlite import StorageFullError
from yasearch.crawler.state import FrontierStore
from yasearch.identity import Identity
from yasearch.records import Document
from yasearch.server import PeerServer


@pytest.fixture
def small_data_dir(tmp_path: Path) -> Iterator[Path]:
    """A peer data directory on a 4 MiB tmpfs, its index on a roomy tmpfs of its own
    (the index's full disk is tests/test_faults.py's subject): filling the data
    directory fills the SQLite stores only."""
    data = tmp_path / "small"
    _mount_tmpfs(data, "4m")
    index = data / "index"
    try:
        _mount_tmpfs(index, "64m")
        yield data
    finally:
        subprocess.run(["umount", "-l", str(index)], check=False)
        subprocess.run(["umount", "-l", str(data)], check=False)


async def _state(peer) -> tuple[str, dict]:
    status = await peer.status()
    return status["state"], status["faults"]


async def test_a_full_shard_store_answers_503_degrades_and_recovers(small_data_dir: Path, http) -> None:
    server = PeerServer(peer_config(small_data_dir))
    peer = await server.start()
    key = Identity.generate()
    url = peer.url + "/p2p/v1/postings"

    def batch(prefix: str, n: int = 200) -> tuple[list[str], bytes]:
        terms = [f"{prefix}t{i}" for i in range(n)]
        return terms, forger.postings(key, [(t, hashlib.sha1(t.encode()).hexdigest(), 1, 0, 5) for t in terms])

    try:
        acknowledged: list[str] = []
        terms, body = batch("before")
        async with http.post(url, data=body) as r:
            assert r.status == 200 and (await r.json())["accepted"] == len(terms)
        acknowledged += terms

        filler = fill(small_data_dir)
        refused: tuple[list[str], bytes] | None = None
        for k in range(300):  # SQLite's free pages absorb a few batches before a write needs the disk
            terms, body = batch(f"full{k}x")
            async with http.post(url, data=body) as r:
                if r.status == 200:
                    acknowledged += terms
                    continue
                assert r.status == 503, await r.text()
                assert (await r.json())["error"]["code"] == "storage_full"
                assert int(r.headers["Retry-After"]) > 0
                refused = (terms, body)
                break
        assert refused is not None, "the disk never filled"

        state, faults = await _state(peer)
        assert state == "degraded" and "full" in faults["shard"]["error"]
        async with http.get(peer.url + "/api/v1/status") as r:
            assert (await r.json())["state"] == "degraded"
        async with http.get(peer.url + "/status") as r:
            html = await r.text()
        assert 'id="health"' in html and "shard cannot write" in html
        assert set((await peer.shard.df(refused[0])).values()) == {0}  # nothing of the refused batch

        filler.unlink()  # space returns; the sender retries the refused batch
        async with http.post(url, data=refused[1]) as r:
            assert r.status == 200 and (await r.json())["accepted"] == len(refused[0])
        async def healthy() -> bool:
            return await _state(peer) == ("ok", {})

        await eventually(healthy)
        held = await peer.shard.df(acknowledged + refused[0])
        assert set(held.values()) == {1}  # every acknowledged posting is there, and the retried batch
    finally:
        await server.stop()


def _doc(i: int) -> Document:
    url = f"http://example.org/page{i}"
    return Document(doc_id=hashlib.sha1(url.encode()).hexdigest(), url=url, host="example.org",
                    title=f"Page {i}", body=f"zebra quagga{i} " + " ".join(f"w{i}x{j}" for j in range(400)))


async def test_a_full_outbox_keeps_its_pages_degrades_and_publishes_when_space_returns(
    small_data_dir: Path, tmp_path: Path,
) -> None:
    origin_server = PeerServer(peer_config(small_data_dir, name="origin"))
    holder_server = PeerServer(peer_config(tmp_path / "holder", name="holder"))
    origin = await origin_server.start()
    holder = await holder_server.start()
    try:
        for p in (holder, origin):
            await p.join([("127.0.0.1", origin.port)])
            await p.join([("127.0.0.1", holder.port)])

        await origin.jobs.index_document(_doc(0))
        await origin.settle()
        assert (await holder.shard.df(["quagga0"]))["quagga0"] == 1  # published before the disk fills

        filler = fill(small_data_dir)
        for i in range(1, 6):
            await origin.jobs.index_document(_doc(i))
        await origin.index.flush()  # the index (on its own filesystem) commits; the outbox cannot

        async def degraded() -> bool:
            state, faults = await _state(origin)
            return state == "degraded" and "outbox" in faults

        await eventually(degraded)
        assert "full" in (await origin.status())["faults"]["outbox"]["error"]
        assert (await origin.status())["publish"]["pending"] >= 5  # kept (in memory), not dropped

        filler.unlink()  # space returns: the publisher writes the outbox and sends

        async def published() -> bool:
            held = await holder.shard.df([f"quagga{i}" for i in range(6)])
            return set(held.values()) == {1} and (await _state(origin))[0] == "ok"

        await eventually(published)
        await origin.settle()
        assert (await origin.status())["publish"]["pending"] == 0
    finally:
        await origin_server.stop()
        await holder_server.stop()


class FillingStore(FrontierStore):
    """A frontier store whose disk is full for ``full_writes`` writes after the seeds are in."""

    def __init__(self, path: Path, full_writes: int) -> None:
        super().__init__(path)
        self.full_writes = full_writes
        self.refused = 0
        self._seeded = False

    def _disk(self) -> None:
        if self._seeded and self.refused < self.full_writes:
            self.refused += 1
            raise StorageFullError("crawl-store", sqlite3.OperationalError("database or disk is full"))
        self._seeded = True

    async def add_urls(self, job_id, items):  # type: ignore[override]
        self._disk()
        return await super().add_urls(job_id, items)

    async def mark(self, job_id, items):  # type: ignore[override]
        self._disk()
        return await super().mark(job_id, items)


async def test_a_full_frontier_store_pauses_the_crawl_and_loses_no_page(make_site, http, tmp_path: Path) -> None:
    site = await make_site()
    site.html("/", links=["/a", "/b"])
    site.html("/a", links=["/c"])
    site.html("/b", links=["/c"])
    site.html("/c")
    store = FillingStore(tmp_path / "crawl.db", full_writes=3)
    try:
        run = await Run(store, http, [site.url("/")]).run(timeout=60)
        assert store.refused == 3
        assert sorted(run.paths(site)) == ["/", "/a", "/b", "/c"]
        states = await store.url_states("job")
        assert {u.removeprefix(site.base): s for u, (s, _r) in states.items()} == {p: "done" for p in ("/", "/a", "/b", "/c")}
    finally:
        await store.close()
