"""Publishing at scale and repair after a mass failure (issue 9), peers as processes on loopback.

For each peer count N of ``--peers`` (e.g. ``8,48``), one run does, in order:

1. start N peers (``python -m yasearch peer``, as :mod:`bench.network` does; the first
   is the bootstrap) and wait until every one knows the N-1 others;
2. **publish**: the first ``--crawlers`` peers crawl disjoint shares of the same
   generated site (``--pages`` pages, depth 0); the others crawl nothing. Settle time
   = from the first crawl request until every job is done and every crawling peer's
   outbox is empty (:func:`bench.network.run_publish`, polling the crawling peers
   only: their counters are the publishing figures);
3. **before** (once the searcher's N, from the peers' info records, counts every
   page): ``--queries`` global queries at the searching peer (a non-crawling peer
   that is never killed): recall@10 and MRR against one reference peer that crawled
   every page alone (its ``scope=local`` top 10; MRR of its first hit); and the
   **replica count** of every query term: of the r peers XOR-closest to the term
   among the live peers, how many hold all its postings (df = the largest df any
   peer reports);
4. **kill**: ``--kill`` (30 %) of the N peers die at once (SIGKILL), chosen (seeded)
   among the peers that neither crawl nor search, so the origins stay and what is
   measured is the holders' repair;
5. **right after**: the same queries at once; then the replica count every few
   seconds until it is back to its value before the kill (``--repair-timeout``):
   the time repair took; then the queries again (**after repair**).

The ratio of settle times (largest N / smallest N) is the issue's figure (goal
<= 1.5). Every figure comes from one run on one machine: compare within a run.
``--code DIR`` runs the peers from another checkout (e.g. a detached worktree of
an older commit) while this file drives them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import sitegen
from bench.common import REPO, RunResults, add_report_args, log, machine, report, served_site, table_lines
from bench.network import (PeerProc, post_json, query_set, responsible, run_publish, run_reference, vocabulary,
                           wait_membership, wait_network_stats)
from yasearch.wire import PROTOCOL_VERSION

GOAL_SETTLE_RATIO = 1.5
GOAL_REPAIR_S = 60.0


class CodePeer(PeerProc):
    """A peer process running the code of ``code`` (a checkout), not necessarily this one."""

    code: Path = REPO

    def start(self) -> None:
        cmd = [sys.executable, "-m", "yasearch", "-v", "peer", "--port", str(self.port), "--data-dir", str(self.data_dir),
               "--no-seeds", "--name", self.name, "--config", str(self.config)]
        if self.bootstrap:
            cmd += ["--bootstrap", self.bootstrap]
        env = dict(os.environ, PYTHONPATH=str(self.code))
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.code)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()


@dataclass
class Results(RunResults):
    reference: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


Queries = list[tuple[str, list[str], str]]


async def reference_answers(http: aiohttp.ClientSession, ref: PeerProc, queries: Queries) -> dict[str, list[str]]:
    out = {}
    for q, _, _ in queries:
        body = await search(http, ref, q, "local")
        out[q] = [h["url"] for h in body["results"][:10]]
    return out


async def search(http: aiohttp.ClientSession, peer: PeerProc, q: str, scope: str) -> dict[str, Any]:
    async with http.get(peer.url + "/api/v1/search", params={"q": q, "scope": scope, "limit": "10"},
                        timeout=aiohttp.ClientTimeout(total=30)) as resp:
        body = await resp.json()
    if resp.status != 200:
        raise RuntimeError(f"search {q!r} at {peer.name} answered {resp.status}: {body}")
    return body


async def quality(http: aiohttp.ClientSession, searcher: PeerProc, queries: Queries,
                  ref: dict[str, list[str]]) -> dict[str, Any]:
    """recall@10 and MRR of the searcher's global answers against the reference's."""
    recalls, rr, walls, partial = [], [], [], 0
    for q, _, _ in queries:
        want = ref.get(q) or []
        if not want:
            continue
        t = time.perf_counter()
        body = await search(http, searcher, q, "global")
        walls.append((time.perf_counter() - t) * 1000.0)
        got = [h["url"] for h in body["results"][:10]]
        recalls.append(len(set(got) & set(want)) / len(want))
        rr.append(1.0 / (got.index(want[0]) + 1) if want[0] in got else 0.0)
        partial += 1 if body.get("peers", {}).get("failed", 0) else 0
    walls.sort()
    n = len(recalls)
    return {"queries": n, "recall_at_10": round(sum(recalls) / n, 4) if n else None,
            "mrr": round(sum(rr) / n, 4) if n else None, "partial_answers": partial,
            "p95_ms": round(walls[min(n - 1, int(0.95 * n))], 1) if n else None}


async def df_at(http: aiohttp.ClientSession, peer: PeerProc, term: str) -> int | None:
    try:
        status, body, _ = await post_json(http, peer.url + "/p2p/v1/lookup",
                                          {"v": PROTOCOL_VERSION, "terms": [term], "m": 0}, timeout=10)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
        return None
    return int(body.get("df", {}).get(term, 0)) if status == 200 else None


async def full_df(http: aiohttp.ClientSession, live: list[PeerProc], terms: list[str]) -> dict[str, int]:
    """The largest df any live peer reports for each term (what a full replica holds)."""
    out = {}
    for t in terms:
        dfs = await asyncio.gather(*(df_at(http, p, t) for p in live))
        out[t] = max(d or 0 for d in dfs)
    return out


async def replicas(http: aiohttp.ClientSession, live: list[PeerProc], terms: list[str], full: dict[str, int],
                   r: int) -> dict[str, Any]:
    """Of each term's r XOR-closest live peers, how many hold all of its postings."""
    by_id = {p.peer_id: p for p in live}
    gate = asyncio.Semaphore(16)

    async def one(t: str) -> int:
        holders = [by_id[i] for i in responsible(t, list(by_id), r)]
        async with gate:
            dfs = await asyncio.gather(*(df_at(http, p, t) for p in holders))
        return sum(1 for d in dfs if d is not None and d >= full[t])

    oks = await asyncio.gather(*(one(t) for t in terms))
    complete = sum(oks)
    short_terms = sum(1 for ok in oks if ok < r)
    return {"complete_replicas": complete, "replicas": r * len(terms), "terms_short": short_terms,
            "share": round(complete / (r * len(terms)), 4) if terms else None}


