"""WAN benchmark: peers in network namespaces, a WAN between them, one peer behind NAT.

One run (``python -m bench wan``, as root; see ``--help``) does, in order:

1. build an emulated internet (:mod:`bench.netlab`): a web host serving a generated
   site (:mod:`bench.sitegen`), ``--peers`` public peers on their own addresses, one
   more peer behind a NAT router (nftables masquerade), every message of theirs
   delayed ``--delay`` ms ± ``--jitter`` ms one way, UDP datagrams lost with
   probability ``--loss`` and TCP writes delayed by a retransmission timeout with that
   probability (:mod:`bench.wanem`); a reference peer (a network of one, no WAN) in
   its own namespace;
2. wait until the public peers know each other and the NAT'd peer found out it is
   client-only (it cannot be dialled back);
3. **publish**: ``--crawlers`` public peers and the NAT'd peer crawl disjoint shares
   of the site (:func:`bench.network.run_publish`): settle time, postings acknowledged;
4. **reference**: the reference peer crawls every page;
5. **queries** at a public peer that crawled nothing (the searching peer):
   1-, 2- and 3-term global queries (:func:`bench.network.run_queries`: wall time
   p50/p95, bytes against full lists, overlap@10 with the reference's local answer);
   then ``--nat-queries`` of the same queries at the NAT'd peer (wall p50/p95, overlap@10).

The WAN is in user space (this kernel has no netem): see :mod:`bench.wanem` for what
it models and what not. The machine is shared: compare figures side by side within
one run, and against the loopback benchmark (``python -m bench network``) as ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import sitegen
from bench.common import RunResults, add_report_args, log, machine, pct, report, table_lines
from bench.netlab import ADMIN_TOKEN, Lab, LabPeer, unavailable
from bench.network import get_json, query_set, run_publish, run_queries, run_reference, statuses, vocabulary

#: Goals from issue 9 ("Benchmark").
GOAL_P50_2TERM_MS = 300.0
GOAL_P95_2TERM_MS = 600.0


@dataclass
class Results(RunResults):
    join: dict[str, Any] = field(default_factory=dict)
    publish: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    nat: dict[str, Any] = field(default_factory=dict)
    query_replicas: dict[str, Any] = field(default_factory=dict)
    per_query: list[dict[str, Any]] = field(default_factory=list)
    #: with --warm: the first (routing not yet cached) pass's 1-/2-/3-term figures
    cold: dict[str, Any] = field(default_factory=dict)


async def wait_ready(http: aiohttp.ClientSession, peers: list[LabPeer], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    for p in peers:
        while True:
            try:
                p.peer_id = (await get_json(http, p.url + "/api/v1/status", timeout=5))["peer_id"]
                break
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                if p.proc is not None and p.proc.poll() is not None:
                    raise RuntimeError(f"{p.name} exited: {p.tail()}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{p.name} did not come up: {p.tail()}") from None
                await asyncio.sleep(0.3)


async def wait_join(http: aiohttp.ClientSession, public: list[LabPeer], nat: LabPeer, timeout: float) -> dict[str, Any]:
    """Until every public peer knows the others, and the NAT'd peer is client-only."""
    t0 = time.perf_counter()
    want = len(public) - 1
    while True:
        sts = await statuses(http, public + [nat])  # type: ignore[arg-type]
        known = [s.get("peers_known", 0) for s in sts[:-1]]
        kind = sts[-1].get("reach", {}).get("kind")
        now = time.perf_counter() - t0
        if min(known) >= want and kind == "client-only" and sts[-1].get("peers_known", 0) >= len(public):
            log(f"joined: every public peer knows the {want} others, the NAT'd peer is client-only ({now:.1f}s)")
            return {"seconds": round(now, 1), "peers_known": known, "nat_kind": kind, "complete": True}
        if now > timeout:
            log(f"WARNING: after {timeout:.0f}s peers know {known}, the NAT'd peer is {kind!r}; continuing")
            return {"seconds": round(now, 1), "peers_known": known, "nat_kind": kind, "complete": False}
        await asyncio.sleep(0.5)


