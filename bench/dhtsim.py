"""``python -m bench dhtsim``: 10 to 1,000 real DHT nodes in one process.

For each network size N (``--sizes``) a fresh :class:`bench.simnet.SimNetwork` is
built on the in-memory net of :mod:`bench.memnet` (one-way delay ``--latency`` ms plus
up to ``--jitter`` ms, ``--loss``), on a virtual clock: N nodes join one after the
other, each through 3 random nodes already in. Then:

1. **Lookups**: ``--lookups`` node lookups (``DhtNode.closest_peers(key, k=20)``, the
   call the term resolver makes) for random keys from random nodes, one at a time:
   hops (sequential rounds of the iterative lookup, and the round by which the
   closest node was known), time (virtual: the emulated network time, CPU excluded),
   requests the asker sent, datagrams the whole network sent because of it, and
   whether the result is exactly the k closest of all live node IDs. Routing table
   sizes. A least-squares fit of hops against log2 N.
2. **Churn: where a term's postings land.** For ``--terms`` terms, the replica set
   (the r = ``--replication`` nodes closest to the term's key: where its postings are
   published) from all live node IDs; then 10% of nodes crash (no goodbye), then as
   many new nodes join. After each step: how many replica sets changed, how many
   members were replaced, how many terms lost every replica (their postings are gone
   until republished), and whether :meth:`yasearch.network.Resolver.responsible`
   computed on random live nodes (a cold resolver each time: one group lookup) names
   exactly the true replica set. No maintenance runs in between: these are the
   figures right after the change, before any repair.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import log, pct
from bench.memnet import VirtualClockLoop
from bench.simnet import LookupStats, SimNetwork
from yasearch.analysis import term_key
from yasearch.dht import xor_closest

K = 20


def summarize(stats: list[LookupStats]) -> dict[str, float]:
    rounds = [float(s.rounds) for s in stats]
    times = [s.time * 1000 for s in stats]
    return {
        "lookups": len(stats),
        "hops_mean": statistics.fmean(rounds),
        "hops_p50": pct(rounds, 0.5),
        "hops_p95": pct(rounds, 0.95),
        "hops_max": max(rounds),
        "hops_to_closest_mean": statistics.fmean(s.rounds_to_closest for s in stats),
        "time_ms_mean": statistics.fmean(times),
        "time_ms_p50": pct(times, 0.5),
        "time_ms_p95": pct(times, 0.95),
        "requests_mean": statistics.fmean(s.requests for s in stats),
        "requests_by_rpc_mean": {name: sum(s.by_rpc.get(name, 0) for s in stats) / len(stats)
                                 for name in sorted({n for s in stats for n in s.by_rpc})},
        "datagrams_mean": statistics.fmean(s.datagrams for s in stats),
        "exact": sum(s.exact for s in stats) / len(stats),
        "top3": sum(s.top3 for s in stats) / len(stats),
        "overlap": statistics.fmean(s.overlap for s in stats),
    }


def replica_sets(sim: SimNetwork, keys: dict[str, bytes], r: int) -> dict[str, list[bytes]]:
    ids = sim.ids()
    return {t: xor_closest(ids, k, r) for t, k in keys.items()}


def moved(before: dict[str, list[bytes]], after: dict[str, list[bytes]], r: int) -> dict[str, float]:
    """How replica sets changed: terms affected, members replaced, newcomers."""
    changed = sum(1 for t in before if set(before[t]) != set(after[t]))
    replaced = statistics.fmean(len(set(after[t]) - set(before[t])) / r for t in before)
    return {"terms_changed": changed / len(before), "members_replaced": replaced}


async def resolver_phase(sim: SimNetwork, keys: dict[str, bytes], r: int, count: int, rng: random.Random,
                         departed: set[bytes]) -> dict[str, Any]:
    """``count`` cold-resolver computations of a random term's replica set from random nodes."""
    stats, returned_departed = [], 0
    terms = list(keys)
    for _ in range(count):
        node, term = rng.choice(sim.nodes), rng.choice(terms)
        got, st = await sim.responsible(node, keys[term], term, r)
        returned_departed += sum(1 for g in got if g in departed)
        stats.append(st)
    out = summarize(stats)
    out["departed_named"] = returned_departed
    return out


