"""Faults of the disk: a full disk makes the peer report ``degraded`` and it recovers
by itself when space returns (tested on a real small filesystem: a tmpfs mounted
on the index directory, which needs root; skipped with a message elsewhere), and an
index directory with segments but no TOC refuses to start and is never wiped."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from peerutil import ROOT, eventually, peer_config
from yasearch.index import IndexDegradedError, IndexDirectoryError, LocalIndex
from yasearch.records import Document
from yasearch.server import PeerServer


def _mount_tmpfs(path: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("a small real filesystem needs root (mount -t tmpfs); not root here")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs at ``tmp_path/peer/index`` (the index of a peer on ``tmp_path/peer``)."""
    path = tmp_path / "peer" / "index"
    _mount_tmpfs(path, "8m")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; returns it (delete it to make room)."""
    filler = directory / "filler.bin"
    chunk = b"\xff" * 65536
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        while True:  # the last few bytes
            try:
                f.write(b"\xff" * 512)
            except OSError:
                break
    return filler


def page(i: int) -> Document:
    words = " ".join(f"word{i}x{j}" for j in range(3000))
    return Document(doc_id=hashlib.sha1(f"p{i}".encode()).hexdigest(), url=f"http://example.org/{i}",
                    host="example.org", title=f"Page {i} zebra", body=f"zebra {words}")


async def test_a_full_disk_degrades_the_peer_which_recovers_when_space_returns(small_fs: Path, tmp_path: Path, http) -> None:
    server = PeerServer(peer_config(tmp_path / "peer"))
    peer = await server.start()
    try:
        await peer.index.add(page(0))
        await peer.index.flush()
        filler = fill(small_fs)
        for i in range(1, 4):
            await peer.index.add(page(i))

        async def degraded() -> bool:
            return (await peer.status())["state"] == "degraded"

        await eventually(degraded)
        status = await peer.status()
        assert "Errno 28" in status["faults"]["index"]["error"] or "space" in status["faults"]["index"]["error"].lower()
        async with http.get(peer.url + "/api/v1/status") as r:
            assert (await r.json())["state"] == "degraded"
        async with http.get(peer.url + "/status") as r:
            html = await r.text()
        assert 'id="health"' in html and "Degraded" in html and "index cannot write" in html
        with pytest.raises(IndexDegradedError):  # a call that needs a commit fails at once, not hangs
            await peer.index.flush()
        assert peer.index.doc_count() == 1

        filler.unlink()  # space returns

        async def healthy() -> bool:
            return (await peer.status())["state"] == "ok"

        await eventually(healthy)
        await peer.index.flush()
        assert peer.index.doc_count() == 4  # nothing queued while degraded was lost
        hits = (await peer.search("zebra", scope="local", limit=10)).results
        assert len(hits) == 4
        status = await peer.status()
        assert status["faults"] == {} and status["index"]["recoveries"] == 1
        async with http.get(peer.url + "/status") as r:
            assert 'id="health"' not in await r.text()
    finally:
        await server.stop()


@pytest.mark.parametrize("writer_process", [False, True], ids=["writer-thread", "writer-process"])
async def test_the_index_survives_a_full_disk_and_a_restart(small_fs: Path, writer_process: bool) -> None:
    """Documents added while the disk is full are committed after it frees, and the
    failed commits left no files behind that keep the disk full (the writer process
    hands its faults to the index as the writer thread does)."""
    ix = LocalIndex(small_fs, commit_interval=0.05, commit_batch=2, writer_process=writer_process)
    await ix.open()
    try:
        filler = fill(small_fs)
        for i in range(6):
            await ix.add(page(i))

        async def degraded() -> bool:
            return ix.fault is not None

        await eventually(degraded)
        left = [n for n in os.listdir(small_fs) if n not in ("filler.bin", "MAIN_WRITELOCK") and not n.startswith("_MAIN_")]
        filler.unlink()

        async def healthy() -> bool:
            return ix.fault is None

        await eventually(healthy)
        await ix.flush()
        assert ix.doc_count() == 6
        assert all(not n.endswith(".tmp") for n in left), left
    finally:
        await ix.close()
    reopened = LocalIndex(small_fs)
    await reopened.open()
    try:
        assert reopened.doc_count() == 6
    finally:
        await reopened.close()


async def _start_peer_command(data_dir: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``yasearch peer`` on ``data_dir`` as a subprocess: (the process, its non-empty stderr lines)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "yasearch", "peer", "--port", "0", "--data-dir", str(data_dir), "--no-seeds"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )
    return done, [ln for ln in done.stderr.splitlines() if ln.strip()]


async def _index_without_toc(directory: Path) -> dict[str, str]:
    ix = LocalIndex(directory)
    await ix.open()
    for i in range(3):
        await ix.add(page(i))
    await ix.flush()
    await ix.close()
    for toc in directory.glob("_MAIN_*.toc"):
        toc.unlink()
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir() if p.is_file()}


async def test_an_index_with_segments_but_no_toc_refuses_to_start_and_is_not_wiped(tmp_path: Path) -> None:
    before = await _index_without_toc(tmp_path / "peer" / "index")
    assert any(n.endswith(".seg") for n in before)
    server = PeerServer(peer_config(tmp_path / "peer"))
    with pytest.raises(IndexDirectoryError) as err:
        await server.start()
    message = str(err.value)
    assert "\n" not in message and "no table of contents" in message and "refusing to start" in message
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "peer" / "index").iterdir() if p.is_file()}
    assert after == before


async def test_the_peer_command_explains_a_missing_toc_in_one_line(tmp_path: Path) -> None:
    before = await _index_without_toc(tmp_path / "data" / "index")
    done, lines = await _start_peer_command(tmp_path / "data")
    assert done.returncode == 1
    assert len(lines) == 1 and "no table of contents" in lines[0], done.stderr
    assert {p.name for p in (tmp_path / "data" / "index").iterdir() if p.is_file()} == set(before)


def test_an_empty_or_new_index_directory_still_opens(tmp_path: Path) -> None:
    async def run() -> None:
        for d in (tmp_path / "new", tmp_path / "empty"):
            if d.name == "empty":
                d.mkdir()
            ix = LocalIndex(d)
            await ix.open()
            await ix.close()

    asyncio.run(run())




async def test_a_damaged_table_of_contents_is_one_line_naming_the_index_and_the_fix(tmp_path: Path) -> None:
    """A damaged index is never opened as a new empty one (which would delete its segments at
    the first commit): the peer refuses with the path and what to do, and touches nothing."""
    directory = tmp_path / "data" / "index"
    ix = LocalIndex(directory)
    await ix.open()
    await ix.close()
    (toc,) = directory.glob("_MAIN_*.toc")
    toc.write_bytes(b"garbage")
    done, lines = await _start_peer_command(tmp_path / "data")
    assert done.returncode == 1
    assert len(lines) == 1 and str(directory) in lines[0] and "cannot be read" in lines[0], done.stderr
    assert "move the directory away" in lines[0] and toc.read_bytes() == b"garbage"
