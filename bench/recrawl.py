"""``python -m bench recrawl``: what a revisit round costs against a full recrawl, and WARC
import against crawling.

A generated site (bench.sitegen) is served in-process with ETags (304 on a match).
One peer crawls it (keeping a WARC); then a known share of pages changes, some
disappear (404) and the rest stay. Measured: bytes served, requests, pages
re-indexed and postings handed to the publisher for (a) one revisit round of the
recrawl schedule and (b) a full recrawl of the same site; then the crawl's WARC is
imported into a fresh peer (pages/s) and compared with the crawl's own rate.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bench import sitegen
from bench.common import RunResults, add_report_args, log, machine, report, table_lines
from yasearch.config import Config
from yasearch.crawler.types import CrawlSpec
from yasearch.ranking import postings_for_document
from yasearch.server import PeerServer

LATER = 10**10


class EtagSite:
    """The site's files with ETags; counts requests, 304s and body bytes sent."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.requests = self.not_modified = self.bytes = 0

    def reset(self) -> None:
        self.requests = self.not_modified = self.bytes = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = self.files.get(request.path)
        if body is None:
            return web.Response(status=404, text="gone")
        etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
        if request.headers.get("If-None-Match") == etag:
            self.not_modified += 1
            return web.Response(status=304, headers={"ETag": etag})
        self.bytes += len(body)
        ctype = "text/plain" if request.path.endswith(".txt") else "text/html"
        return web.Response(body=body, content_type=ctype, charset="utf-8", headers={"ETag": etag})

    async def start(self) -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return runner, f"http://127.0.0.1:{port}"


def _config(data_dir: Path) -> Config:
    return Config(data_dir=data_dir, port=0, crawl_delay=0.0, allow_private_networks=True, parse_workers=0,
                  commit_interval=0.2, recrawl_share=1.0, recrawl_check_interval=3600.0)


class Spy:
    """Counts documents indexed and postings handed to the publisher."""

    def __init__(self, peer: Any) -> None:
        self.docs = self.postings = 0
        orig = peer.publisher.enqueue

        async def enqueue(docs: list[Any]) -> None:
            self.docs += len(docs)
            self.postings += sum(len(postings_for_document(d)) for d in docs)
            await orig(docs)

        peer.publisher.enqueue = enqueue

    def reset(self) -> None:
        self.docs = self.postings = 0