async def one_network(args: argparse.Namespace, tmp: Path, n: int, urls: list[str], queries: Queries,
                      ref: dict[str, list[str]], cfg: Path) -> dict[str, Any]:
    root = tmp / f"net{n}"
    root.mkdir()
    first = CodePeer(root, "peer00", cfg, None)
    boot = f"127.0.0.1:{first.port}"
    peers = [first] + [CodePeer(root, f"peer{i:02d}", cfg, boot) for i in range(1, n)]
    crawlers = peers[: args.crawlers]
    searcher = peers[args.crawlers]
    out: dict[str, Any] = {"peers": n, "crawlers": len(crawlers)}
    try:
        async with aiohttp.ClientSession() as http:
            first.start()
            await first.wait_ready(http)
            for p in peers[1:]:
                p.start()
            await asyncio.gather(*(p.wait_ready(http, timeout=180) for p in peers[1:]))
            log(f"{n} peer processes up ({len(crawlers)} crawling)")
            out["join"] = await wait_membership(http, peers, args.join_timeout)
            # only the crawling peers are polled: their outboxes say when publishing settles,
            # and 48 status calls every few seconds would load the machine being measured
            out["publish"] = await run_publish(http, crawlers, crawlers, urls, args.timeout, args.poll)
            log(f"N={n}: publishing settled in {out['publish']['settled_s']} s")
            if args.no_kill:
                return out
            if not out["publish"]["settled"]:
                log(f"N={n}: publishing did not settle: no kill (recall and replicas would mean nothing)")
                return out
            await asyncio.sleep(args.quiet)  # let the last acknowledgements land everywhere
            # BM25's N at the searcher comes from the peers' info records: wait until it
            # counts every page, or recall "before" measures stale statistics
            out["stats"] = await wait_network_stats(http, searcher, out["publish"]["pages_indexed"], args.stats_timeout)
            all_terms = sorted({t for _, ts, _ in queries for t in ts})
            full = await full_df(http, peers, all_terms)
            terms = [t for t in all_terms if full[t]]
            out["before"] = {**await quality(http, searcher, queries, ref),
                             **await replicas(http, peers, terms, full, args.replication)}
            log(f"N={n} before the kill: {out['before']}")
            spare = [p for p in peers if p not in crawlers and p is not searcher]
            k = min(len(spare), round(args.kill * n))
            victims = random.Random(args.seed).sample(spare, k)
            for p in victims:
                p.kill()
            t0 = time.perf_counter()
            live = [p for p in peers if p not in victims]
            log(f"N={n}: killed {k} of {n} peers at once ({', '.join(p.name for p in victims)})")
            out["killed"] = k
            out["right_after"] = {**await replicas(http, live, terms, full, args.replication),
                                  **await quality(http, searcher, queries, ref)}
            log(f"N={n} right after: {out['right_after']}")
            target = out["before"]["complete_replicas"]
            repaired_at = None
            while time.perf_counter() - t0 < args.repair_timeout:
                rep = await replicas(http, live, terms, full, args.replication)
                now = time.perf_counter() - t0
                if rep["complete_replicas"] >= target:
                    repaired_at = now
                    break
                log(f"  {now:5.1f}s after the kill: {rep['complete_replicas']}/{rep['replicas']} replicas complete")
                await asyncio.sleep(args.poll)
            out["repair_s"] = round(repaired_at, 1) if repaired_at is not None else None
            out["after_repair"] = {**await replicas(http, live, terms, full, args.replication),
                                   **await quality(http, searcher, queries, ref)}
            log(f"N={n} after repair ({out['repair_s']} s; None = not within {args.repair_timeout:.0f} s): "
                f"{out['after_repair']}")
    finally:
        for p in peers:
            p.stop()
        for p in peers:
            p.reap()
    return out