async def run_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed * 1000 + n)
    random.seed(args.seed * 1000 + n)  # refresh_buckets picks random IDs with the module RNG
    sim = SimNetwork(seed=args.seed * 1000 + n, latency=args.latency / 1000, jitter=args.jitter / 1000,
                     loss=args.loss, reply_credit=not args.no_reply_credit)
    loop = asyncio.get_running_loop()
    t, v = time.perf_counter(), loop.time()
    t_keys = time.perf_counter()
    for _ in range(n):
        sim.identity()
    keygen = time.perf_counter() - t_keys
    await sim.join(n)
    setup, join_virtual = time.perf_counter() - t, loop.time() - v
    sizes = sim.table_sizes()
    log(f"N={n}: joined in {setup:.1f}s real ({join_virtual:.0f}s virtual, {sim.net.sent} datagrams); "
        f"{n} Ed25519 keys take {keygen * 1000:.0f} ms; table {statistics.fmean(sizes):.1f} mean / {max(sizes)} max")
    res: dict[str, Any] = {"n": n, "setup_s": setup, "keygen_ms": keygen * 1000, "join_virtual_s": join_virtual,
                           "join_datagrams": sim.net.sent, "table_mean": statistics.fmean(sizes),
                           "table_max": max(sizes), "table_min": min(sizes)}
    t = time.perf_counter()
    stats = []
    for _ in range(args.lookups):
        _, st = await sim.lookup(rng.choice(sim.nodes), rng.randbytes(20), K)
        stats.append(st)
    res["lookup"] = summarize(stats)
    log(f"N={n}: {args.lookups} lookups in {time.perf_counter() - t:.1f}s real: {fmt_lookup(res['lookup'])}")

    # churn: where the postings of a term land
    r = args.replication
    keys = {f"term{i}": term_key(f"term{i}") for i in range(args.terms)}
    departed: set[bytes] = set()
    before = replica_sets(sim, keys, r)
    phases: dict[str, Any] = {"stable": await resolver_phase(sim, keys, r, args.churn_lookups, rng, departed)}
    step = max(1, round(n * args.churn))
    gone = sim.leave(step)
    departed |= {g.node_id for g in gone}
    after_leave = replica_sets(sim, keys, r)
    lost_all = sum(1 for t_ in keys if not set(before[t_]) & set(after_leave[t_])) / len(keys)
    phases["leave"] = {**moved(before, after_leave, r), "lost_all_replicas": lost_all,
                       **await resolver_phase(sim, keys, r, args.churn_lookups, rng, departed)}
    new = await sim.join(step)
    newcomers = {x.node_id for x in new}
    after_join = replica_sets(sim, keys, r)
    got_newcomer = sum(1 for t_ in keys if set(after_join[t_]) & newcomers) / len(keys)
    phases["join"] = {**moved(after_leave, after_join, r), "terms_with_newcomer": got_newcomer,
                      **await resolver_phase(sim, keys, r, args.churn_lookups, rng, departed)}
    phases["both"] = moved(before, after_join, r)
    res["churn"] = {"step": step, "replication": r, "terms": len(keys), **phases}
    for name in ("stable", "leave", "join"):
        p = phases[name]
        log(f"N={n}: resolver {name}: exact {p['exact']:.1%}, departed named {p['departed_named']}, "
            f"{fmt_lookup(p)}")
    await sim.close()
    return res


def fmt_lookup(s: dict[str, float]) -> str:
    return (f"hops {s['hops_mean']:.2f} (p50 {s['hops_p50']:.0f}, p95 {s['hops_p95']:.0f}), "
            f"time {s['time_ms_mean']:.0f} ms (p95 {s['time_ms_p95']:.0f}), "
            f"{s['requests_mean']:.1f} requests, exact {s['exact']:.1%}, top 3 {s['top3']:.1%}")


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares y = a + b x."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return my - b * mx, b


