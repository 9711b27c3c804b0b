"""Errors an operator can act on: every startup failure is one line naming the path
and the fix (non-zero exit, no traceback; -v shows it), a crawl whose every fetch
failed ends 'failed' with its reasons, and an offline peer says so."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from peerutil import PeerProcess, free_port
from test_cli import Run, assert_friendly_failure, yasearch
from yasearch.api import parse_crawl_spec


def closed_port_url() -> str:
    """A loopback URL nothing listens on: every fetch fails with 'connection refused'."""
    return f"http://127.0.0.1:{free_port()}/"


async def peer_run(data_dir: Path, *extra: str) -> Run:
    return await yasearch("peer", "--port", "0", "--no-seeds", "--data-dir", str(data_dir), *extra, timeout=30)


def one_line(run: Run, *phrases: str) -> None:
    assert_friendly_failure(run, *phrases)
    assert len(run.err.strip().splitlines()) == 1, run


async def test_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    one_line(await peer_run(tmp_path / "data"), f"data dir {tmp_path / 'data'} is a file", "--data-dir")


async def test_a_data_dir_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    one_line(await peer_run(tmp_path / "data" / "sub"), f"cannot create data dir {tmp_path / 'data' / 'sub'}", "--data-dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
async def test_a_data_dir_without_permission(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir(mode=0o500)
    one_line(await peer_run(tmp_path / "ro"), f"data dir {tmp_path / 'ro'} is not writable", "chown")


async def test_a_data_dir_on_a_read_only_filesystem(tmp_path: Path) -> None:
    """Root ignores permission bits but not a read-only mount: a real read-only tmpfs."""
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only filesystem needs root")
    ro = tmp_path / "ro"
    ro.mkdir()
    done = await asyncio.create_subprocess_exec("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro))
    if await done.wait() != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        one_line(await peer_run(ro), f"data dir {ro} is not writable", "Read-only file system")
    finally:
        umount = await asyncio.create_subprocess_exec("umount", str(ro))
        await umount.wait()


async def test_a_damaged_identity(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "node_key.pem").write_text("garbage")
    one_line(await peer_run(tmp_path / "data"), str(tmp_path / "data" / "node_key.pem"), "is damaged; move it away")


@pytest.mark.parametrize("name", ["shard.db", "crawl.db", "publish.db"])
async def test_a_damaged_database(tmp_path: Path, name: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / name).write_bytes(os.urandom(8192))
    run = await peer_run(tmp_path / "data")
    one_line(run, str(tmp_path / "data" / name), "is damaged", "move it away")
    verbose = await yasearch("-v", "peer", "--port", "0", "--no-seeds", "--data-dir", str(tmp_path / "data"))
    assert verbose.rc != 0 and "is damaged" in verbose.err, verbose


async def test_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        run = await yasearch("peer", "--port", str(port), "--no-seeds", "--data-dir", str(tmp_path / "d"), timeout=30)
    one_line(run, f"cannot listen on 127.0.0.1:{port}", "choose another --port")


async def test_a_crawl_whose_every_fetch_failed_is_failed(make_peer) -> None:
    peer = await make_peer()
    job = await peer.start_crawl(parse_crawl_spec({"urls": [closed_port_url(), closed_port_url()], "delay": 0}))
    await peer.jobs.wait(job.id)
    d = job.to_dict()
    assert d["state"] == "failed", d
    assert d["error"].startswith("every fetch failed: ") and d["failures"], d


async def test_yasearch_crawl_exits_non_zero_when_nothing_was_indexed(tmp_path: Path) -> None:
    p = PeerProcess(tmp_path / "data", free_port())
    await p.start()
    try:
        run = await yasearch("crawl", closed_port_url(), "--delay", "0", "--peer", p.url)
        assert_friendly_failure(run, "ended as 'failed'", "every fetch failed")
        assert "failed" in run.out.strip().splitlines()[-1], run
    finally:
        assert p.terminate() == 0


async def test_an_offline_peer_says_its_seeds_are_unreachable(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(f"{closed_port_url()}\n{closed_port_url()}\n")
    p = PeerProcess(tmp_path / "data", free_port())
    p.extra = ("--seeds", str(seeds))
    await p.start()
    try:
        for _ in range(100):
            if "seed URLs are unreachable" in p.log.read_text():
                break
            await asyncio.sleep(0.2)
        assert "seed URLs are unreachable" in p.log.read_text() and "offline" in p.log.read_text()
    finally:
        assert p.terminate() == 0


async def test_the_demo_says_the_same_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "demo").write_text("")
    run = await yasearch("demo", "--port", "0", "--pages", "2", "--data-dir", str(tmp_path / "demo"), timeout=60)
    one_line(run, f"data dir {tmp_path / 'demo'} is a file")
