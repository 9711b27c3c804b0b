"""`yasearch demo`: a self-contained offline run.

Serves Python's own documentation (pydoc's HTTP server, present wherever Python
is) on loopback, starts one peer or a small network of peers in this process,
crawls the documentation with a progress bar and prints the UI's address.
Nothing leaves the machine.

With ``--peers N`` the peers join one DHT network (the first one is the
bootstrap of the others) and the documentation's module index is dealt out
over them: every peer crawls a disjoint share of the modules (seed list plus an
``allow`` regex, so links into another peer's share are not followed). Each peer
publishes the postings of what it indexed to the responsible peers, so a global
search on any of them finds pages that only another one crawled.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from yasearch.childproc import close_child
from yasearch.crawler.types import CrawlSpec
from yasearch.config import Config
from yasearch.jobs import Job
from yasearch.peer import Peer
from yasearch.progress import ProgressLine, summary
from yasearch.server import start_peer
from yasearch.startup import check_data_dir, explain

log = logging.getLogger(__name__)

#: Upper bound of ``--peers``: they all run in this one process.
MAX_PEERS = 16
#: How long the demo waits for the peers to publish their postings.
SETTLE_TIMEOUT = 120.0
#: Every pydoc page's title starts with "Pydoc:", so this word finds them all.
CHECK_QUERY = "pydoc"

_PYDOC_SERVER = (
    "import os, pydoc, sys, time\n"
    "t = pydoc._start_server(pydoc._url_handler, '127.0.0.1', 0)\n"
    "while not t.serving and not t.error: time.sleep(0.01)\n"
    "print(t.url if t.serving else 'ERROR ' + str(t.error), flush=True)\n"
    "sys.stdin.read()\n"  # returns when the parent closes our stdin (or dies)
    "os._exit(0)\n"  # at once: pydoc's server thread is not a daemon and polls for quit once a second
)

_MODULE_LINK = re.compile(r'href="([A-Za-z0-9_][A-Za-z0-9_.]*)\.html"')
_NOT_MODULES = {"index", "topics", "keywords"}


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
        close_child(self.proc)


# -- splitting the crawl -----------------------------------------------------------


def module_names(index_html: str) -> list[str]:
    """Top-level module names linked from pydoc's module index, in page order, unique."""
    seen: dict[str, None] = {}
    for name in _MODULE_LINK.findall(index_html):
        top = name.split(".", 1)[0]
        if top and top not in _NOT_MODULES:
            seen.setdefault(top, None)
    return list(seen)


