"""Relevance benchmark on a real corpus available offline: pydoc's pages of the standard library.

One run does, in order:

1. **Corpus**: starts pydoc's documentation server (as ``yasearch demo`` does),
   takes a breadth-first snapshot of its HTML pages (the module index, then the
   pages it links to, depth 2, ``--pages`` at most; ``--cache FILE`` keeps the
   snapshot for the next run) and serves the snapshot from memory on loopback,
   so every system below sees exactly the same bytes.
2. **Judged queries**: for every module page, the first line of its docstring
   (pydoc's synopsis) with the module's name removed, judged by that module's
   page (every module with the same synopsis counts: ``io`` and ``_io``); plus
   the hand-written natural-language and identifier queries of
   :data:`bench.relevance_queries.HAND`, each with its judged answers.
3. **Systems**: yasearch with one peer (a real crawl of the snapshot, local
   search); yasearch with a network of ``--peers`` peers in this process (the
   snapshot dealt out, postings published, global search from the first
   peer); and the reference, one central Whoosh index with BM25F over title
   (boost 2) and body, built from the same extracted text, queried with OR
   (and with AND, as a second row).
4. **Measures**: recall@10 (a judged answer among the first 10) and MRR
   (1 / rank of the first judged answer, 0 beyond 10), overall and per query kind.

Run with ``python -m bench relevance`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import html
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp import web

from bench.relevance_ablations import ABLATIONS
from bench.relevance_prior import prior_weight
from bench.relevance_queries import HAND

#: Goals from the issue.
GOAL_MRR_ABOVE_CENTRAL = 0.04
GOAL_RECALL = 0.98

Search = Callable[[str], Awaitable[list[str]]]


def log(msg: str) -> None:
    print(f"[relevance {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- corpus ----------------------------------------------------------------------------

_HREF = re.compile(r'href="([^"#?]+\.html)"')


async def snapshot(base: str, max_pages: int, depth: int = 2) -> dict[str, bytes]:
    """path -> HTML of pydoc's pages, breadth first from the module index."""
    pages: dict[str, bytes] = {}
    seen = {"/"}
    frontier: deque[tuple[str, int]] = deque([("/", 0)])
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        while frontier and len(pages) < max_pages:
            path, d = frontier.popleft()
            async with s.get(urljoin(base, path)) as r:
                if r.status != 200 or not r.content_type.startswith("text/html"):
                    continue
                body = await r.read()
            pages[path] = body
            if d >= depth:
                continue
            for href in _HREF.findall(body.decode("utf-8", "replace")):
                target = urlsplit(urljoin(base + path.lstrip("/"), href))
                p = target.path
                if target.netloc == urlsplit(base).netloc and p not in seen and p != "/index.html":
                    seen.add(p)
                    frontier.append((p, d + 1))
    return pages


async def load_corpus(max_pages: int, cache: Path | None) -> dict[str, bytes]:
    if cache is not None and cache.exists():
        data = json.loads(gzip.decompress(cache.read_bytes()))
        log(f"corpus: {len(data)} pages from {cache}")
        return {p: b.encode("utf-8") for p, b in data.items()}
    from yasearch.demo import DocSite

    site = DocSite()
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as empty:
        os.chdir(empty)  # pydoc's server documents what its sys.path holds, which includes the cwd
        try:
            base = site.start()
        finally:
            os.chdir(here)
        try:
            pages = await snapshot(base, max_pages)
        finally:
            site.stop()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(gzip.compress(json.dumps({p: b.decode("utf-8", "replace") for p, b in pages.items()}).encode()))
    return pages


class Mirror:
    """The snapshot served from memory on loopback (404 for anything else)."""

    def __init__(self, pages: dict[str, bytes]) -> None:
        self.pages = pages
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        async def handle(request: web.Request) -> web.Response:
            path = "/" if request.path == "/index.html" else request.path
            body = self.pages.get(path)
            if body is None:
                return web.Response(status=404, text="not in the snapshot")
            return web.Response(body=body, content_type="text/html", charset="utf-8")

        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


# -- judged queries -------------------------------------------------------------------------

_SYNOPSIS = re.compile(r'<table class="heading">.*?</table>\s*<p><span class="code">(.*?)<br>', re.S)
_TAG = re.compile(r"<[^>]+>")


