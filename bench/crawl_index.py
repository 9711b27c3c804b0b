"""Crawl + index benchmark on a generated local site, with Scrapy as the reference.

One run does, in order:

1. generate the site (:mod:`bench.sitegen`, ~20 KB pages of real prose) and serve
   it from a separate process on loopback;
2. **Scrapy reference**: :mod:`bench.scrapy_ref` in a subprocess, default
   concurrency, crawl-only (follow every in-site link, nothing else);
3. **yasearch end-to-end**: a real :class:`yasearch.peer.Peer` (temp data dir,
   port 0, crawl delay 0, a process pool for parsing) gets a crawl job via
   ``POST /api/v1/crawl``; the clock runs from the POST until every page is
   committed to the index (the job is done and ``indexed == pages``); then
   until the peer's background work (publishing postings) has settled;
4. **isolated micro-phases**, each timed on its own so their rates can be
   compared with the end-to-end figure: fetch (the crawler's aiohttp fetcher
   over every URL), parse (:func:`yasearch.crawler.extract.extract` on the process pool)
   and index (:class:`yasearch.index.LocalIndex` add + flush of all documents);
5. **queries**: 100 local queries of 1-3 words drawn from the site's own text
   (fixed seed), answered by ``peer.search(scope="local")``; p50/p95 latency.

Run with ``python -m bench crawl`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import sitegen
from bench.common import (REPO, RunResults, add_query_args, add_report_args, log, machine, pct, report,
                          served_site, table_lines)

#: Goals from the issue.
GOAL_QUERY_P50_MS = 10.0


@dataclass
class Results(RunResults):
    pages: int = 0
    site_bytes: int = 0
    scrapy: dict[str, Any] = field(default_factory=dict)
    e2e: dict[str, Any] = field(default_factory=dict)
    fetch: dict[str, Any] = field(default_factory=dict)
    parse: dict[str, Any] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=dict)


# -- Scrapy ---------------------------------------------------------------------


def run_scrapy(url: str, pages: int, timeout: float) -> dict[str, Any]:
    import importlib.util

    if importlib.util.find_spec("scrapy") is None:
        raise RuntimeError("scrapy is not installed (pip install scrapy), or run with --no-scrapy")
    cmd = [sys.executable, "-m", "bench.scrapy_ref", url, "--max-pages", str(pages)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"scrapy reference failed (rc={proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[-1])


# -- yasearch end to end -----------------------------------------------------------


def _warm_pool(pool: Executor, workers: int, sample: bytes, url: str) -> None:
    """Start every worker process and import the extractor there (not timed)."""
    from yasearch.crawler.extract import extract

    futures = [pool.submit(extract, sample, url, "text/html", "utf-8") for _ in range(max(1, workers) * 4)]
    for f in futures:
        f.result()


async def run_e2e(site: sitegen.Site, site_url: str, workers: int, data_dir: Path, queries: int, seed: int,
                  overrides: dict[str, Any], publish: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    from yasearch.config import Config
    from yasearch.server import start_peer

    pages = len(site.pages)
    sample = site.pages[-1].html
    cfg = Config(data_dir=data_dir, port=0, crawl_delay=0.0, parse_workers=workers,
                 allow_private_networks=True, **overrides)
    peer = await start_peer(cfg)
    if not publish and getattr(peer, "publisher", None) is not None:
        async def _no_publish(docs: Any) -> None:  # diagnostic: measure crawl+index without DHT publishing
            return None

        peer.publisher.enqueue = _no_publish
    try:
        make_pool = getattr(peer.jobs, "_parse_pool", None)  # created lazily by the first job
        pool = make_pool() if make_pool is not None else None  # warm it like a running peer's
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, _warm_pool, pool, workers, sample, site_url)
        spec = {"urls": [site_url], "depth": 50, "max_pages": pages, "delay": 0, "same_site": True}
        async with aiohttp.ClientSession() as http:
            t0 = time.perf_counter()
            async with http.post(f"{peer.url}/api/v1/crawl", json=spec) as resp:
                body = await resp.json()
                if resp.status != 201:
                    raise RuntimeError(f"POST /api/v1/crawl answered {resp.status}: {body}")
        job_id = body["id"]
        job = peer.jobs.get(job_id)
        assert job is not None
        first_indexed: float | None = None
        last_report = t0
        while job.task is not None and not job.task.done():
            await asyncio.sleep(0.05)
            now = time.perf_counter()
            if first_indexed is None and job.progress.indexed:
                first_indexed = now - t0
            if now - last_report >= 2.0:
                p = job.progress
                log(f"  yasearch: fetched {p.fetched}, indexed {p.indexed}, queued {p.queued} ({now - t0:.1f}s)")
                last_report = now
        await peer.jobs.wait(job_id)
        elapsed = time.perf_counter() - t0
        p = job.progress
        indexed_docs = peer.index.doc_count()
        e2e = {
            "state": job.state,
            "fetched": p.fetched,
            "indexed": p.indexed,
            "failed": p.failed,
            "skipped": p.skipped,
            "documents": indexed_docs,
            "elapsed_s": round(elapsed, 3),
            "pages_per_second": round(p.indexed / elapsed, 1) if elapsed > 0 else 0.0,
            "first_commit_s": round(first_indexed, 3) if first_indexed else None,
        }
        log(f"  yasearch: {p.indexed} pages indexed in {elapsed:.2f}s = {e2e['pages_per_second']} pages/s")
        if p.indexed < pages or job.state != "done":
            raise RuntimeError(f"the crawl did not index every page: {e2e} failures={dict(p.failures)}")
        settle = getattr(peer, "settle", None)
        if settle is not None:
            # background work after the commits (publishing postings to the responsible
            # peers, here the peer itself): wait for it so queries run on an idle peer
            await asyncio.wait_for(settle(), timeout=600)
            done = time.perf_counter() - t0
            e2e["settled_s"] = round(done, 3)
            e2e["with_publish_pages_per_second"] = round(p.indexed / done, 1)
            log(f"  yasearch: background work (publishing) settled after {done:.2f}s = "
                f"{e2e['with_publish_pages_per_second']} pages/s including it")
        query = await run_queries(peer, site, queries, seed)
        return e2e, query
    finally:
        await peer.stop()


# -- queries ------------------------------------------------------------------------


def query_set(site: sitegen.Site, n: int, seed: int) -> list[str]:
    """``n`` queries of 1-3 words, each word taken from one page's text (so AND matches)."""
    from bench.growth import query_set as from_texts

    return from_texts([re.sub(r"<[^>]+>", " ", p.html.decode("utf-8")) for p in site.pages], n, seed)