def split_pages(pages: int, n: int) -> list[int]:
    """``pages`` as evenly as possible over ``n`` peers (the first ones get the remainder)."""
    return [pages // n + (1 if i < pages % n else 0) for i in range(n)]


def crawl_specs(base: str, modules: list[str], pages: int, n: int) -> list[CrawlSpec]:
    """One crawl per peer over disjoint shares of the documentation.

    Modules are dealt out round-robin (so every peer gets a mix of built-in,
    standard-library and installed modules); a peer seeds its own modules' pages
    and follows links only into them (``allow``), so no page is crawled twice.
    The first peer also crawls the module index itself.
    """
    base = base if base.endswith("/") else base + "/"
    budgets = split_pages(pages, n)
    if n == 1 or not modules:
        # only the documentation site: its pages link to docs.python.org, and the
        # demo promises that nothing leaves the machine
        return [CrawlSpec(urls=[base], depth=3, max_pages=pages, delay=0.0, allow=[f"^{re.escape(base)}"])]
    specs = []
    for i in range(n):
        share = modules[i::n]
        urls = ([base] if i == 0 else []) + [f"{base}{m}.html" for m in share]
        # `json.html`, `json.decoder.html`, ... but not `jsonx.html`
        allow = [f"^{re.escape(base)}(?:{'|'.join(re.escape(m) for m in share)})\\."] if share else [r"^$"]
        specs.append(CrawlSpec(urls=urls, depth=2, max_pages=budgets[i], delay=0.0, allow=allow))
    return specs


async def fetch_modules(url: str) -> list[str]:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as s, s.get(url) as r:
        r.raise_for_status()
        return module_names(await r.text())


# -- progress over several jobs ------------------------------------------------------


def aggregate(jobs: list[Job], pages: int) -> dict[str, Any]:
    """One progress record for the crawl jobs of all peers."""
    dicts = [j.to_dict() for j in jobs]
    states = [d["state"] for d in dicts]
    state = "running" if any(s in ("running", "paused") for s in states) else (
        "done" if all(s == "done" for s in states) else next(s for s in states if s != "done")
    )
    out: dict[str, Any] = {"id": "demo" if len(jobs) > 1 else dicts[0]["id"], "state": state, "spec": {"max_pages": pages}}
    for key in ("queued", "fetched", "indexed", "failed", "published", "skipped", "pages_per_second"):
        out[key] = sum(d.get(key, 0) for d in dicts)
    failures: Counter[str] = Counter()
    for d in dicts:
        failures.update(d.get("failures") or {})
    out["failures"] = dict(failures)
    return out


async def _watch(jobs: list[Job], waiters: list[asyncio.Task[Any]], pages: int) -> dict[str, Any]:
    bar = ProgressLine()
    try:
        while not all(w.done() for w in waiters):
            bar.update(aggregate(jobs, pages))
            await asyncio.wait(waiters, timeout=0.5, return_when=asyncio.ALL_COMPLETED)
        await asyncio.gather(*waiters)
    finally:
        for w in waiters:
            w.cancel()
        bar.update(aggregate(jobs, pages))
        bar.close()
    return aggregate(jobs, pages)


# -- the demo ----------------------------------------------------------------------------


def _peer_ports(port: int, n: int) -> list[int]:
    return [0] * n if port == 0 else [port + i for i in range(n)]


async def run_demo(
    *, peers: int = 1, port: int = 8090, pages: int = 300, data_dir: Path | None = None, exit_after_crawl: bool = False
) -> int:
    if not 1 <= peers <= MAX_PEERS:
        print(f"yasearch demo: --peers must be 1-{MAX_PEERS} (they all run in this process)", file=sys.stderr)
        return 2
    if pages < peers:
        print("yasearch demo: --pages must be at least 1 per peer", file=sys.stderr)
        return 2
    if not (0 <= port and port + peers - 1 < 65536):
        print(f"yasearch demo: --port must leave room for {peers} ports below 65536 (0 = free ports)", file=sys.stderr)
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
        print(f"Demo data in {data_dir} (removed when the demo stops)", flush=True)
    network: list[Peer] = []
    try:
        print(f"Serving Python's documentation at {url} (loopback only)", flush=True)
        for i, p in enumerate(_peer_ports(port, peers)):
            config = Config(
                data_dir=data_dir if peers == 1 else data_dir / f"peer{i + 1}",
                port=p,
                name="demo" if peers == 1 else f"demo-{i + 1}",
                crawl_delay=0.0,
                parse_workers=2 if peers == 1 else 1,
                # pydoc's server renders one page at a time (some take seconds):
                # a few requests in flight in all, or the queue outlasts the read timeout
                per_host_concurrency=max(1, 4 // peers),
                read_timeout=60.0,
                allow_private_networks=True,  # the demo's site is on loopback
            )
            try:
                check_data_dir(config.data_dir)
                peer = await start_peer(config)
            except Exception as e:  # noqa: BLE001 - one line, as for `yasearch peer` (-v: the traceback)
                log.info("startup failed", exc_info=True)
                print(f"yasearch demo: {explain(e)}", file=sys.stderr)
                return 1
            network.append(peer)
            print(f"Peer {peer.name} is up; web UI at {peer.url}/", flush=True)
        first = network[0]
        if peers > 1:
            boot = [("127.0.0.1", first.port)]
            for p in network[1:]:
                await p.join(boot)
            for p in network:  # a second round: everybody learns everybody (and their info)
                await p.join(boot)
            print(f"Network formed: {first.name} knows {len(first.dht.known_peers()) if first.dht else 0} other peers", flush=True)

        try:
            modules = await fetch_modules(url) if peers > 1 else []
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            print(f"yasearch demo: cannot read the documentation index ({e}); crawling it from one peer", file=sys.stderr)
            modules = []
        specs = crawl_specs(url, modules, pages, peers)
        workers = network[: len(specs)]
        print(
            f"Crawling up to {pages} pages" + (f", spread over {len(workers)} peers" if len(workers) > 1 else "") + " ...",
            flush=True,
        )
        jobs = [await p.start_crawl(spec) for p, spec in zip(workers, specs)]
        started = time.monotonic()
        waiters = [asyncio.create_task(p.jobs.wait(j.id)) for p, j in zip(workers, jobs)]
        total = await _watch(jobs, waiters, pages)
        print(summary(total, time.monotonic() - started))
        indexed = sum(p.index.doc_count() for p in network)
        if not indexed:
            print("yasearch demo: the crawl indexed no pages; see the failures above", file=sys.stderr)
            return 1

        if peers == 1:
            print(f"Indexed {indexed} pages. Web UI: {first.url}/  Try: {first.url}/search?q=json+decoder", flush=True)
        else:
            for p in network:
                print(f"  {p.name}: indexed {p.index.doc_count()} pages", flush=True)
            print("Publishing postings to the peers responsible for their terms ...", flush=True)
            try:
                await asyncio.wait_for(asyncio.gather(*(p.settle() for p in network)), SETTLE_TIMEOUT)
            except asyncio.TimeoutError:
                print("yasearch demo: publishing has not finished yet; it goes on in the background", file=sys.stderr)
            if first.dht is not None:
                await first.dht.refresh_info()  # current document counts of the others
            docs, _ = first.network_totals()
            known = len(first.dht.known_peers()) if first.dht else 0
            print(f"network: {known + 1} peers, {docs} documents", flush=True)
            check = await first.search(CHECK_QUERY, limit=1, scope="global")
            answered = check.peers.get("answered", 0) if check.peers else 0
            print(
                f"global search on {first.name} for {CHECK_QUERY!r}: {check.total} results "
                f"(peers answered {answered})",
                flush=True,
            )
            print(f"Indexed {indexed} pages on {peers} peers. Web UI: {first.url}/", flush=True)
            print(
                f"Searches there are global: they ask the peers responsible for each term, so they find pages "
                f"any peer crawled. Try: {first.url}/search?q=json+decoder  (network: {first.url}/network)",
                flush=True,
            )
        if exit_after_crawl:
            return 0
        print("Press Ctrl-C to stop.", flush=True)
        await asyncio.Event().wait()
        return 0
    finally:
        for p in reversed(network):
            try:
                await p.stop()
            except Exception:  # noqa: BLE001 - stop the others regardless
                log.warning("stopping %s failed", p.name, exc_info=True)
        site.stop()
        if tmp is not None:
            tmp.cleanup()