@dataclass
class Judged:
    query: str
    relevant: set[str]  # paths; any of them answers the query
    kind: str  # "synopsis", "natural" or "identifier"


def module_of(path: str) -> str:
    return path.strip("/").removesuffix(".html")


def synopsis(page: bytes) -> str:
    m = _SYNOPSIS.search(page.decode("utf-8", "replace"))
    if not m:
        return ""
    return " ".join(html.unescape(_TAG.sub("", m.group(1))).split())


def synopsis_query(module: str, line: str) -> str:
    """The synopsis with every word that names the module removed."""
    names = {p.lower().strip("_") for p in module.split(".")} | {module.lower()}
    words = [w for w in line.split() if re.sub(r"\W", "", w).lower().strip("_") not in names]
    return " ".join(words)


def judged_queries(pages: dict[str, bytes]) -> list[Judged]:
    by_line: dict[str, set[str]] = {}
    query_of: dict[str, str] = {}
    for path, body in sorted(pages.items()):
        if path == "/" or not path.endswith(".html"):
            continue
        line = synopsis(body)
        if not line:
            continue
        q = synopsis_query(module_of(path), line)
        if len(q.split()) < 3 or q.startswith("#"):  # "# -*- coding: utf-8 -*-" is no synopsis
            continue
        by_line.setdefault(line, set()).add(path)
        query_of.setdefault(line, q)
    out = [Judged(query_of[line], paths, "synopsis") for line, paths in by_line.items()]
    for q, answers, kind in HAND:
        relevant = {f"/{a}.html" for a in answers}
        if relevant & pages.keys():
            out.append(Judged(q, relevant & pages.keys(), kind))
    return out


# -- measures ----------------------------------------------------------------------------------


@dataclass
class Scores:
    name: str
    ranks: list[int] = field(default_factory=list)  # 1-based rank of the first answer, 0 = not in top 10
    kinds: list[str] = field(default_factory=list)
    errors: int = 0

    def add(self, rank: int, kind: str) -> None:
        self.ranks.append(rank)
        self.kinds.append(kind)

    def figures(self, kind: str | None = None) -> dict[str, float]:
        ranks = [r for r, k in zip(self.ranks, self.kinds) if kind is None or k == kind]
        if not ranks:
            return {"queries": 0, "recall@10": 0.0, "mrr": 0.0}
        return {
            "queries": len(ranks),
            "recall@10": sum(1 for r in ranks if r) / len(ranks),
            "mrr": statistics.fmean(1.0 / r if r else 0.0 for r in ranks),
        }


async def evaluate(name: str, search: Search, queries: list[Judged]) -> tuple[Scores, list[dict[str, Any]]]:
    s = Scores(name)
    rows = []
    for j in queries:
        try:
            paths = await search(j.query)
        except Exception as e:  # noqa: BLE001 - a failed query counts as a miss and is listed
            s.errors += 1
            paths = []
            err = f"{type(e).__name__}: {e}"
        else:
            err = ""
        top = [urlsplit(u).path or "/" for u in paths[:10]]
        top = ["/" if p == "/index.html" else p for p in top]
        rank = next((i + 1 for i, p in enumerate(top) if p in j.relevant), 0)
        s.add(rank, j.kind)
        rows.append({"query": j.query, "kind": j.kind, "relevant": sorted(j.relevant), "rank": rank, "top": top, "error": err})
    return s, rows


# -- systems ---------------------------------------------------------------------------------------


def central_index(pages: dict[str, bytes], base: str, tmp: Path) -> tuple[Search, Search]:
    """One central Whoosh index, BM25F over title (boost 2) and body: OR and AND searches."""
    from whoosh import index as windex, scoring
    from whoosh.analysis import StemmingAnalyzer
    from whoosh.fields import ID, TEXT, Schema
    from whoosh.qparser import AndGroup, MultifieldParser, OrGroup

    from yasearch.crawler.extract import extract

    schema = Schema(
        url=ID(stored=True, unique=True),
        title=TEXT(analyzer=StemmingAnalyzer(), field_boost=2.0),
        body=TEXT(analyzer=StemmingAnalyzer()),
    )
    d = tmp / "central"
    d.mkdir()
    ix = windex.create_in(str(d), schema)
    w = ix.writer(limitmb=256)
    for path, body in pages.items():
        url = urljoin(base, path.lstrip("/"))
        e = extract(body, url, "text/html", "utf-8")
        w.add_document(url=url, title=e.title, body=" ".join((e.headings, e.body)))
    w.commit()
    searcher = ix.searcher(weighting=scoring.BM25F(B=0.75, K1=1.2))

    def make(group: Any) -> Search:
        parser = MultifieldParser(["title", "body"], schema, group=group)

        async def search(q: str) -> list[str]:
            query = parser.parse(q)
            return [hit["url"] for hit in searcher.search(query, limit=10)]

        return search

    return make(OrGroup), make(AndGroup)


