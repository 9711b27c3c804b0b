"""The `yasearch` command line: run a peer, run the demo, talk to a running peer."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from yasearch import __version__, archivecli, configcli, jobscli
from yasearch.client import DEFAULT_PEER, PeerClient, PeerError
from yasearch.config import DEFAULT_PORT, Config, ConfigError
from yasearch.seedlist import group_by_options, parse_seed_lines
from yasearch.units import duration, plural

log = logging.getLogger("yasearch")


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbosity < 2:
        logging.getLogger("kademlia").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def crawl_seed_list(peer: Any, path: Path) -> list[str]:
    """One crawl job per set of per-line options of the seed list; unusable lines are named.
    Returns the ids of the jobs started."""
    from yasearch.api import parse_crawl_spec
    from yasearch.crawler.types import CrawlSpec
    from yasearch.errors import ApiError

    try:
        seeds, errors = parse_seed_lines(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as e:
        print(f"yasearch peer: cannot use seed list {path}: {e}", file=sys.stderr)
        return []
    started: list[str] = []
    for n, msg in errors:
        print(f"yasearch peer: {path} line {n}: {msg} (line skipped)", file=sys.stderr)
    for options, urls in group_by_options(seeds):
        try:
            spec: CrawlSpec = parse_crawl_spec({"urls": urls, "depth": 1, "max_pages": 1000, **options})
        except ApiError as e:
            print(f"yasearch peer: cannot use seed list {path}: {e.message}", file=sys.stderr)
            continue
        job = await peer.start_crawl(spec)
        started.append(job.id)
        print(f"crawling {len(spec.urls)} seed URLs from {path} (job {job.id}); progress at {peer.url}/crawl")
    return started


def default_seeds() -> Path | None:
    for candidate in (Path("seeds.txt"), Path(__file__).resolve().parent / "seeds.txt"):
        if candidate.is_file():
            return candidate
    return None


def parse_host_port(text: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port), or None when it is not one."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


# -- commands ------------------------------------------------------------------


async def cmd_peer(args: argparse.Namespace) -> int:
    from yasearch.server import start_peer
    from yasearch.logsetup import add_log_file
    from yasearch.startup import check_data_dir, explain, spawn_seed_report

    try:
        config = Config.load(
            args.config,
            port=args.port,
            data_dir=args.data_dir,
            bootstrap=args.bootstrap or None,
            name=args.name,
            host=args.host,
            allow_private_networks=True if args.allow_private_networks else None,
            log_file=args.log_file,
            access_log=args.access_log,
        )
    except ConfigError as e:
        print(f"yasearch peer: {e}", file=sys.stderr)
        return 2
    bad = [b for b in config.bootstrap if parse_host_port(b) is None]
    if bad:
        print(f"yasearch peer: bootstrap {bad[0]!r} is not HOST:PORT (e.g. 192.0.2.7:8090)", file=sys.stderr)
        return 2
    # from here on SIGTERM/SIGINT stop the peer cleanly, even one that arrives while it starts
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        check_data_dir(config.data_dir)
        if config.log_file:
            add_log_file(config.log_file)
        peer = await start_peer(config)
    except ConfigError as e:  # e.g. a public bind without an admin token
        print(f"yasearch peer: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - every startup failure is one line (-v: the traceback)
        log.info("startup failed", exc_info=True)
        print(f"yasearch peer: {explain(e)}", file=sys.stderr)
        return 1
    print(f"yasearch {__version__}: peer {peer.name} ({peer.peer_id[:12]}) up; web UI at {peer.url}/", flush=True)
    if config.bootstrap:
        print(f"joining the network through {', '.join(config.bootstrap)}", flush=True)
    seeds = args.seeds or config.seeds or (None if args.no_seeds else default_seeds())
    seed_reports: list[asyncio.Task[None]] = []
    if seeds and not peer.jobs.list():
        jobs = await crawl_seed_list(peer, Path(seeds))
        seed_reports = [spawn_seed_report(peer, job_id) for job_id in jobs]
    await stop.wait()
    print("stopping (committing the index) ...", file=sys.stderr)
    for report in seed_reports:
        report.cancel()
    await peer.stop()
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    from yasearch.demo import run_demo
    from yasearch.lifecycle import until_signal

    return await until_signal(run_demo(
        peers=args.peers, port=args.port, pages=args.pages, data_dir=args.data_dir, exit_after_crawl=args.exit_after_crawl
    ))


async def cmd_crawl(args: argparse.Namespace) -> int:
    from yasearch.progress import watch

    body: dict[str, Any] = {"urls": args.urls, "depth": args.depth, "max_pages": args.max_pages}
    if args.delay is not None:
        body["delay"] = args.delay
    if args.allow:
        body["allow"] = args.allow
    if args.deny:
        body["deny"] = args.deny
    if args.no_sitemaps:
        body["sitemaps"] = False
    if args.warc:
        body["warc"] = True
    async with PeerClient(args.peer, args.token) as client:
        job = await client.request("POST", "/api/v1/crawl", json=body)
        if args.no_wait:
            print(job["id"])
            return 0
        print(f"crawl job {job['id']} started on {args.peer}", file=sys.stderr, flush=True)
        state = await watch(client, job)
        if state is None:
            return 130
        if args.warc:
            with open(args.warc, "wb") as out:
                size = await client.download(f"/api/v1/crawl/{job['id']}/warc", out)
            print(f"WARC of what was fetched: {args.warc} ({size:,} bytes)", file=sys.stderr)
    if state["state"] != "done":
        why = f": {state['error']}" if state.get("error") else ""
        print(f"yasearch crawl: the job ended as {state['state']!r}, not 'done'{why}", file=sys.stderr)
        return 1
    if not state.get("indexed"):
        print("yasearch crawl: nothing was indexed", file=sys.stderr)
        return 1
    return 0


async def cmd_search(args: argparse.Namespace) -> int:
    params = {
        "q": " ".join(args.query),
        "limit": str(args.limit),
        "offset": str(args.offset),
        "scope": "local" if args.local else "global",
    }
    async with PeerClient(args.peer) as client:
        data = await client.request("GET", "/api/v1/search", params=params)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    peers = data.get("peers", {})
    if data.get("did_you_mean"):
        print(f"Did you mean: {_clean(data['did_you_mean'])}")
    print(f"{plural(data['total'], 'result')} in {data['took_ms']:.0f} ms (peers asked {peers.get('asked', 0)}, answered {peers.get('answered', 0)})"
          + (" - too few pages have every word: pages with most of them" if data.get("relaxed") else ""))
    for i, hit in enumerate(data["results"], start=1 + data.get("offset", 0)):
        print(f"\n{i}. {_clean(hit.get('title') or hit['url'])}\n   {_clean(hit['url'])}")
        if hit.get("snippet"):
            print(f"   {_clean(hit['snippet'])}")
    shown = data.get("offset", 0) + len(data["results"])
    if shown < data["total"] and data["results"]:
        print(f"\n(more: --offset {shown})")
    return 0


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def _clean(text: str) -> str:
    """Crawled text without control characters: a page title must not drive the terminal."""
    return _CONTROL.sub(" ", str(text)).strip()


async def cmd_status(args: argparse.Namespace) -> int:
    from yasearch.status import backlog_note

    async with PeerClient(args.peer) as client:
        data = await client.request("GET", "/api/v1/status")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    crawl = data.get("crawl", {})
    pub = data.get("publish", {})
    print(f"peer       {data['name']} ({data['peer_id']}) version {data['version']}, up {duration(data.get('uptime_s', 0))}")
    print(f"documents  {data['documents']}")
    print(f"network    peers known {data.get('peers_known', 0)}, postings held {data.get('postings_held', 0)}")
    reach = data.get("reach") or {}
    if reach:
        print(f"reach      {reach.get('kind', 'public')}"
              + (f", observed at {reach['observed']}" if reach.get("observed") else "")
              + ("" if reach.get("checked", True) else " (not checked yet)"))
    print(f"publish    pending {pub.get('pending', 0)}, sent {pub.get('sent', 0)}, failed {pub.get('failed', 0)}")
    if pub.get("pending"):
        print(f"           {backlog_note(data)}")
    print(
        f"crawl      jobs {crawl.get('jobs', 0)} (running {crawl.get('running', 0)}), fetched {crawl.get('fetched', 0)}, "
        f"indexed {crawl.get('indexed', 0)}, failed {crawl.get('failed', 0)}, queued {crawl.get('queued', 0)}"
    )
    return 0


_PEER_HELP = f"the peer's URL or HOST:PORT (default {DEFAULT_PEER}, or YASEARCH_PEER)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yasearch", description="A peer-to-peer web search engine.")
    p.add_argument("--version", action="version", version=f"yasearch {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True)

    peer = sub.add_parser("peer", help="run a peer until Ctrl-C")
    peer.add_argument("--port", type=int, help=f"TCP (HTTP) and UDP (DHT) port, default {DEFAULT_PORT}")
    peer.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for other machines)")
    peer.add_argument("--data-dir", type=Path, help="where the index and state live (default ./data)")
    peer.add_argument("--bootstrap", action="append", metavar="HOST:PORT", help="a known peer (repeatable)")
    peer.add_argument("--seeds", type=Path, help="seed list to crawl on first start (default seeds.txt)")
    peer.add_argument("--no-seeds", action="store_true", help="do not crawl the default seed list")
    peer.add_argument("--name", help="display name of this peer")
    peer.add_argument("--config", type=Path, help="TOML config file")
    peer.add_argument(
        "--allow-private-networks", action="store_true",
        help="let the crawler reach loopback and private addresses (your own network); off by default",
    )
    peer.add_argument("--log-file", help="also write the log to this file (rotated at 10 MB, 5 kept)")
    peer.add_argument("--access-log", metavar="FILE", help="log every HTTP request to FILE (combined format; - = stdout)")
    peer.set_defaults(func=cmd_peer)

    demo = sub.add_parser("demo", help="offline demo: N peers on loopback crawl Python's docs; the UI is served")
    demo.add_argument("--peers", type=int, default=1, help="peers on loopback, 1-16 (default 1)")
    demo.add_argument(
        "--port", type=int, default=DEFAULT_PORT,
        help=f"port of the first peer, the others take the next ones (default {DEFAULT_PORT}; 0 = free ports)",
    )
    demo.add_argument("--pages", type=int, default=300, help="pages to crawl (default 300)")
    demo.add_argument("--data-dir", type=Path, help="keep the demo index here (default: a temporary dir)")
    demo.add_argument("--exit-after-crawl", action="store_true", help=argparse.SUPPRESS)
    demo.set_defaults(func=cmd_demo)

    crawl = sub.add_parser("crawl", help="ask a running peer to crawl, and show progress")
    crawl.add_argument("urls", nargs="+", metavar="URL", help="where to start (http or https)")
    crawl.add_argument("--depth", type=int, default=2, help="links to follow from the start URLs (default 2)")
    crawl.add_argument("--max-pages", type=int, default=100, help="stop after this many pages (default 100)")
    crawl.add_argument("--delay", type=float, help="seconds between requests to one host")
    crawl.add_argument("--allow", action="append", help="only URLs matching this regex (repeatable)")
    crawl.add_argument("--deny", action="append", help="skip URLs matching this regex (repeatable)")
    crawl.add_argument("--peer", default=DEFAULT_PEER, help=_PEER_HELP)
    crawl.add_argument("--token", help="admin token (or YASEARCH_TOKEN)")
    crawl.add_argument("--no-wait", action="store_true", help="print the job id and return")
    crawl.add_argument("--no-sitemaps", action="store_true", help="do not read the seed hosts' sitemaps")
    crawl.add_argument("--warc", type=Path, metavar="FILE", help="also save what was fetched as a WARC file here")
    crawl.set_defaults(func=cmd_crawl)
    archivecli.add_parsers(sub)

    search = sub.add_parser("search", help="query a running peer")
    search.add_argument("query", nargs="+", help="words; \"a phrase\", -word, site:host (see the web UI's syntax help)")
    search.add_argument("--peer", default=DEFAULT_PEER, help=_PEER_HELP)
    search.add_argument("--local", action="store_true", help="only this peer's own index")
    search.add_argument("--json", action="store_true", help="print the peer's JSON answer")
    search.add_argument("--limit", type=int, default=10, help="results per page (1-100, default 10)")
    search.add_argument("--offset", type=int, default=0, help="skip this many results (for the next pages)")
    search.set_defaults(func=cmd_search)

    status = sub.add_parser("status", help="peer, index, DHT and crawl figures")
    status.add_argument("--peer", default=DEFAULT_PEER, help=_PEER_HELP)
    status.add_argument("--json", action="store_true", help="print the peer's JSON answer")
    status.set_defaults(func=cmd_status)
    jobscli.add_parser(sub)
    configcli.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return asyncio.run(args.func(args))
    except PeerError as e:
        print(f"yasearch {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `yasearch search ... | head`: the reader left; exit quietly.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 141


if __name__ == "__main__":
    sys.exit(main())