async def run_queries(peer: Any, site: sitegen.Site, n: int, seed: int) -> dict[str, Any]:
    if n <= 0:
        return {}
    qs = query_set(site, n, seed)
    for q in query_set(site, 5, seed + 1):  # warm-up: open the reader threads' searchers
        await peer.search(q, scope="local")
    lat: list[float] = []
    hits = 0
    for q in qs:
        t = time.perf_counter()
        resp = await peer.search(q, scope="local")
        lat.append((time.perf_counter() - t) * 1000.0)
        hits += resp.total > 0
    lat.sort()
    p50 = statistics.median(lat)
    p95 = pct(lat, 0.95)
    out = {
        "queries": n,
        "with_results": hits,
        "p50_ms": round(p50, 2),
        "p95_ms": round(p95, 2),
        "max_ms": round(lat[-1], 2),
        "examples": qs[:5],
    }
    log(f"  queries: p50 {out['p50_ms']} ms, p95 {out['p95_ms']} ms ({hits}/{n} with results)")
    return out


# -- micro-phases --------------------------------------------------------------------


async def phase_fetch(urls: list[str], concurrency: int) -> tuple[dict[str, Any], list[Any]]:
    from yasearch.crawler.fetcher import fetch
    from yasearch.crawler.outbound import OutboundPolicy
    from yasearch.crawler.types import CrawlerSettings

    settings = CrawlerSettings(delay=0.0, concurrency=concurrency, outbound=OutboundPolicy(allow_private=True))
    connector = aiohttp.TCPConnector(limit=concurrency * 2, ttl_dns_cache=300)
    results: list[Any] = [None] * len(urls)
    async with aiohttp.ClientSession(connector=connector) as session:
        await fetch(session, urls[0], settings)  # warm the connection pool (not timed)
        it = iter(range(len(urls)))

        async def worker() -> None:
            for i in it:
                results[i] = await fetch(session, urls[i], settings)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    bad = [r for r in results if not r.ok]
    if bad:
        raise RuntimeError(f"{len(bad)} fetches failed, e.g. {bad[0].url}: {bad[0].reason}")
    out = {"concurrency": concurrency, "elapsed_s": round(elapsed, 3),
           "pages_per_second": round(len(urls) / elapsed, 1)}
    log(f"  fetch: {len(urls)} pages in {elapsed:.2f}s = {out['pages_per_second']} pages/s")
    return out, results