async def run(args: argparse.Namespace, tmp: Path, site: sitegen.Site, site_url: str, r: Results) -> None:
    cfg = tmp / "peer.toml"
    extra = [f"{k.strip()} = {v.strip()}" for k, _, v in (s.partition("=") for s in args.set)]
    lines = ["crawl_delay = 0.0", "parse_workers = 0", "allow_private_networks = true", "recrawl_share = 0.0",
             f"replication = {args.replication}", *extra]
    cfg.write_text("\n".join(lines) + "\n")
    r.config["peer_config"] = lines
    urls = site.urls(site_url)
    queries = query_set(vocabulary(site), args.queries, args.seed)
    ref_peer = CodePeer(tmp, "reference", cfg, None)
    async with aiohttp.ClientSession() as http:
        try:
            ref_peer.start()
            await ref_peer.wait_ready(http)
            r.reference = await run_reference(http, ref_peer, urls, args.timeout)
            ref = await reference_answers(http, ref_peer, queries)
        finally:
            ref_peer.stop()
            ref_peer.reap()
    for n in args.peers:
        r.runs.append(await one_network(args, tmp, n, urls, queries, ref, cfg))
    settle = {x["peers"]: x["publish"]["settled_s"] for x in r.runs}
    lo, hi = min(settle), max(settle)
    r.summary = {"settle_s": settle}
    if hi != lo:
        r.summary["settle_ratio"] = round(settle[hi] / settle[lo], 2)