async def nat_queries(http: aiohttp.ClientSession, nat: LabPeer, ref: LabPeer, queries: list[tuple[str, list[str], str]]) -> dict[str, Any]:
    rows = []
    for q, terms, _kind in queries:
        t = time.perf_counter()
        async with http.get(nat.url + "/api/v1/search", params={"q": q, "scope": "global", "limit": "10"},
                            timeout=aiohttp.ClientTimeout(total=30)) as resp:
            body = await resp.json()
        wall = (time.perf_counter() - t) * 1000
        ref_body = await get_json(http, f"{ref.url}/api/v1/search?q={q.replace(' ', '+')}&scope=local&limit=10")
        r_urls = {h["url"] for h in ref_body["results"][:10]}
        g_urls = {h["url"] for h in body["results"][:10]}
        rows.append({"k": len(terms), "wall_ms": wall, "overlap": len(g_urls & r_urls) / len(r_urls) if r_urls else None})
    out: dict[str, Any] = {"queries": len(rows)}
    for k in (1, 2):
        w = [x["wall_ms"] for x in rows if x["k"] == k]
        if w:
            out[f"{k}term"] = {"n": len(w), "wall_p50_ms": round(pct(w, 0.5), 1), "wall_p95_ms": round(pct(w, 0.95), 1)}
    ov = [x["overlap"] for x in rows if x["overlap"] is not None]
    out["overlap_at_10"] = round(statistics.mean(ov), 4) if ov else None
    return out


async def run(args: argparse.Namespace, r: Results, lab: Lab, root: Path, http: aiohttp.ClientSession) -> None:
    site = sitegen.generate(args.pages, args.seed)
    sitegen.write(site, root / "site")
    web = lab.add_host("web")
    lab.spawn_python(web, ["-m", "http.server", "--bind", web.ip, "--directory", str(root / "site"), "8000"],
                     log=root / "site.log")
    site_url = f"http://{web.ip}:8000"
    urls = site.urls(site_url)
    log(f"site: {len(urls)} pages served from {site_url} (namespace {web.ns})")
    wan = f"{args.delay},{args.jitter},{args.loss}"
    extra = dict(kv.split("=", 1) for kv in args.set)
    conf: dict[str, object] = {k: (float(v) if v.replace(".", "", 1).isdigit() else v) for k, v in extra.items()}
    public: list[LabPeer] = []
    for i in range(args.peers):
        p = LabPeer(lab, lab.add_host(f"p{i}"), root, bootstrap=public[:1], wan=wan, config=conf)
        p.start()
        public.append(p)
        if i == 0:
            await wait_ready(http, [p])
    nat = LabPeer(lab, lab.add_nat_host("nat"), root, bootstrap=public[:2], wan=wan, config=conf)
    nat.start()
    ref = LabPeer(lab, lab.add_host("ref"), root, config=conf)
    ref.start()
    await wait_ready(http, public + [nat, ref])
    log(f"{len(public)} public peers, 1 NAT'd peer, 1 reference; WAN {args.delay} ms ± {args.jitter} ms one way, "
        f"loss {args.loss:.1%}")
    r.join = await wait_join(http, public, nat, args.join_timeout)
    crawlers = public[: args.crawlers] + [nat]
    searcher = public[-1]
    r.publish = await run_publish(http, crawlers, public + [nat], urls, args.timeout, 2.0)  # type: ignore[arg-type]
    nat_st = await get_json(http, nat.url + "/api/v1/status")
    r.nat = {
        "kind": nat_st["reach"]["kind"], "observed": nat_st["reach"]["observed"], "router": nat.host.router_ip,
        "documents": nat_st["documents"], "published_docs": nat_st["publish"].get("published_docs", 0),
        "postings_acked": nat_st["publish"]["sent"], "postings_held": nat_st["postings_held"],
        "publish_failed": nat_st["publish"].get("failed", 0),
    }
    sts = await statuses(http, public)  # type: ignore[arg-type]
    # the NAT'd peer is in no routing table: each public peer's contacts are the other public peers
    r.nat["public_peers_contacts"] = [s["dht"]["contacts"] for s in sts]
    r.nat["postings_held_by_public_peers"] = sum(s["postings_held"] for s in sts)
    log(f"NAT'd peer: {r.nat['kind']} at {r.nat['observed']}, published {r.nat['published_docs']} docs "
        f"({r.nat['postings_acked']} postings acked), holds {r.nat['postings_held']} postings")
    r.reference = await run_reference(http, ref, urls, args.timeout)  # type: ignore[arg-type]
    queries = query_set(vocabulary(site), args.queries, args.seed)
    by_id = {p.peer_id: p for p in public}
    if args.warm:  # the "once routing is cached": one pass first, the second measured
        cold = await run_queries(http, searcher, ref, by_id, queries, r)  # type: ignore[arg-type]
        r.cold = {k: cold[k] for k in ("1term", "2term", "3term") if k in cold}
        r.per_query = []
    r.query = await run_queries(http, searcher, ref, by_id, queries, r)  # type: ignore[arg-type]
    r.nat["queries"] = await nat_queries(http, nat, ref, [q for q in queries if len(q[1]) <= 2][: args.nat_queries])