def phase_parse(fetched: list[Any], workers: int) -> tuple[dict[str, Any], list[Any]]:
    from yasearch.crawler.extract import extract

    args = [(r.body, r.final_url, r.content_type, r.charset) for r in fetched]
    out: dict[str, Any] = {"workers": workers}
    # one process, for reference
    t0 = time.perf_counter()
    extracted = [extract(*a) for a in args]
    single = time.perf_counter() - t0
    out["single_process_pages_per_second"] = round(len(args) / single, 1)
    if workers > 0:
        ctx = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            _warm_pool(pool, workers, args[0][0], args[0][1])
            t0 = time.perf_counter()
            # one task per page, as the crawler submits them
            futures = [pool.submit(extract, *a) for a in args]
            extracted = [f.result() for f in futures]
            elapsed = time.perf_counter() - t0
    else:
        elapsed = single
    out["elapsed_s"] = round(elapsed, 3)
    out["pages_per_second"] = round(len(args) / elapsed, 1)
    log(f"  parse: {len(args)} pages in {elapsed:.2f}s = {out['pages_per_second']} pages/s "
        f"({workers} workers; one process: {out['single_process_pages_per_second']} pages/s)")
    return out, extracted


async def phase_index(fetched: list[Any], extracted: list[Any], directory: Path, cfg: Any) -> dict[str, Any]:
    from yasearch.crawler.urls import host_of
    from yasearch.analysis import doc_id
    from yasearch.index import LocalIndex
    from yasearch.records import Document

    docs = [
        Document(doc_id=doc_id(r.final_url), url=r.final_url, host=host_of(r.final_url), title=ex.title,
                 headings=ex.headings, body=ex.body, description=ex.description, language=ex.language,
                 crawled_at=time.time())
        for r, ex in zip(fetched, extracted)
    ]
    index = LocalIndex(directory, commit_interval=cfg.commit_interval, commit_batch=cfg.commit_batch,
                       limitmb=cfg.index_limitmb, writer_process=cfg.index_writer_process)
    await index.open()
    try:
        t0 = time.perf_counter()
        for d in docs:
            await index.add(d)
        await index.flush()
        elapsed = time.perf_counter() - t0
        n = index.doc_count()
    finally:
        await index.close()
    if n != len(docs):
        raise RuntimeError(f"the index holds {n} documents, expected {len(docs)}")
    out = {"commit_batch": cfg.commit_batch, "limitmb": cfg.index_limitmb, "elapsed_s": round(elapsed, 3),
           "docs_per_second": round(len(docs) / elapsed, 1)}
    log(f"  index: {len(docs)} documents in {elapsed:.2f}s = {out['docs_per_second']} docs/s")
    return out


# -- report --------------------------------------------------------------------------