def table(r: Results) -> str:
    rows: list[tuple[str, str, str]] = []
    for x in r.runs:
        p, n = x["publish"], x["peers"]
        rows.append((f"N={n}: publish settles", f"{p['settled_s']} s" + ("" if p["settled"] else " (NOT settled)"),
                     f"{p['pages_indexed']} pages by {x['crawlers']} crawlers, {p['postings_acked']} postings acked, "
                     f"{p['dht_lookups']} DHT lookups, {p['p2p_requests']} p2p requests, "
                     f"{p['publish_failed_requests']} failed"))
        if "before" in x:
            for key, label in (("before", "before the kill"), ("right_after", f"right after killing {x['killed']}"),
                               ("after_repair", "after repair")):
                s = x[key]
                rows.append((f"N={n}: {label}", f"recall@10 {s['recall_at_10']}, MRR {s['mrr']}",
                             f"replicas complete {s['complete_replicas']}/{s['replicas']} ({s['terms_short']} terms "
                             f"short), query p95 {s['p95_ms']} ms, {s['partial_answers']} partial answers"))
            rows.append((f"N={n}: repair took", f"{x['repair_s']} s" if x["repair_s"] is not None else "NOT repaired",
                         f"until every query term's replicas among live peers were complete again (goal <= "
                         f"{GOAL_REPAIR_S:g} s)"))
    if "settle_ratio" in r.summary:
        rows.append(("settle ratio (largest N / smallest N)", f"{r.summary['settle_ratio']}",
                     f"goal <= {GOAL_SETTLE_RATIO}"))
    return "\n".join(table_lines(rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__.split("\n")[0])
    ap.add_argument("--peers", default="8,48", help="comma-separated peer counts, each its own network (default 8,48)")
    ap.add_argument("--crawlers", type=int, default=4, help="crawling peers in every network (default 4)")
    ap.add_argument("--pages", type=int, default=400, help="pages in the generated site (default 400)")
    ap.add_argument("--queries", type=int, default=30, help="global queries for recall@10 / MRR (default 30)")
    ap.add_argument("--seed", type=int, default=42, help="site, query and victim seed (default 42)")
    ap.add_argument("--kill", type=float, default=0.3, help="share of the peers killed at once (default 0.3)")
    ap.add_argument("--no-kill", action="store_true", help="measure publishing only")
    ap.add_argument("--replication", type=int, default=3, help="r (default 3)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds allowed for publishing to settle")
    ap.add_argument("--join-timeout", type=float, default=90.0, help="seconds allowed for membership to converge")
    ap.add_argument("--repair-timeout", type=float, default=150.0, help="seconds to wait for repair (default 150)")
    ap.add_argument("--stats-timeout", type=float, default=120.0,
                    help="seconds to wait for the searcher's N to count every page (default 120)")
    ap.add_argument("--quiet", type=float, default=5.0, help="seconds between settling and the 'before' figures")
    ap.add_argument("--poll", type=float, default=3.0, help="status polling interval in seconds (default 3)")
    ap.add_argument("--code", type=Path, default=REPO, help="checkout whose yasearch the peers run (default this one)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a peer config value (repeatable)")
    add_report_args(ap, "also write the figures as JSON to this file")
    args = ap.parse_args(argv)
    args.peers = [int(x) for x in str(args.peers).split(",") if x.strip()]
    if min(args.peers) < args.crawlers + 2:
        ap.error("every peer count must exceed --crawlers by at least 2 (a searcher and a peer to kill)")
    CodePeer.code = args.code.resolve()

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    r = Results()
    r.machine = machine()
    r.config = {"peers": args.peers, "crawlers": args.crawlers, "pages": args.pages, "queries": args.queries,
                "kill": args.kill, "seed": args.seed, "code": str(CodePeer.code)}
    tmp = Path(tempfile.mkdtemp(prefix="yasearch-bench-scale-"))
    try:
        with served_site(args.pages, args.seed, tmp / "site") as (site, url):
            asyncio.run(run(args, tmp, site, url, r))
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    report(r, table(r), args.json)
    ratio = r.summary.get("settle_ratio")
    if args.strict and ((ratio is not None and ratio > GOAL_SETTLE_RATIO)
                        or any(x.get("repair_s") is None for x in r.runs if "before" in x)):
        return 2
    return 0
