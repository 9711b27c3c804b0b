"""Stopping: `yasearch demo` and `yasearch peer` end every process they started and
remove their temporary data on SIGTERM/SIGINT; a killed peer's parse workers do not
outlive it; the demo's crawl stays on its loopback site."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from procutil import session, session_processes, wait_gone, wait_output
from yasearch.crawler.urls import UrlFilter
from yasearch.demo import crawl_specs


def test_the_single_peer_demo_follows_no_link_off_its_site() -> None:
    base = "http://127.0.0.1:40539/"
    (spec,) = crawl_specs(base, [], 300, 1)
    links = UrlFilter(spec.allow, spec.deny)
    assert links.accepts(base + "json.html") and links.accepts(base)
    assert not links.accepts("https://docs.python.org/3.11/library/json.html")
    assert not links.accepts("http://127.0.0.1:8080/")  # another loopback site is not its own either


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_the_demo_with_every_child_and_its_temp_dir(tmp_path: Path, sig: signal.Signals) -> None:
    log = tmp_path / "demo.log"
    with session("demo", "--port", "0", "--pages", "6", tmp=tmp_path, log=log) as proc:
        out = await wait_output(proc, log, "Press Ctrl-C to stop.")
        assert "failed 0" in out, out  # nothing off the loopback site was tried
        data = Path(out.split("Demo data in ", 1)[1].split(" (", 1)[0])
        assert data.is_dir() and data.parent == tmp_path
        assert len(session_processes(proc.pid)) >= 3, session_processes(proc.pid)  # demo, pydoc, workers...
        proc.send_signal(sig)
        assert await asyncio.to_thread(proc.wait, 10) == 0, log.read_text()
        assert await wait_gone(proc.pid, 10) == []
        assert not data.exists()


async def test_a_killed_demo_leaves_no_worker_forkserver_or_tracker(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    with session("demo", "--port", "0", "--pages", "6", tmp=tmp_path, log=log) as proc:
        await wait_output(proc, log, "Press Ctrl-C to stop.")
        proc.kill()  # no clean-up code runs in the demo itself
        proc.wait()
        assert await wait_gone(proc.pid, 10) == []


async def test_sigterm_stops_a_peer_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "peer.log"
    args = ("peer", "--port", "0", "--data-dir", str(tmp_path / "data"), "--no-seeds")
    with session(*args, tmp=tmp_path, log=log) as proc:
        await wait_output(proc, log, "up; web UI at")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0, log.read_text()
        assert await wait_gone(proc.pid, 10) == []
        assert "Traceback" not in log.read_text()