def table(r: Results) -> str:
    s, e, f, p, i, q = r.scrapy, r.e2e, r.fetch, r.parse, r.index, r.query

    def g(d: dict[str, Any], key: str, unit: str = "") -> str:
        return f"{d[key]}{unit}" if key in d else "-"

    ratio = e["pages_per_second"] / s["pages_per_second"] if s.get("pages_per_second") else None
    rows = [
        ("Scrapy crawl-only (reference)", g(s, "pages_per_second", " pages/s"),
         f"{g(s, 'pages')} pages in {g(s, 'elapsed_s')} s, spider open -> close"),
        ("yasearch crawl+index, end to end", g(e, "pages_per_second", " pages/s"),
         f"{g(e, 'indexed')} pages in {g(e, 'elapsed_s')} s, POST /api/v1/crawl -> last commit"),
        ("  ... until publishing settled", g(e, "with_publish_pages_per_second", " pages/s"),
         f"POST -> index committed and postings published ({g(e, 'settled_s')} s)"
         + ("" if r.config.get("publish", True) else "; publishing DISABLED (--no-publish)")),
        ("  fetch only (isolated)", g(f, "pages_per_second", " pages/s"),
         f"yasearch.crawler.fetcher.fetch, {g(f, 'concurrency')} concurrent"),
        ("  parse only (isolated)", g(p, "pages_per_second", " pages/s"),
         f"extract() on {g(p, 'workers')} processes; 1 process: {g(p, 'single_process_pages_per_second')}/s"),
        ("  index only (isolated)", g(i, "docs_per_second", " docs/s"),
         f"LocalIndex add + flush, commit_batch {g(i, 'commit_batch')}"),
        ("local query p50", g(q, "p50_ms", " ms"), f"{g(q, 'queries')} queries of 1-3 words, peer.search(scope=local)"),
        ("local query p95", g(q, "p95_ms", " ms"), f"max {g(q, 'max_ms')} ms"),
    ]
    lines = table_lines(rows)
    if ratio is not None:
        verdict = "MET" if ratio >= 1.0 else "NOT MET"
        lines.append(f"ratio yasearch crawl+index / Scrapy crawl-only = {ratio:.2f}  (goal >= 1.00: {verdict})")
    if "p50_ms" in q:
        verdict = "MET" if q["p50_ms"] <= GOAL_QUERY_P50_MS else "NOT MET"
        lines.append(f"local query p50 = {q['p50_ms']} ms  (goal <= {GOAL_QUERY_P50_MS:g} ms: {verdict})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench crawl", description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=600, help="pages in the generated site (default 600)")
    ap.add_argument("--workers", type=int, default=2, help="parse processes of the peer (default 2)")
    add_query_args(ap, "local")
    ap.add_argument("--no-scrapy", action="store_true", help="skip the Scrapy reference")
    ap.add_argument("--no-phases", action="store_true", help="skip the isolated fetch/parse/index phases")
    ap.add_argument("--no-publish", action="store_true",
                    help="diagnostic: do not publish postings to the DHT during the crawl")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a peer config value, e.g. --set commit_batch=1000 (repeatable)")
    add_report_args(ap, "also write the figures as JSON to this file")
    ap.add_argument("--growth", metavar="SIZES", default="",
                    help="also time queries on directly indexed sites of these sizes, e.g. 600,6000,60000")
    ap.add_argument("--big", default="", metavar="SIZES",
                    help="also sites of these numbers of pages of 100 KB-1 MB, e.g. 300,3000")
    ap.add_argument("--growth-only", action="store_true", help="skip the crawl benchmark, run --growth only")
    ap.add_argument("--keep", type=Path, help="with --growth: keep the indexes in this directory and reuse them")
    ap.add_argument("--no-check", action="store_true", help="with --growth: do not compare with exhaustive scoring")
    args = ap.parse_args(argv)
    if args.growth or args.big:
        from bench import growth

        sizes = [int(x) for x in args.growth.split(",") if x.strip()]
        rows = growth.run(sizes, queries=args.queries, seed=args.seed, workers=args.workers, keep=args.keep,
                          big=[int(x) for x in args.big.split(",") if x.strip()], check=not args.no_check)
        print()
        print(growth.table(rows))
        if args.json:
            args.json.with_suffix(".growth.json").write_text(json.dumps(rows, indent=2) + "\n")
        if args.growth_only:
            return 0

    from yasearch.config import Config

    overrides: dict[str, Any] = {}
    for item in args.set:
        k, _, v = item.partition("=")
        overrides[k] = v
    base = Config.from_dict({"crawl_delay": 0.0, "parse_workers": args.workers, **overrides})
    overrides = {k: getattr(base, k) for k in overrides}

    r = Results()
    r.machine = machine()
    r.config = {"parse_workers": args.workers, "crawl_concurrency": base.crawl_concurrency,
                "per_host_concurrency": base.per_host_concurrency, "commit_batch": base.commit_batch,
                "commit_interval": base.commit_interval, "index_limitmb": base.index_limitmb,
                "publish": not args.no_publish, **overrides}

    with tempfile.TemporaryDirectory(prefix="yasearch-bench-") as tmp_s:
        tmp = Path(tmp_s)
        with served_site(args.pages, args.seed, tmp / "site") as (site, url):
            r.pages, r.site_bytes = len(site.pages), site.total_bytes()
            if not args.no_scrapy:
                log("Scrapy reference crawl (subprocess, default concurrency) ...")
                r.scrapy = run_scrapy(url, args.pages, timeout=600)
                log(f"  scrapy: {r.scrapy['pages']} pages in {r.scrapy['elapsed_s']}s = "
                    f"{r.scrapy['pages_per_second']} pages/s")
                if r.scrapy["pages"] < args.pages:
                    raise SystemExit(f"scrapy crawled only {r.scrapy['pages']} of {args.pages} pages")
            log("yasearch peer: crawl + index job via POST /api/v1/crawl ...")
            r.e2e, r.query = asyncio.run(run_e2e(site, url, args.workers, tmp / "peer", args.queries, args.seed,
                                                 overrides, publish=not args.no_publish))
            if not args.no_phases:
                log("isolated phases ...")
                urls = site.urls(url)
                r.fetch, fetched = asyncio.run(phase_fetch(urls, base.per_host_concurrency))
                r.parse, extracted = phase_parse(fetched, args.workers)
                r.index = asyncio.run(phase_index(fetched, extracted, tmp / "phase-index", base))
    report(r, table(r), args.json)
    if args.strict and not args.no_scrapy:
        if r.e2e["pages_per_second"] < r.scrapy["pages_per_second"] or r.query["p50_ms"] > GOAL_QUERY_P50_MS:
            return 2
    return 0
