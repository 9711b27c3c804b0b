"""CPU time per local query, in one thread, on an index kept by ``bench crawl --growth ... --keep DIR``.

``python -m bench qcpu PAGES DIR [--big] [--rounds N] [--profile N]`` runs the
growth benchmark's 100 queries (same seed, same sampled pages) ``N`` times
straight through :func:`yasearch.search._search_view` (no event loop, no reader
pool) and prints wall p50/p95 and the CPU time of each query, word queries and
stopword-only queries (answered by a phrase scan, :func:`yasearch.relax.stopword_view`)
apart. CPU time is what a shared machine disturbs least: compare codes by
running them alternately on the same index. ``--profile N`` prints the N most
expensive functions (cProfile, cumulative).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import time
from pathlib import Path

from bench.growth import BIG_PAGES, QUERY_PAGES, _site_texts, query_set


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench qcpu", description=__doc__.split("\n")[0])
    ap.add_argument("pages", type=int, help="pages of the site the index was built from")
    ap.add_argument("directory", type=Path, help="the index directory (e.g. DIR/3000-big)")
    ap.add_argument("--big", action="store_true", help="the site of pages of 100 KB-1 MB")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--profile", type=int, default=0, metavar="N")
    args = ap.parse_args(argv)

    from whoosh import index as whoosh_index

    from yasearch.index.reader import ReadView
    from yasearch.query import parse_query
    from yasearch.search import _search_view

    rng = random.Random(args.seed)
    sample = {i: "" for i in rng.sample(range(args.pages), min(args.pages, QUERY_PAGES))}
    for _ in _site_texts(args.pages, args.seed, BIG_PAGES if args.big else None, sample):
        pass
    texts = [t for t in sample.values() if t]
    queries = [parse_query(q) for q in query_set(texts, 100, args.seed)]
    view = ReadView(whoosh_index.open_dir(str(args.directory)).searcher(), 1, {})
    for q in query_set(texts, 5, args.seed + 1):
        _search_view(view, parse_query(q), 10, 0)
    prof = cProfile.Profile() if args.profile else None
    lat: list[float] = []
    word: list[float] = []
    stop: list[float] = []
    for _ in range(args.rounds):
        for parsed in queries:
            if prof:
                prof.enable()
            c, t = time.process_time(), time.perf_counter()
            _search_view(view, parsed, 10, 0)
            lat.append((time.perf_counter() - t) * 1000)
            (stop if parsed.stopword_phrase else word).append((time.process_time() - c) * 1000)
            if prof:
                prof.disable()
    lat.sort()
    word.sort()
    n = len(lat)
    print(f"{args.directory}: wall p50 {statistics.median(lat):.2f} p95 {lat[int(0.95 * n) - 1]:.2f} "
          f"max {lat[-1]:.1f} ms; CPU per word query ({len(word)}) mean {statistics.mean(word):.2f} "
          f"p50 {statistics.median(word):.2f} p95 {word[int(0.95 * len(word)) - 1]:.2f} ms; "
          f"stopword-only ({len(stop)}) mean {statistics.mean(stop) if stop else 0.0:.1f} ms")
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
