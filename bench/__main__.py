"""``python -m bench COMMAND [options]``: the benchmarks (see docs/benchmarks.md for results).

Each command is one module of this package with a ``main(argv) -> int``; the table
below names it, its options and what it measures. ``python -m bench COMMAND --help``
lists every option of one command.
"""

from __future__ import annotations

import importlib
import sys

#: command -> (module, usage options, what it measures)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "crawl": (
        "bench.crawl_index",
        "[--pages N] [--growth] [--big] [--no-scrapy] [--no-phases] [--json FILE] [--strict]",
        "crawl + index a generated local site, Scrapy as the reference, query latency as the index grows",
    ),
    "qcpu": (
        "bench.qcpu",
        "PAGES DIR [--big] [--rounds N] [--profile N]",
        "CPU time per local query in one thread on an index kept by crawl --growth --keep",
    ),
    "network": (
        "bench.network",
        "[--peers N] [--pages N] [--queries N] [--json FILE] [--strict]",
        "N peers as processes on loopback: publish throughput, global query latency, round trips, "
        "bytes per query, overlap@10",
    ),
    "wan": (
        "bench.wan",
        "[--peers N] [--delay MS] [--loss P] [--pages N] [--json FILE]",
        "peers in network namespaces (root), WAN delay/loss, one peer behind NAT: query latency, "
        "overlap@10, settle time, the NAT'd peer",
    ),
    "scale": (
        "bench.scale",
        "[--peers 8,48] [--crawlers 4] [--pages N] [--kill 0.3] [--code DIR]",
        "publish settle time for 8 vs 48 peers; recall and repair after 30 % of the peers die at once",
    ),
    "dhtsim": (
        "bench.dhtsim",
        "[--sizes 10,100,1000] [--lookups N] [--latency MS] [--loss P] [--json FILE]",
        "10 to 1,000 real DHT nodes in one process on an in-memory network with latency: lookup hops, "
        "time, routing table size against N; replica sets under churn",
    ),
    "shard": (
        "bench.shard",
        "[--postings N] [--docs N] [--code DIR]",
        "the shard store: bytes per held posting, write/read/withdrawal times",
    ),
    "recrawl": (
        "bench.recrawl",
        "[--pages N] [--changed F] [--gone F] [--json FILE] [--strict]",
        "a revisit round (conditional GETs) against a full recrawl; WARC import rate",
    ),
    "wire": ("bench.wire", "[--postings N] [--runs N]", "decode + validate one 5,000-posting p2p batch: msgspec vs pydantic v2"),
    "relevance": (
        "bench.relevance",
        "[--pages N] [--peers N] [--cache FILE] [--json FILE] [--strict]",
        "recall@10 and MRR of judged queries on pydoc's pages, yasearch (1 peer and a network) beside "
        "central Whoosh BM25F",
    ),
}


def usage() -> str:
    lines = ["usage:"]
    lines += [f"  python -m bench {name} {opts}" for name, (_m, opts, _d) in COMMANDS.items()]
    lines.append("")
    lines += [f"  {name:<10}{what}" for name, (_m, _o, what) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"unknown command {cmd!r}; try: python -m bench {' | '.join(COMMANDS)}", file=sys.stderr)
        return 2
    run_main = importlib.import_module(COMMANDS[cmd][0]).main
    try:
        return run_main(rest)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - a benchmark failure is reported, not traced
        import traceback

        traceback.print_exc()
        print(f"benchmark failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