def table(r: Results) -> str:
    q, p, n = r.query, r.publish, r.nat
    two = q.get("2term", {})
    rows = [
        ("peers", f"{r.config['peers']} public + 1 NAT'd (+1 reference)", f"{r.config['crawlers']} public + the NAT'd peer crawl"),
        ("WAN", f"{r.config['delay']} ms ± {r.config['jitter']} ms one way, loss {r.config['loss']:.1%}", "user-space shim (bench.wanem)"),
        ("join", f"{r.join.get('seconds')} s", "public peers know each other, NAT'd peer client-only"),
        ("publish settles", f"{p.get('settled_s')} s", f"{p.get('pages_indexed')} pages, {p.get('postings_acked')} postings acked"),
    ]
    for k in (1, 2, 3):
        t = q.get(f"{k}term")
        if t:
            rows.append((f"{k}-term global query p50 / p95", f"{t['wall_p50_ms']} / {t['wall_p95_ms']} ms", f"n={t['n']}, at a public peer"))
    for k in (1, 2, 3):
        t = r.cold.get(f"{k}term")
        if t:
            rows.append((f"{k}-term, first pass p50 / p95", f"{t['wall_p50_ms']} / {t['wall_p95_ms']} ms", "--warm: routing not yet cached"))
    rows += [
        ("2-term goal", f"p50 <= {GOAL_P50_2TERM_MS:.0f}, p95 <= {GOAL_P95_2TERM_MS:.0f} ms",
         "met" if two and two["wall_p50_ms"] <= GOAL_P50_2TERM_MS and two["wall_p95_ms"] <= GOAL_P95_2TERM_MS else "NOT met"),
        ("overlap@10 vs reference", f"{q.get('overlap_at_10')}", f"ties counted: {q.get('overlap_at_10_ties')}"),
        ("bytes per query / full lists", f"{q.get('bytes_all', {}).get('mean_ratio')}", "mean over queries"),
        ("NAT'd peer", f"{n.get('kind')} at {n.get('observed')}", f"router {n.get('router')}"),
        ("NAT'd peer published", f"{n.get('published_docs')} docs, {n.get('postings_acked')} postings",
         f"holds {n.get('postings_held')} postings; public peers' DHT contacts {n.get('public_peers_contacts')}"),
    ]
    nq = n.get("queries", {})
    for k in (1, 2):
        t = nq.get(f"{k}term")
        if t:
            rows.append((f"NAT'd peer {k}-term p50 / p95", f"{t['wall_p50_ms']} / {t['wall_p95_ms']} ms", f"n={t['n']}"))
    rows.append(("NAT'd peer overlap@10", f"{nq.get('overlap_at_10')}", "vs reference"))
    return "\n".join(table_lines(rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench wan", description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", type=int, default=5, help="public peers (default 5; +1 NAT'd, +1 reference)")
    ap.add_argument("--crawlers", type=int, default=3, help="public peers that crawl (default 3); the last public peer searches")
    ap.add_argument("--pages", type=int, default=300, help="pages in the generated site (default 300)")
    ap.add_argument("--delay", type=float, default=50.0, help="one-way delay, ms (default 50)")
    ap.add_argument("--jitter", type=float, default=5.0, help="± jitter, ms (default 5)")
    ap.add_argument("--loss", type=float, default=0.01, help="loss probability (default 0.01)")
    ap.add_argument("--queries", type=int, default=45, help="global queries at the searching peer (default 45)")
    ap.add_argument("--warm", action="store_true",
                    help="run the queries twice and measure the second pass (routing cached, connections open)")
    ap.add_argument("--nat-queries", type=int, default=20, help="1-/2-term queries at the NAT'd peer (default 20)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds allowed for publishing to settle")
    ap.add_argument("--join-timeout", type=float, default=120.0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra peer config")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    add_report_args(ap, "write the figures as JSON")
    args = ap.parse_args(argv)
    why = unavailable(nat=True)
    if why:
        print(f"bench wan: {why}")
        return 2
    if not 1 <= args.crawlers < args.peers:
        ap.error("--crawlers must be at least 1 and below --peers (one public peer searches)")
    r = Results(config={k: v for k, v in vars(args).items() if k not in ("json",)}, machine=machine())
    root = Path(tempfile.mkdtemp(prefix="bench-wan-"))

    async def go() -> None:
        # the lab's peers are bound to non-loopback addresses: admin routes (crawl) need the token
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
            with Lab() as lab:
                await run(args, r, lab, root, http)

    try:
        asyncio.run(go())
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"kept {root}")
    report(r, table(r), args.json)
    two = r.query.get("2term", {})
    met = bool(two) and two["wall_p50_ms"] <= GOAL_P50_2TERM_MS and two["wall_p95_ms"] <= GOAL_P95_2TERM_MS
    return 2 if args.strict and not met else 0
