"""``python -m bench crawl|network|recrawl|wire|relevance [options]``: the benchmarks.

``crawl``: crawl + index + query on one peer (:mod:`bench.crawl_index`);
``network``: N peers as processes, publishing and global search (:mod:`bench.network`);
``recrawl``: a revisit round against a full recrawl, WARC import against crawling (:mod:`bench.recrawl`);
``wire``: decoding + validating one p2p postings batch, msgspec vs pydantic (:mod:`bench.wire`);
``relevance``: recall@10 and MRR on pydoc's pages against central BM25F (:mod:`bench.relevance`);
``shard``: the shard store's bytes per held posting and its read/write times (:mod:`bench.shard`).
See docs/benchmarks.md for what is measured and the results.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench crawl [--pages N] [--workers N] [--queries N] [--no-scrapy] "
              "[--set KEY=VALUE] [--json FILE] [--strict]\n"
              "       python -m bench network [--peers N] [--pages N] [--queries N] [--json FILE] [--strict]\n"
              "       python -m bench recrawl [--pages N] [--changed F] [--gone F] [--json FILE] [--strict]\n"
              "       python -m bench wire [--postings N] [--runs N]\n"
              "       python -m bench relevance [--pages N] [--peers N] [--cache FILE] [--json FILE] [--strict]\n"
              "       python -m bench shard [--postings N] [--docs N] [--code DIR]\n\n"
              "  crawl   crawl + index a generated local site, Scrapy as the reference, query latency\n"
              "          (python -m bench crawl --help for every option)\n"
              "  network N peers as processes on loopback: publish throughput, DHT lookups, global query\n"
              "          latency, bytes per query, overlap@10 (python -m bench network --help)\n"
              "  recrawl a revisit round (conditional GETs) against a full recrawl; WARC import rate\n"
              "  wire    decode + validate one 5,000-posting p2p batch: msgspec vs pydantic v2\n"
              "  relevance recall@10 and MRR of judged queries on pydoc's pages, yasearch (1 peer and a\n"
              "          network) beside central Whoosh BM25F (python -m bench relevance --help)\n"
              "  shard   the shard store: bytes per held posting, write/read/withdrawal times\n"
              "          (python -m bench shard --help)")
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd in ("crawl", "network", "recrawl", "wire", "relevance", "shard"):
        if cmd == "crawl":
            from bench.crawl_index import main as run_main
        elif cmd == "recrawl":
            from bench.recrawl import main as run_main
        elif cmd == "network":
            from bench.network import main as run_main
        elif cmd == "relevance":
            from bench.relevance import main as run_main
        elif cmd == "shard":
            from bench.shard import main as run_main
        else:
            from bench.wire import main as run_main

        try:
            return run_main(rest)
        except KeyboardInterrupt:
            return 130
        except Exception as e:  # noqa: BLE001 - a benchmark failure is reported, not traced
            import traceback

            traceback.print_exc()
            print(f"benchmark failed: {e}", file=sys.stderr)
            return 1
    print(f"unknown command {cmd!r}; try: python -m bench crawl | network | recrawl | wire | relevance | shard",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