async def run(args: argparse.Namespace) -> RunResults:
    r = RunResults(config=vars(args).copy(), machine=machine())
    r.config["json"] = str(args.json) if args.json else None
    gen = sitegen.generate(args.pages, args.seed)
    site = EtagSite(gen.files())
    runner, base = await site.start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-recrawl-"))
    server = PeerServer(_config(tmp / "a"))
    await server.start()
    peer = server.peer
    spy = Spy(peer)
    figures: dict[str, Any] = {}
    try:
        spec = dict(urls=[base + "/"], depth=50, max_pages=args.pages + 10, delay=0.0, sitemaps=False)
        t = time.perf_counter()
        job = await peer.start_crawl(CrawlSpec(**spec, warc=True))
        await peer.jobs.wait(job.id)
        await peer.settle()
        crawl_s = time.perf_counter() - t
        crawled = job.progress.indexed
        figures["crawl"] = {"pages": crawled, "seconds": round(crawl_s, 2), "pages_per_s": round(crawled / crawl_s, 1),
                            "bytes": site.bytes, "requests": site.requests}
        log(f"first crawl: {crawled} pages in {crawl_s:.1f}s, {site.bytes / 1e6:.1f} MB")

        rng = random.Random(args.seed)
        paths = sorted(p for p in site.files if p not in ("/", "/robots.txt"))
        rng.shuffle(paths)
        n_changed, n_gone = int(len(paths) * args.changed), int(len(paths) * args.gone)
        for p in paths[:n_changed]:
            site.files[p] = site.files[p].replace(b"</body>", b"<p>an edit: a fresh paragraph of news</p></body>")
        for p in paths[n_changed : n_changed + n_gone]:
            del site.files[p]
        log(f"changed {n_changed} pages, removed {n_gone}, kept {len(paths) - n_changed - n_gone} (+ the home page)")

        for name, action in (("revisit", "round"), ("full_recrawl", "crawl")):
            site.reset()
            spy.reset()
            t = time.perf_counter()
            if action == "round":
                before = dict(peer.recrawler.counters)
                due = await peer.recrawler.run_round(now=LATER)
            else:
                job = await peer.start_crawl(CrawlSpec(**spec))
                await peer.jobs.wait(job.id)
                due = job.progress.fetched
            await peer.settle()
            secs = time.perf_counter() - t
            figures[name] = {"pages_visited": due, "requests": site.requests, "not_modified": site.not_modified,
                             "bytes": site.bytes, "docs_reindexed": spy.docs, "postings_republished": spy.postings,
                             "seconds": round(secs, 2)}
            if action == "round":
                figures[name]["outcomes"] = {k: v - before.get(k, 0) for k, v in peer.recrawler.counters.items()}
            log(f"{name}: {figures[name]}")

        warc_path = next((Path(peer.config.data_dir) / "warc").glob("*.warc.gz"))
        fresh = PeerServer(_config(tmp / "b"))
        await fresh.start()
        try:
            copy = tmp / "copy.warc.gz"
            copy.write_bytes(warc_path.read_bytes())
            t = time.perf_counter()
            imp = await fresh.peer.import_file(copy)
            await fresh.peer.jobs.wait(imp.id)
            secs = time.perf_counter() - t
            figures["warc_import"] = {"pages": imp.progress.indexed, "seconds": round(secs, 2),
                                      "pages_per_s": round(imp.progress.indexed / secs, 1),
                                      "warc_bytes": warc_path.stat().st_size}
            log(f"WARC import: {figures['warc_import']}")
        finally:
            await fresh.stop()
    finally:
        await server.stop()
        await runner.cleanup()
    r.query = figures
    return r


def table(r: RunResults) -> str:
    f = r.query
    rv, full, c, w = f["revisit"], f["full_recrawl"], f["crawl"], f["warc_import"]
    rows = [
        ("pages (first crawl)", f"{c['pages']}", f"{c['pages_per_s']} pages/s, {c['bytes'] / 1e6:.1f} MB"),
        ("revisit: requests / 304", f"{rv['requests']} / {rv['not_modified']}", f"outcomes {rv.get('outcomes')}"),
        ("revisit: body bytes", f"{rv['bytes'] / 1e6:.2f} MB", f"full recrawl {full['bytes'] / 1e6:.2f} MB"),
        ("revisit: docs re-indexed", f"{rv['docs_reindexed']}", f"full recrawl {full['docs_reindexed']}"),
        ("revisit: postings republished", f"{rv['postings_republished']:,}", f"full recrawl {full['postings_republished']:,}"),
        ("WARC import", f"{w['pages_per_s']} pages/s", f"crawl from the local server {c['pages_per_s']} pages/s"),
    ]
    return "\n".join(table_lines(rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench recrawl", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=300, help="pages of the generated site (default 300)")
    ap.add_argument("--changed", type=float, default=0.1, help="share of pages changed (default 0.1)")
    ap.add_argument("--gone", type=float, default=0.05, help="share of pages removed (default 0.05)")
    ap.add_argument("--seed", type=int, default=42)
    add_report_args(ap, "write the figures here as JSON")
    args = ap.parse_args(argv)
    r = asyncio.run(run(args))
    report(r, table(r), args.json)
    rv = r.query["revisit"]
    unchanged = rv["outcomes"].get("unchanged", 0)
    ok = rv["not_modified"] >= unchanged and rv["docs_reindexed"] == rv["outcomes"].get("changed", 0)
    return 2 if args.strict and not ok else 0