async def crawl_peers(mirror_url: str, paths: list[str], n: int, tmp: Path) -> list[Any]:
    """``n`` started peers that crawled the snapshot (dealt out when n > 1) and published it."""
    from yasearch.config import Config
    from yasearch.crawler.types import CrawlSpec
    from yasearch.peer import Peer
    from yasearch.server import start_peer

    peers: list[Peer] = []
    for i in range(n):
        cfg = Config(
            # parse_workers 0: extraction in this process, so --ablations can switch parts of it off
            data_dir=tmp / f"peers{n}-{i}-{time.monotonic_ns()}", port=0, name=f"rel-{n}-{i}", crawl_delay=0.0,
            parse_workers=0,
            allow_private_networks=True, read_timeout=60.0,
        )
        peers.append(await start_peer(cfg))  # served over HTTP: peers ask each other there
    if n > 1:
        boot = [("127.0.0.1", peers[0].port)]
        for _round in range(2):
            for p in peers[1:]:
                await p.join(boot)
    if n == 1:
        specs = [CrawlSpec(urls=[mirror_url], depth=2, max_pages=len(paths) + 10, delay=0.0)]
    else:
        urls = [urljoin(mirror_url, p.lstrip("/")) for p in paths]
        specs = [CrawlSpec(urls=urls[i::n], depth=0, max_pages=len(urls), delay=0.0) for i in range(n)]
    jobs = [await p.start_crawl(spec) for p, spec in zip(peers, specs)]
    await asyncio.gather(*(p.jobs.wait(j.id) for p, j in zip(peers, jobs)))
    for p in peers:
        await p.index.flush()
    if n == 1:
        await peers[0].settle()  # pages indexed again with the anchor text of later links
    if n > 1:
        await asyncio.wait_for(asyncio.gather(*(p.settle() for p in peers)), 600)
        for p in peers:
            if p.dht is not None:
                await p.dht.refresh_info()
    log(f"{n} peer(s): {sum(p.index.doc_count() for p in peers)} documents indexed")
    return peers


def peer_search(peer: Any, scope: str) -> Search:
    async def search(q: str) -> list[str]:
        resp = await peer.search(q, limit=10, scope=scope)
        return [h.url for h in resp.results]

    return search


