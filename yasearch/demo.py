"""`yasearch demo`: a self-contained offline run.

Serves Python's own documentation (pydoc's HTTP server, present wherever Python
is) on loopback, starts a peer, crawls the documentation with a progress bar and
prints the UI's address. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crawler.types import CrawlSpec
from yasearch.config import Config
from yasearch.peer import Peer
from yasearch.progress import ProgressLine, summary

log = logging.getLogger(__name__)

_PYDOC_SERVER = (
    "import os, pydoc, sys, time\n"
    "t = pydoc._start_server(pydoc._url_handler, '127.0.0.1', 0)\n"
    "while not t.serving and not t.error: time.sleep(0.01)\n"
    "print(t.url if t.serving else 'ERROR ' + str(t.error), flush=True)\n"
    "sys.stdin.read()\n"  # returns when the parent closes our stdin (or dies)
    "os._exit(0)\n"  # at once: pydoc's server thread is not a daemon and polls for quit once a second
)


class DocSite:
    """pydoc's documentation server in a child process (it is single-threaded and CPU-bound)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> str:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PYDOC_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http"):
            self.stop()
            raise RuntimeError(f"the local documentation server did not start: {line or 'no output'}")
        self.url = line.replace("localhost", "127.0.0.1")
        return self.url

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def run_demo(
    *, peers: int = 1, port: int = 8090, pages: int = 300, data_dir: Path | None = None, exit_after_crawl: bool = False
) -> int:
    if peers != 1:
        print(
            "yasearch demo: only --peers 1 is available in this version; the multi-peer network demo "
            "arrives with the DHT network",
            file=sys.stderr,
        )
        return 2
    if pages < 1:
        print("yasearch demo: --pages must be at least 1", file=sys.stderr)
        return 2
    site = DocSite()
    try:
        url = site.start()
    except (OSError, RuntimeError) as e:
        print(f"yasearch demo: {e}", file=sys.stderr)
        return 1
    tmp = None
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="yasearch-demo-")
        data_dir = Path(tmp.name)
    peer: Peer | None = None
    try:
        try:
            peer = Peer(Config(data_dir=data_dir, port=port, name="demo", crawl_delay=0.0))
            await peer.start()
        except OSError as e:
            print(f"yasearch demo: {e.strerror or e}", file=sys.stderr)
            return 1
        print(f"Serving Python's documentation at {url} (loopback only)", flush=True)
        print(f"Peer {peer.name} is up; web UI at {peer.url}/", flush=True)
        print(f"Crawling up to {pages} pages ...", flush=True)
        job = await peer.start_crawl(CrawlSpec(urls=[url], depth=3, max_pages=pages, delay=0.0))
        bar = ProgressLine()
        started = time.monotonic()
        waiter = asyncio.create_task(peer.jobs.wait(job.id))
        try:
            while not waiter.done():
                bar.update(job.to_dict())
                await asyncio.wait({waiter}, timeout=0.5)
            await waiter
        finally:
            waiter.cancel()
            bar.update(job.to_dict())
            bar.close()
        print(summary(job.to_dict(), time.monotonic() - started))
        indexed = peer.index.doc_count()
        if not indexed:
            print("yasearch demo: the crawl indexed no pages; see the failures above", file=sys.stderr)
            return 1
        print(f"Indexed {indexed} pages. Web UI: {peer.url}/  Try: {peer.url}/search?q=json+decoder", flush=True)
        if exit_after_crawl:
            return 0
        print("Press Ctrl-C to stop.", flush=True)
        await asyncio.Event().wait()
        return 0
    finally:
        if peer is not None:
            await peer.stop()
        site.stop()
        if tmp is not None:
            tmp.cleanup()
