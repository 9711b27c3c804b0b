"""Query latency as the index grows: 600, 6,000, 60,000 pages, and pages of 100 KB-1 MB.

The crawl is skipped (it is measured by ``bench crawl`` itself): the generated
pages (:func:`bench.sitegen.iter_pages`, streamed, never all in memory) go
through the crawler's extractor on a process pool and straight into a
:class:`yasearch.index.LocalIndex`, then queries of 1-3 neighbouring words from
the pages' own text are timed through :func:`yasearch.search.search_local`
(the whole local query path: parse excluded, candidates, top-k, snippets,
facets off as on a page that does not show them). ``--check`` also compares
every top 10 of the engine (before lead proximity and duplicate collapse reorder
it for display) with exhaustive scoring of every match; queries of stopwords only
(answered as a phrase from stored text) are not checked.

``python -m bench crawl --growth 600,6000,60000 [--keep DIR]`` runs it after the
crawl benchmark; ``--growth-only`` skips the crawl; ``--big 300,3000`` adds sites
of pages of 100 KB-1 MB. With ``--keep DIR`` the indexes are kept there and
reused by the next run with the same sizes. Each row also gives the CPU time of
the process per query (all threads: steadier than wall time on a shared machine)
and the index's size on disk.
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench import sitegen

_QWORD = re.compile(r"[A-Za-z]{4,}")
_TAG = re.compile(r"<[^>]+>")
#: Pages whose text the queries are drawn from (a fixed sample of the site).
QUERY_PAGES = 300
BIG_PAGES = (100_000, 1_000_000)


def log(msg: str) -> None:
    print(f"[growth {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _extract(args: tuple[bytes, str]) -> Any:
    from yasearch.crawler.extract import extract

    return extract(args[0], args[1], "text/html", "utf-8")


def _documents(pages: int, seed: int, sizes: tuple[int, int] | None, workers: int,
               sample: dict[int, str]) -> Iterator[Any]:
    """Documents of the generated site, extracted on ``workers`` processes; keeps the
    text of the pages whose numbers are keys of ``sample``."""
    from yasearch.analysis import doc_id
    from yasearch.records import Document

    base = "http://bench.example"

    def raw() -> Iterator[tuple[bytes, str]]:
        for i, page in enumerate(sitegen.iter_pages(pages, seed, sizes)):
            if i in sample:
                sample[i] = _TAG.sub(" ", page.html.decode("utf-8"))
            yield page.html, base + page.path

    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        items = raw()
        batch: list[tuple[bytes, str]] = []
        for item in items:
            batch.append(item)
            if len(batch) >= 256:
                yield from _docs_of(pool, batch, Document, doc_id)
                batch = []
        if batch:
            yield from _docs_of(pool, batch, Document, doc_id)


def _docs_of(pool: ProcessPoolExecutor, batch: list[tuple[bytes, str]], Document: Any, doc_id: Any) -> Iterator[Any]:
    for (body, url), ex in zip(batch, pool.map(_extract, batch, chunksize=16)):
        yield Document(doc_id=doc_id(url), url=url, host="bench.example", title=ex.title, headings=ex.headings,
                       body=ex.body, description=ex.description, language=ex.language, crawled_at=0.0)


def query_set(texts: list[str], n: int, seed: int) -> list[str]:
    """``n`` queries of 1-3 neighbouring words of one page each (as ``bench crawl``)."""
    from yasearch.query import QueryError, parse_query

    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        words = _QWORD.findall(rng.choice(texts))
        if len(words) < 3:
            continue
        k = rng.randint(1, 3)
        start = rng.randrange(len(words) - k)
        q = " ".join(w.lower() for w in words[start : start + k])
        try:
            parse_query(q)
        except QueryError:
            continue
        out.append(q)
    return out


async def _build(directory: Path, pages: int, seed: int, sizes: tuple[int, int] | None, workers: int,
                 sample: dict[int, str]) -> dict[str, Any]:
    from yasearch.index import LocalIndex

    index = LocalIndex(directory, commit_batch=500, fsync=False)
    await index.open()
    try:
        if index.doc_count() == pages:
            for _ in _site_texts(pages, seed, sizes, sample):
                pass
            return {"reused": True}
        t0 = time.perf_counter()
        n = 0
        for doc in _documents(pages, seed, sizes, workers, sample):
            await index.add(doc)
            n += 1
            if n % 5000 == 0:
                log(f"  {n} of {pages} documents queued ({time.perf_counter() - t0:.0f}s)")
        await index.flush()
        elapsed = time.perf_counter() - t0
        return {"reused": False, "elapsed_s": round(elapsed, 1), "docs_per_second": round(pages / elapsed, 1)}
    finally:
        await index.close()


def _site_texts(pages: int, seed: int, sizes: tuple[int, int] | None, sample: dict[int, str]) -> Iterator[None]:
    for i, page in enumerate(sitegen.iter_pages(pages, seed, sizes)):
        if i in sample:
            sample[i] = _TAG.sub(" ", page.html.decode("utf-8"))
        yield None


async def _time_queries(directory: Path, qs: list[str], warm: list[str], check: bool) -> dict[str, Any]:
    from yasearch.index import LocalIndex
    from yasearch.query import parse_query
    from yasearch.search import build_query, search_local

    index = LocalIndex(directory)
    await index.open()
    try:
        for q in warm:
            await search_local(index, parse_query(q))
        lat: list[float] = []
        estimated = mismatched = unchecked = 0
        cpu = 0.0
        for q in qs:
            parsed = parse_query(q)
            c = time.process_time()
            t = time.perf_counter()
            resp = await search_local(index, parsed)
            lat.append((time.perf_counter() - t) * 1000.0)
            cpu += time.process_time() - c
            estimated += bool(getattr(resp, "total_estimated", False))  # absent before top-k
            if check and (parsed.stopword_phrase or build_query(parsed) is None):
                unchecked += 1  # only stopwords: answered as a phrase from stored text, not by top-k
            elif check:
                if await index.run_read(lambda view: _differs(view, parsed, build_query(parsed))):
                    mismatched += 1
                    log(f"  top-10 differs from exhaustive scoring for {q!r}")
        lat.sort()
        out = {"docs": index.doc_count(), "queries": len(qs), "p50_ms": round(statistics.median(lat), 2),
               "p95_ms": round(lat[min(len(lat) - 1, int(round(0.95 * len(lat))) - 1)], 2),
               "max_ms": round(lat[-1], 2), "cpu_ms_per_query": round(cpu * 1000.0 / max(1, len(qs)), 2),
               "estimated_totals": estimated,
               "disk_mb": round(sum(f.stat().st_size for f in directory.iterdir() if f.is_file()) / 2**20, 1)}
        if check:
            out["top10_mismatches"] = mismatched
            out["unchecked_stopword_queries"] = unchecked
        return out
    finally:
        await index.close()


def _differs(view: Any, parsed: Any, q: Any) -> bool:
    """The engine's top 10 (:func:`yasearch.search.top_matches`: documents and scores, before
    lead proximity and duplicate collapse reorder them for display) differs from scoring every match."""
    from yasearch.search import top_matches
    from yasearch.topk import exhaustive_top

    _total, _estimated, best = top_matches(view, parsed, q, 10, False)
    return [(doc_id, score) for _d, doc_id, score in best] != exhaustive_top(
        view, q, list(dict.fromkeys(parsed.terms)), 10)


def run(sizes: list[int], *, queries: int = 100, seed: int = 42, workers: int = 2, keep: Path | None = None,
        big: int | list[int] = 0, check: bool = True) -> list[dict[str, Any]]:
    """One row per site: ``sizes`` sites of ~20 KB pages, then one of each ``big`` (a size or a
    list of sizes) pages of 100 KB-1 MB."""
    import tempfile

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="yasearch-growth-") as tmp:
        root = keep or Path(tmp)
        specs: list[tuple[int, tuple[int, int] | None]] = [(n, None) for n in sizes]
        specs += [(n, BIG_PAGES) for n in ([big] if isinstance(big, int) else big) if n > 0]
        for pages, page_sizes in specs:
            name = f"{pages}" + ("-big" if page_sizes else "")
            rng = random.Random(seed)
            sample = {i: "" for i in rng.sample(range(pages), min(pages, QUERY_PAGES))}
            log(f"site of {pages} pages{' of 100 KB-1 MB' if page_sizes else ''}: generate, extract, index ...")
            built = asyncio.run(_build(root / name, pages, seed, page_sizes, workers, sample))
            log(f"  index: {built}")
            texts = [t for t in sample.values() if t]
            qs = query_set(texts, queries, seed)
            row = asyncio.run(_time_queries(root / name, qs, query_set(texts, 5, seed + 1), check))
            row.update(site=name, index=built)
            log(f"  queries: {row}")
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| site | documents | query p50 | p95 | max | CPU per query | disk | top-10 = exhaustive |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        checked = r["queries"] - r.get("unchecked_stopword_queries", 0)
        same = "-" if "top10_mismatches" not in r else f"{checked - r['top10_mismatches']}/{checked}"
        lines.append(f"| {r['site']} | {r['docs']} | {r['p50_ms']} ms | {r['p95_ms']} ms | {r['max_ms']} ms "
                     f"| {r.get('cpu_ms_per_query', '-')} ms | {r.get('disk_mb', '-')} MB | {same} |")
    return "\n".join(lines)
