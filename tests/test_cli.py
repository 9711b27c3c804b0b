"""The `yasearch` command line as a user runs it: real processes, stdout a pipe (no TTY).

`yasearch peer` runs as a child process (tests/peerutil.PeerProcess); the other
commands run as `python -m yasearch ...` against it. Child processes are started
with asyncio so the test web site, served by this test's event loop, keeps
answering while a command runs.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from peerutil import ROOT, PeerProcess, StaticSite, free_port, linked_pages
from yasearch.cli import _clean
from yasearch.progress import ProgressLine, render, summary


@dataclass
class Run:
    rc: int
    out: str
    err: str

    def __str__(self) -> str:  # shown when an assertion fails
        return f"rc={self.rc}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


async def yasearch(*args: str, timeout: float = 60.0) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YASEARCH_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "yasearch", *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Run(proc.returncode or 0, out.decode(), err.decode())


def assert_friendly_failure(run: Run, *phrases: str) -> None:
    assert run.rc != 0, run
    assert "Traceback" not in run.err + run.out, run
    for phrase in phrases:
        assert phrase in run.err, run


@pytest.fixture
async def peer(tmp_path: Path) -> AsyncIterator[PeerProcess]:
    p = PeerProcess(tmp_path / "data", free_port())
    await p.start()
    try:
        yield p
    finally:
        assert p.terminate() == 0, p.log.read_text()[-2000:]


@pytest.fixture
async def site() -> AsyncIterator[StaticSite]:
    s = StaticSite(linked_pages(6))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def test_crawl_search_status(peer: PeerProcess, site: StaticSite) -> None:
    crawl = await yasearch(
        "crawl", site.url, "--depth", "10", "--max-pages", "5", "--delay", "0", "--peer", peer.url
    )
    assert crawl.rc == 0, crawl
    # Progress goes to stderr as plain lines (stderr is a pipe here, not a TTY).
    progress = [line for line in crawl.err.splitlines() if line.startswith("[")]
    assert progress, crawl
    assert "\r" not in crawl.err and "\x1b" not in crawl.err
    assert "done" in progress[-1] and "fetched 5/5" in progress[-1]
    # The summary is the last line on stdout.
    last = crawl.out.strip().splitlines()[-1]
    assert "done" in last and "fetched 5" in last and "indexed 5" in last and "failed 0" in last, crawl

    search = await yasearch("search", "zebras", "--peer", peer.url)
    assert search.rc == 0, search
    assert search.out.startswith("5 results in "), search
    for i in range(5):
        assert f"Page {i} uniqueword{i}" in search.out
        assert (site.url + ("/" if i == 0 else f"/p{i}")) in search.out
    assert site.url + "/p5" not in search.out  # max-pages 5

    one = await yasearch("search", "uniqueword3", "zebras", "--peer", peer.url, "--local")
    # one page has both words: fewer than 10, so pages with one of them follow, and the CLI says so
    assert one.rc == 0 and one.out.startswith("5 results"), one
    assert "too few pages have every word" in one.out.splitlines()[0]
    assert f"1. Page 3 uniqueword3\n   {site.url}/p3\n" in one.out

    as_json = await yasearch("search", "zebras", "--json", "--limit", "2", "--offset", "1", "--peer", peer.url)
    assert as_json.rc == 0, as_json
    data = json.loads(as_json.out)
    assert {"query", "total", "took_ms", "results", "peers"} <= set(data)
    assert data["query"] == "zebras" and data["total"] == 5 and data["offset"] == 1
    assert len(data["results"]) == 2
    assert {"url", "title", "snippet", "score", "origin"} <= set(data["results"][0])
    assert "<mark>zebras</mark>" in data["results"][0]["snippet_html"]

    status = await yasearch("status", "--peer", peer.url)
    assert status.rc == 0, status
    lines = dict(line.split(None, 1) for line in status.out.splitlines() if line.strip())
    assert lines["documents"] == "5"
    assert "fetched 5" in lines["crawl"] and "indexed 5" in lines["crawl"]
    status_json = json.loads((await yasearch("status", "--json", "--peer", peer.url)).out)
    assert status_json["documents"] == 5 and status_json["crawl"]["jobs"] == 1

    # Bad input gets the peer's message, not a traceback.
    stop = await yasearch("search", "!!!", "???", "--peer", peer.url)
    assert_friendly_failure(stop, "yasearch search:", "no searchable words")
    bad_url = await yasearch("crawl", "not-a-url", "--peer", peer.url)
    assert_friendly_failure(bad_url, "yasearch crawl:", "not an absolute http(s) URL")
    # A second peer on the same port says what to do.
    busy = await yasearch("peer", "--port", str(peer.port), "--data-dir", str(peer.data_dir.parent / "other"), "--no-seeds")
    assert_friendly_failure(busy, "choose another --port")


async def test_crawl_no_wait_prints_job_id(peer: PeerProcess, site: StaticSite) -> None:
    run = await yasearch("crawl", site.url, "--depth", "0", "--delay", "0", "--no-wait", "--peer", peer.url)
    assert run.rc == 0, run
    job_id = run.out.strip()
    assert job_id and " " not in job_id
    # The job exists on the peer and finishes on its own.
    for _ in range(200):
        status = json.loads((await yasearch("status", "--json", "--peer", peer.url)).out)
        if status["crawl"]["running"] == 0:
            break
        await asyncio.sleep(0.05)
    assert status["crawl"]["jobs"] == 1 and status["documents"] == 1


async def test_errors_without_a_peer_are_friendly() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for args in (["search", "foo"], ["status"], ["crawl", "http://example.com/"]):
        run = await yasearch(*args, "--peer", url)
        assert_friendly_failure(run, f"cannot reach a peer at {url}", "yasearch peer")
    run = await yasearch("search", "foo", "--peer", "nonsense")
    assert_friendly_failure(run, "not a peer URL")
    run = await yasearch("search")  # argparse usage error
    assert run.rc == 2 and "usage:" in run.err and "Traceback" not in run.err


async def test_search_against_something_that_is_not_a_peer(site: StaticSite) -> None:
    run = await yasearch("search", "foo", "--peer", site.url)  # 404 from a plain web site
    assert_friendly_failure(run, "answered 404")
    site.pages["/api/v1/status"] = "<html>hello</html>"
    run = await yasearch("status", "--peer", site.url)
    assert_friendly_failure(run, "is it a yasearch peer?")


async def test_demo_runs_offline_and_exits_after_crawl(tmp_path: Path) -> None:
    run = await yasearch("demo", "--port", "0", "--pages", "8", "--exit-after-crawl", "--data-dir", str(tmp_path / "demo"))
    assert run.rc == 0, run
    assert "Traceback" not in run.err
    assert "Serving Python's documentation at http://127.0.0.1:" in run.out
    assert "web UI at http://127.0.0.1:" in run.out and ":0/" not in run.out
    assert "fetched 8" in run.out and "indexed 8" in run.out, run
    assert "Indexed 8 pages" in run.out
    progress = [line for line in run.err.splitlines() if line.startswith("[")]
    assert progress and "done" in progress[-1], run
    assert (tmp_path / "demo" / "index").is_dir()



async def test_demo_network_spreads_the_crawl_and_searches_globally(tmp_path: Path) -> None:
    run = await yasearch(
        "demo", "--peers", "3", "--port", "0", "--pages", "12", "--exit-after-crawl", "--data-dir", str(tmp_path / "demo"),
        timeout=120.0,
    )
    assert run.rc == 0, run
    assert "Traceback" not in run.err, run
    ups = re.findall(r"Peer (demo-\d) is up; web UI at (http://127\.0\.0\.1:(\d+))/", run.out)
    assert [name for name, _, _ in ups] == ["demo-1", "demo-2", "demo-3"], run
    assert len({port for _, _, port in ups}) == 3 and "0" not in {port for _, _, port in ups}
    assert "fetched 12" in run.out and "indexed 12" in run.out, run
    # every peer crawled its own share, and the shares add up
    per_peer = {name: int(n) for name, n in re.findall(r"^  (demo-\d): indexed (\d+) pages$", run.out, re.M)}
    assert set(per_peer) == {"demo-1", "demo-2", "demo-3"} and all(per_peer.values()), run
    assert sum(per_peer.values()) == 12, run
    # the first peer sees the whole network, and its global search finds the pages all peers crawled
    assert "network: 3 peers, 12 documents" in run.out, run
    found = re.search(r"global search on demo-1 for 'pydoc': (\d+) results \(peers answered (\d+)\)", run.out)
    assert found and int(found.group(1)) == 12 and int(found.group(2)) >= 1, run
    assert f"Web UI: {ups[0][1]}/" in run.out and "global" in run.out
    progress = [line for line in run.err.splitlines() if line.startswith("[")]
    assert progress and "done" in progress[-1] and "fetched 12/12" in progress[-1], run
    for i in (1, 2, 3):
        assert (tmp_path / "demo" / f"peer{i}" / "index").is_dir()


async def test_demo_and_peer_reject_bad_arguments(tmp_path: Path) -> None:
    run = await yasearch("demo", "--peers", "0", "--port", "0")
    assert_friendly_failure(run, "--peers must be 1-16")
    run = await yasearch("demo", "--peers", "17", "--port", "0")
    assert_friendly_failure(run, "--peers must be 1-16")
    run = await yasearch("demo", "--peers", "3", "--pages", "2", "--port", "0")
    assert_friendly_failure(run, "--pages must be at least 1 per peer")
    run = await yasearch("peer", "--port", "0", "--data-dir", str(tmp_path / "d"), "--no-seeds", "--bootstrap", "nohostport")
    assert_friendly_failure(run, "'nohostport' is not HOST:PORT")
    run = await yasearch("peer", "--port", "0", "--data-dir", str(tmp_path / "d"), "--no-seeds", "--bootstrap", "h:99999")
    assert_friendly_failure(run, "is not HOST:PORT")


# -- progress output, in process ---------------------------------------------------


def job(state: str = "running", fetched: int = 0, **kw: int) -> dict:
    return {"id": "j1", "state": state, "fetched": fetched, "spec": {"max_pages": 10}, **kw}


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_a_pipe_prints_readable_lines() -> None:
    out = io.StringIO()
    bar = ProgressLine(out, interval=3600)
    bar.update(job(fetched=0))
    bar.update(job(fetched=0, pages_per_second=3))  # only the rate changed: nothing new
    bar.update(job(fetched=2))  # counters changed, but within the interval
    bar.update(job("done", fetched=4, indexed=4))  # a state change is always shown
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "running" in lines[0] and "fetched 0/10" in lines[0]
    assert "done" in lines[1] and "fetched 4/10" in lines[1] and "#" * 30 in lines[1]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_progress_on_a_tty_rewrites_one_line() -> None:
    out = FakeTTY()
    bar = ProgressLine(out)
    bar.update(job(fetched=1))
    bar.update(job(fetched=5))
    bar.close()
    text = out.getvalue()
    assert text.count("\r\x1b[2K") == 2 and text.endswith("\n") and text.count("\n") == 1


def test_render_and_summary() -> None:
    line = render(job(fetched=5, indexed=3, failed=1))
    assert line.startswith("[" + "#" * 15 + "." * 15 + "]") and "indexed 3" in line and "failed 1" in line
    s = summary(job("done", fetched=5, indexed=4, failed=1, failures={"http_404": 1}), 2.0)
    assert s == "crawl j1 done in 2.0 s: fetched 5, indexed 4, failed 1 (http_404 1), skipped 0"


def test_crawled_text_cannot_drive_the_terminal() -> None:
    cleaned = _clean("Title\x1b]0;pwned\x07 here\r\n")
    assert cleaned.startswith("Title") and cleaned.endswith("here")
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in cleaned)