def tables(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"one-way delay {args.latency:g} ms + uniform jitter 0-{args.jitter:g} ms, loss {args.loss:.1%}, "
        f"k = {K}, alpha = 3, {args.lookups} lookups per size, virtual clock"
        + (", ABLATION: replies not cut to the anti-amplification credit" if args.no_reply_credit else ""),
        "",
        "| N | setup (real) | routing table mean / max | hops mean / p50 / p95 | hops to closest | "
        "time mean / p95 | requests / lookup | datagrams / lookup | exact k closest | 3 closest right |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["lookup"]
        lines.append(
            f"| {r['n']:,} | {r['setup_s']:.1f} s | {r['table_mean']:.1f} / {r['table_max']} | "
            f"{s['hops_mean']:.2f} / {s['hops_p50']:.0f} / {s['hops_p95']:.0f} | {s['hops_to_closest_mean']:.2f} | "
            f"{s['time_ms_mean']:.0f} / {s['time_ms_p95']:.0f} ms | {s['requests_mean']:.1f} | "
            f"{s['datagrams_mean']:.0f} | {s['exact']:.1%} | {s['top3']:.1%} |")
    lines.append("")
    for r in results:
        by = r["lookup"].get("requests_by_rpc_mean", {})
        lines.append(f"requests per lookup by RPC, N={r['n']:,}: "
                     + ", ".join(f"{name} {v:.1f}" for name, v in sorted(by.items(), key=lambda x: -x[1])))
    if len(results) >= 2:
        xs = [math.log2(r["n"]) for r in results]
        for label, field in (("hops", "hops_mean"), ("hops to closest", "hops_to_closest_mean")):
            ys = [r["lookup"][field] for r in results]
            a, b = fit(xs, ys)
            ratios = ", ".join(f"N={r['n']:,}: {y / x:.3f}" for r, x, y in zip(results, xs, ys))
            lines.append("")
            lines.append(f"{label} = {a:.2f} + {b:.3f} x log2 N (least squares); per log2 N: {ratios}")
    lines += ["", f"churn: 10% of nodes crash, then as many join; replica sets of {args.terms} terms, "
              f"r = {args.replication}; {args.churn_lookups} cold resolver lookups per phase", "",
              "| N | phase | replica sets changed | members replaced | lost every replica / got a newcomer | "
              "resolver exact | departed named | hops mean / p95 | time mean / p95 |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["churn"]
        for name in ("stable", "leave", "join"):
            p = c[name]
            changed = f"{p['terms_changed']:.1%}" if "terms_changed" in p else "-"
            replaced = f"{p['members_replaced']:.1%}" if "members_replaced" in p else "-"
            extra = (f"{p['lost_all_replicas']:.1%} lost" if name == "leave" else
                     f"{p['terms_with_newcomer']:.1%} newcomer" if name == "join" else "-")
            label = {"stable": "stable", "leave": f"{c['step']} crashed", "join": f"{c['step']} joined"}[name]
            lines.append(
                f"| {r['n']:,} | {label} | {changed} | {replaced} | {extra} | {p['exact']:.1%} | "
                f"{p['departed_named']} | {p['hops_mean']:.2f} / {p['hops_p95']:.0f} | "
                f"{p['time_ms_mean']:.0f} / {p['time_ms_p95']:.0f} ms |")
        b = c["both"]
        lines.append(f"| {r['n']:,} | both steps | {b['terms_changed']:.1%} | {b['members_replaced']:.1%} "
                     "| | | | | |")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    return [await run_size(n, args) for n in args.sizes]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench dhtsim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,100,1000", help="network sizes (default 10,100,1000)")
    ap.add_argument("--lookups", type=int, default=200, help="measured lookups per size (default 200)")
    ap.add_argument("--latency", type=float, default=50.0, help="one-way delay in ms (default 50)")
    ap.add_argument("--jitter", type=float, default=10.0, help="uniform extra delay 0..J ms (default 10)")
    ap.add_argument("--loss", type=float, default=0.0, help="datagram loss probability (default 0)")
    ap.add_argument("--replication", type=int, default=3, help="replicas per term, r (default 3)")
    ap.add_argument("--terms", type=int, default=500, help="terms whose replica sets are followed (default 500)")
    ap.add_argument("--churn", type=float, default=0.1, help="fraction leaving, then joining (default 0.1)")
    ap.add_argument("--churn-lookups", type=int, default=100, help="resolver lookups per phase (default 100)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-reply-credit", action="store_true",
                    help="ablation: do not cut replies to unproven askers to the anti-amplification credit")
    ap.add_argument("--json", type=Path, help="write the figures as JSON")
    args = ap.parse_args(argv)
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    if any(n < 2 for n in args.sizes):
        ap.error("every size must be at least 2")
    t = time.perf_counter()
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        results = runner.run(run(args))
    print()
    print(tables(results, args))
    print(f"\ntotal {time.perf_counter() - t:.0f} s real")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "json"},
                                         "results": results}, indent=2, default=str) + "\n")
    return 0