def overlap(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    """Mean overlap@10 (shared results / the longer list) of two systems over the same queries."""
    vals = [len(set(x["top"]) & set(y["top"])) / max(len(set(x["top"])), len(set(y["top"])))
            for x, y in zip(a, b) if x["top"] or y["top"]]
    return statistics.fmean(vals) if vals else 1.0


# -- the run -----------------------------------------------------------------------------------------


def table(scores: list[Scores]) -> str:
    lines = ["| system | queries | recall@10 | MRR | synopsis MRR | natural MRR | identifier MRR | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for s in scores:
        f = s.figures()
        kinds = [s.figures(k)["mrr"] for k in ("synopsis", "natural", "identifier")]
        lines.append(
            f"| {s.name} | {f['queries']} | {f['recall@10']:.3f} | {f['mrr']:.3f} | "
            + " | ".join(f"{k:.3f}" for k in kinds) + f" | {s.errors} |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    pages = await load_corpus(args.pages, args.cache)
    size = sum(len(b) for b in pages.values())
    log(f"corpus: {len(pages)} pages, {size / 1e6:.1f} MB of HTML")
    queries = judged_queries(pages)
    if args.queries:
        queries = queries[: args.queries]
    kinds = {k: sum(1 for q in queries if q.kind == k) for k in ("synopsis", "natural", "identifier")}
    log(f"judged queries: {len(queries)} {kinds}")
    mirror = Mirror(pages)
    url = await mirror.start()
    results: list[Scores] = []
    rows: dict[str, list[dict[str, Any]]] = {}
    try:
        if not args.no_central:
            c_or, c_and = central_index(pages, url, tmp)
            for name, fn in (("central BM25F (OR)", c_or), ("central BM25F (AND)", c_and)):
                s, r = await evaluate(name, fn, queries)
                results.append(s)
                rows[name] = r
        for n in ([1] if args.peers <= 1 else [1, args.peers]) if not args.no_yasearch else []:
            peers = await crawl_peers(url, list(pages), n, tmp)
            try:
                name = "yasearch, 1 peer" if n == 1 else f"yasearch, {n} peers (global)"
                s, r = await evaluate(name, peer_search(peers[0], "local" if n == 1 else "global"), queries)
                results.append(s)
                rows[name] = r
            finally:
                for p in reversed(peers):
                    await p.stop()
        switches = [(f"prior weight {w:g}", lambda w=w: prior_weight(w)) for w in args.prior_weights]
        if args.ablations:
            switches += [(f"without {name}", switch) for name, switch in ABLATIONS.items()]
        for name, switch in switches:
            if args.only and name.startswith("without") and not any(o in name for o in args.only):
                continue
            undo = switch()
            try:
                peers = await crawl_peers(url, list(pages), 1, tmp)
                try:
                    label = f"yasearch, 1 peer, {name}"
                    s, r = await evaluate(label, peer_search(peers[0], "local"), queries)
                    results.append(s)
                    rows[label] = r
                finally:
                    await peers[0].stop()
            finally:
                undo()
    finally:
        await mirror.stop()
    print(table(results))
    agreement = {}
    one = rows.get("yasearch, 1 peer")
    for name, r in rows.items():
        if one is not None and name.startswith("yasearch") and "peers" in name:
            agreement[name] = overlap(one, r)
            print(f"overlap@10 of {name} with 1 peer: {agreement[name]:.3f}")
    return {"pages": len(pages), "bytes": size, "queries": len(queries), "kinds": kinds,
            "figures": {s.name: {"all": s.figures(), **{k: s.figures(k) for k in kinds}, "errors": s.errors}
                        for s in results},
            "overlap@10 with 1 peer": agreement, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench relevance", description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=530, help="pages of the pydoc snapshot (default 530)")
    ap.add_argument("--peers", type=int, default=4, help="peers of the network run (default 4; 1 = no network run)")
    ap.add_argument("--queries", type=int, default=0, help="use only the first N judged queries (default all)")
    ap.add_argument("--cache", type=Path, help="keep the snapshot in this file (gzip JSON) and reuse it")
    ap.add_argument("--json", type=Path, help="also write the figures and every query's ranking as JSON")
    ap.add_argument("--no-central", action="store_true", help="skip the central Whoosh BM25F reference")
    ap.add_argument("--no-yasearch", action="store_true", help="skip the yasearch runs")
    ap.add_argument("--ablations", action="store_true",
                    help="also run 1 peer with each ranking signal switched off in turn (its contribution)")
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="with --ablations: only the signals whose name contains TEXT (repeatable)")
    ap.add_argument("--prior-weights", type=lambda v: [float(x) for x in v.split(",") if x], default=[],
                    help="also run 1 peer with the link-graph prior at these weights, e.g. 0,0.25,0.5")
    ap.add_argument("--strict", action="store_true", help="exit 2 when a goal is not met")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="yasearch-relevance-") as t:
        out = asyncio.run(run(args, Path(t)))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    figs = out["figures"]
    # the better of the two central rows is the reference
    central = max((f["all"]["mrr"] for n, f in figs.items() if n.startswith("central")), default=None)
    met = True
    for name, f in figs.items():
        if name.startswith("yasearch") and "without" not in name and "prior" not in name:
            ok = f["all"]["recall@10"] >= GOAL_RECALL and (central is None or f["all"]["mrr"] >= central + GOAL_MRR_ABOVE_CENTRAL)
            met &= ok
            print(f"{name}: goals (recall@10 >= {GOAL_RECALL}, MRR >= central + {GOAL_MRR_ABOVE_CENTRAL}) "
                  f"{'met' if ok else 'NOT met'}")
    return 2 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
