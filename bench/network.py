"""Network benchmark: N peers as separate processes on loopback, one sharded index.

One run does, in order:

1. generate a site (:mod:`bench.sitegen`) and serve it from a separate process;
2. start N **crawling peers** (``python -m yasearch peer``, free ports, temporary
   data dirs, crawl delay 0, parsing in-process), bootstrapped from the first one,
   plus one **searching peer** that joins the same network and crawls nothing, plus
   one **reference peer** with no bootstrap (a network of one) that will crawl every
   page; wait until every network peer knows the N others (``peers_known``);
3. **publish**: every crawling peer gets ``POST /api/v1/crawl`` with its own
   disjoint share of the page URLs (page i goes to peer i mod N, depth 0); the clock
   runs from the first POST until every job is done and every peer's outbox is empty
   (``publish.pending == 0`` and ``published_docs`` = pages it indexed). Throughput =
   postings acknowledged by the responsible peers (sum of ``publish.sent``) per
   second; DHT node lookups (``dht.lookups``, which includes the resolver's group
   lookups) and RPCs (Kademlia UDP RPCs + p2p HTTP requests) per 1,000 acknowledged
   postings, as deltas of the peers' status figures over that window;
4. **reference**: the reference peer crawls every page (after the window above, so
   it does not share the CPU with it);
5. **queries**: 1-, 2- and 3-term queries (seeded; half of them of frequent terms,
   half of terms drawn from one page so the AND matches) sent one at a time to the
   searching peer, ``GET /api/v1/search?scope=global``: wall time of the HTTP call
   and the reported ``took_ms``, p50/p95 per query length; bytes the searching peer
   sent and received over p2p for the query (delta of its ``network.p2p`` figures)
   against shipping the terms' full posting lists (sum of df x bytes per posting in
   a ``/p2p/v1/lookup`` reply); top-10 overlap against the reference peer's
   ``scope=local`` answer.

Run with ``python -m bench network`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import sitegen
from bench.common import (REPO, RunResults, add_query_args, add_report_args, log, machine, pct, report,
                          served_site, table_lines)
from yasearch.wire import PROTOCOL_VERSION

#: Goals from the issue (docs: issue 3, "Benchmark").
GOAL_P50_2TERM_MS = 50.0
GOAL_P95_2TERM_MS = 150.0
GOAL_LOOKUPS_PER_1000 = 10.0
GOAL_BYTES_RATIO = 0.10
GOAL_OVERLAP = 0.95
FREQUENT_DF = 1000  # "every term has more than 1,000 postings"


def free_port() -> int:
    """A port free for TCP and UDP a moment ago (HTTP and Kademlia share the number)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue


# -- peers as processes ------------------------------------------------------------


class PeerProc:
    """``python -m yasearch peer`` as a child process."""

    def __init__(self, root: Path, name: str, config: Path, bootstrap: str | None) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = root / name
        self.log = root / f"{name}.log"
        self.config = config
        self.bootstrap = bootstrap
        self.proc: subprocess.Popen[bytes] | None = None
        self.peer_id = ""

    def start(self) -> None:
        cmd = [sys.executable, "-m", "yasearch", "-v", "peer", "--port", str(self.port), "--data-dir", str(self.data_dir),
               "--no-seeds", "--name", self.name, "--config", str(self.config)]
        if self.bootstrap:
            cmd += ["--bootstrap", self.bootstrap]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def tail(self, n: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    async def wait_ready(self, http: aiohttp.ClientSession, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            try:
                st = await get_json(http, self.url + "/api/v1/status")
                self.peer_id = st["peer_id"]
                return
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} on {self.url} did not come up: {self.tail()}")
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def reap(self, timeout: float = 30.0) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def get_json(http: aiohttp.ClientSession, url: str, timeout: float = 30.0) -> Any:
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
        body = await r.json()
        if r.status != 200:
            raise RuntimeError(f"GET {url} answered {r.status}: {body}")
        return body


async def post_json(http: aiohttp.ClientSession, url: str, body: Any, timeout: float = 30.0) -> tuple[int, Any, int]:
    """(status, JSON reply, reply bytes)."""
    async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
        raw = await r.read()
        return r.status, json.loads(raw), len(raw)


async def statuses(http: aiohttp.ClientSession, peers: list[PeerProc]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(get_json(http, p.url + "/api/v1/status") for p in peers)))


def totals(sts: list[dict[str, Any]]) -> dict[str, int]:
    """The counters we take deltas of, summed over peers."""
    out: Counter[str] = Counter()
    for s in sts:
        pub, dht, net = s.get("publish", {}), s.get("dht", {}), s.get("network", {})
        p2p = net.get("p2p", {})
        out["sent"] += pub.get("sent", 0)
        out["publish_failed"] += pub.get("failed", 0)
        out["pending"] += pub.get("pending", 0)
        out["published_docs"] += pub.get("published_docs", 0)
        out["dht_lookups"] += dht.get("lookups", 0)
        out["dht_rpcs"] += dht.get("rpcs", 0)
        out["dht_rpc_failures"] += dht.get("rpc_failures", 0)
        out["resolver_lookups"] += net.get("resolver_lookups", 0)
        out["p2p_requests"] += p2p.get("requests", 0)
        out["p2p_failures"] += p2p.get("failures", 0)
        out["p2p_bytes"] += p2p.get("bytes_sent", 0) + p2p.get("bytes_received", 0)
        out["postings_held"] += s.get("postings_held", 0)
        out["documents"] += s.get("documents", 0)
    return dict(out)


# -- queries -----------------------------------------------------------------------

_TAGS = re.compile(r"<style.*?</style>|<[^>]+>", re.S)
_ALPHA = re.compile(r"[a-z]{3,}")


@dataclass
class Vocabulary:
    df: Counter[str] = field(default_factory=Counter)  # analyzed term -> pages containing it
    surface: dict[str, str] = field(default_factory=dict)  # analyzed term -> a word that analyzes to it
    pages: list[list[str]] = field(default_factory=list)  # distinct usable terms per page


def vocabulary(site: sitegen.Site) -> Vocabulary:
    import html as htmlmod

    from yasearch.analysis import analyze

    v = Vocabulary()
    forms: dict[str, Counter[str]] = {}
    for p in site.pages:
        text = htmlmod.unescape(_TAGS.sub(" ", p.html.decode("utf-8"))).lower()
        words = _ALPHA.findall(text)
        terms = set()
        for w, t in zip(words, (analyze(w) for w in words)):
            if len(t) != 1:
                continue
            terms.add(t[0])
            forms.setdefault(t[0], Counter())[w] += 1
        v.df.update(terms)
        v.pages.append(sorted(terms))
    v.surface = {t: c.most_common(1)[0][0] for t, c in forms.items()}
    return v


def query_set(v: Vocabulary, n: int, seed: int) -> list[tuple[str, list[str], str]]:
    """``n`` queries (query, analyzed terms, kind): lengths 1, 2, 3 in turn; kinds
    "frequent" (terms among the most frequent of the site) and "page" (terms of one page)."""
    rng = random.Random(seed)
    pages = len(v.pages)
    frequent = [t for t, d in v.df.most_common(400) if d >= pages // 2]
    out: list[tuple[str, list[str], str]] = []
    seen: set[str] = set()
    i = 0
    while len(out) < n and i < n * 50:
        k = 1 + len(out) % 3
        kind = "frequent" if (len(out) // 3) % 2 == 0 and len(frequent) >= 3 else "page"
        i += 1
        if kind == "frequent":
            terms = rng.sample(frequent, k)
        else:
            page_terms = v.pages[rng.randrange(pages)]
            if len(page_terms) < k:
                continue
            terms = rng.sample(page_terms, k)
        q = " ".join(v.surface[t] for t in terms)
        if q in seen:
            continue
        seen.add(q)
        out.append((q, terms, kind))
    return out


def responsible(term: str, ids: list[str], r: int = 3) -> list[str]:
    """The r peer ids (hex) XOR-closest to the term's key, closest first."""
    from yasearch.analysis import term_key

    key = int.from_bytes(term_key(term), "big")
    return sorted(ids, key=lambda h: int(h, 16) ^ key)[:r]


# -- the run -------------------------------------------------------------------------


@dataclass
class Results(RunResults):
    join: dict[str, Any] = field(default_factory=dict)
    publish: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    network_stats: dict[str, Any] = field(default_factory=dict)
    query_replicas: dict[str, Any] = field(default_factory=dict)
    goals: list[dict[str, Any]] = field(default_factory=list)
    per_query: list[dict[str, Any]] = field(default_factory=list)


async def wait_membership(http: aiohttp.ClientSession, net: list[PeerProc], timeout: float) -> dict[str, Any]:
    want = len(net) - 1
    t0 = time.perf_counter()
    last = 0.0
    while True:
        sts = await statuses(http, net)
        known = [s.get("peers_known", 0) for s in sts]
        if min(known) >= want:
            took = time.perf_counter() - t0
            log(f"every network peer knows the {want} others ({took:.1f}s)")
            return {"peers_known": known, "seconds": round(took, 2), "complete": True}
        now = time.perf_counter()
        if now - t0 > timeout:
            log(f"WARNING: after {timeout:.0f}s the peers know {known} peers, not all {want}; continuing")
            return {"peers_known": known, "seconds": round(now - t0, 2), "complete": False}
        if now - last > 5:
            log(f"  peers known: {known} (want {want} each)")
            last = now
        await asyncio.sleep(0.5)


async def run_publish(http: aiohttp.ClientSession, crawlers: list[PeerProc], net: list[PeerProc],
                      urls: list[str], timeout: float, poll: float) -> dict[str, Any]:
    n = len(crawlers)
    before = totals(await statuses(http, net))
    shares = [urls[i::n] for i in range(n)]
    t0 = time.perf_counter()
    jobs: list[str] = []
    for p, share in zip(crawlers, shares):
        spec = {"urls": share, "depth": 0, "max_pages": len(share), "delay": 0, "same_site": True}
        status, body, _ = await post_json(http, p.url + "/api/v1/crawl", spec)
        if status != 201:
            raise RuntimeError(f"POST /api/v1/crawl to {p.name} answered {status}: {body}")
        jobs.append(body["id"])
    log(f"crawls started: {n} peers x ~{len(shares[0])} pages (depth 0, disjoint shares)")
    crawl_done_at: float | None = None
    last_log = 0.0
    while True:
        await asyncio.sleep(poll)
        now = time.perf_counter() - t0
        job_states = await asyncio.gather(*(get_json(http, f"{p.url}/api/v1/crawl/{j}") for p, j in zip(crawlers, jobs)))
        sts = await statuses(http, net)
        tot = totals(sts)
        indexed = sum(j.get("indexed", 0) for j in job_states)
        running = [j for j in job_states if j.get("state") == "running"]
        if not running and crawl_done_at is None:
            crawl_done_at = now
            log(f"  every crawl job is done: {indexed} pages indexed ({now:.1f}s)")
        by_url = {s["url"]: s for s in sts}
        settled = crawl_done_at is not None and all(
            by_url[p.url]["publish"]["pending"] == 0 and by_url[p.url]["publish"]["published_docs"] >= j.get("indexed", 0)
            for p, j in zip(crawlers, job_states)
        )
        if now - last_log >= 5 or settled:
            log(f"  {now:6.1f}s indexed {indexed}/{len(urls)}, postings acked {tot['sent'] - before['sent']}, "
                f"outbox pending {tot['pending']}, published docs {tot['published_docs']}, "
                f"failed requests {tot['publish_failed'] - before['publish_failed']}")
            last_log = now
        if settled:
            elapsed = now
            break
        if now > timeout:
            log(f"WARNING: publishing did not settle within {timeout:.0f}s; measuring the rest anyway "
                "(queries then run while peers are still publishing)")
            elapsed = now
            break
    after_sts = await statuses(http, net)
    after = totals(after_sts)
    d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    sent = d["sent"]
    per_k = 1000.0 / sent if sent else float("nan")
    failed_pages = sum(j.get("failed", 0) for j in job_states)
    out = {
        "settled": settled,
        "pages_indexed": indexed,
        "pages_failed": failed_pages,
        "crawl_done_s": round(crawl_done_at or elapsed, 2),
        "settled_s": round(elapsed, 2),
        "postings_acked": sent,
        "postings_held_after": after["postings_held"],
        "postings_per_second": round(sent / elapsed, 1),
        "pages_per_second": round(indexed / elapsed, 1),
        "publish_failed_requests": d["publish_failed"],
        "dht_lookups": d["dht_lookups"],
        "resolver_lookups": d["resolver_lookups"],
        "dht_rpcs": d["dht_rpcs"],
        "dht_rpc_failures": d["dht_rpc_failures"],
        "p2p_requests": d["p2p_requests"],
        "p2p_failures": d["p2p_failures"],
        "p2p_bytes": d["p2p_bytes"],
        "dht_lookups_per_1000": round(d["dht_lookups"] * per_k, 3),
        "resolver_lookups_per_1000": round(d["resolver_lookups"] * per_k, 3),
        "rpcs_per_1000": round((d["dht_rpcs"] + d["p2p_requests"]) * per_k, 3),
        "dht_rpcs_per_1000": round(d["dht_rpcs"] * per_k, 3),
        "p2p_requests_per_1000": round(d["p2p_requests"] * per_k, 3),
        "p2p_bytes_per_posting": round(d["p2p_bytes"] / sent, 1) if sent else None,
        "documents_per_peer": [s["documents"] for s in after_sts],
        "postings_held_per_peer": [s["postings_held"] for s in after_sts],
    }
    log(f"publish: {sent} postings acknowledged in {elapsed:.1f}s = {out['postings_per_second']} postings/s; "
        f"{out['dht_lookups_per_1000']} DHT lookups and {out['rpcs_per_1000']} RPCs per 1,000 postings")
    return out


async def run_reference(http: aiohttp.ClientSession, ref: PeerProc, urls: list[str], timeout: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec = {"urls": urls, "depth": 0, "max_pages": len(urls), "delay": 0, "same_site": True}
    status, body, _ = await post_json(http, ref.url + "/api/v1/crawl", spec)
    if status != 201:
        raise RuntimeError(f"POST /api/v1/crawl to the reference answered {status}: {body}")
    job = body["id"]
    last = 0.0
    while True:
        await asyncio.sleep(1.0)
        j = await get_json(http, f"{ref.url}/api/v1/crawl/{job}")
        st = await get_json(http, ref.url + "/api/v1/status")
        now = time.perf_counter() - t0
        if j["state"] != "running" and st["documents"] >= j.get("indexed", 0):
            break
        if now - last > 10:
            log(f"  reference: indexed {j.get('indexed', 0)}/{len(urls)} ({now:.0f}s)")
            last = now
        if now > timeout:
            raise RuntimeError(f"the reference crawl did not finish within {timeout:.0f}s: {j}")
    out = {"documents": st["documents"], "indexed": j.get("indexed", 0), "failed": j.get("failed", 0),
           "seconds": round(time.perf_counter() - t0, 1)}
    log(f"reference peer holds {out['documents']} documents ({out['seconds']}s)")
    return out


async def wait_network_stats(http: aiohttp.ClientSession, searcher: PeerProc, want: int, timeout: float) -> dict[str, Any]:
    """Until the searching peer's view of the network (documents summed over the peer info
    records it holds: BM25's N) counts every indexed page."""
    t0 = time.perf_counter()
    last = 0.0
    while True:
        peers = (await get_json(http, searcher.url + "/api/v1/peers"))["peers"]
        docs = sum(int(p.get("documents", 0)) for p in peers)
        now = time.perf_counter() - t0
        if docs >= want:
            log(f"the searching peer's peer records count {docs} documents ({now:.1f}s after publishing settled)")
            return {"documents_seen": docs, "seconds": round(now, 1), "converged": True}
        if now > timeout:
            log(f"WARNING: after {timeout:.0f}s the searching peer's records count {docs} of {want} documents; "
                "querying anyway (BM25's N and average length are then off)")
            return {"documents_seen": docs, "seconds": round(now, 1), "converged": False}
        if now - last >= 15:
            log(f"  the searching peer's peer records count {docs} of {want} documents (N for BM25); waiting")
            last = now
        await asyncio.sleep(2.0)


async def replica_check(http: aiohttp.ClientSession, by_id: dict[str, PeerProc], terms: list[str],
                        r: int) -> dict[str, Any]:
    """df of each term at each of its r responsible peers (by XOR distance over every
    network peer): do the replicas agree, and how many postings does the closest lack?"""
    disagree = 0
    short_first = 0
    missing_first = 0
    total = 0
    for t in terms:
        dfs = []
        for pid in responsible(t, list(by_id), r):
            _, body, _ = await post_json(http, by_id[pid].url + "/p2p/v1/lookup", {"v": PROTOCOL_VERSION, "terms": [t], "m": 0})
            dfs.append(int(body.get("df", {}).get(t, 0)))
        total += max(dfs)
        if len(set(dfs)) > 1:
            disagree += 1
        if dfs[0] < max(dfs):
            short_first += 1
            missing_first += max(dfs) - dfs[0]
    out = {"terms": len(terms), "replicas_disagree": disagree, "closest_replica_short": short_first,
           "closest_replica_missing_postings": missing_first, "postings": total}
    log(f"replicas: {disagree} of {len(terms)} query terms have replicas disagreeing on df; the closest replica "
        f"lacks {missing_first} of {total} postings ({short_first} terms)")
    return out


async def measure_bytes_per_posting(http: aiohttp.ClientSession, by_id: dict[str, PeerProc], terms: list[str]) -> float:
    """Bytes one posting adds to a /p2p/v1/lookup reply (JSON, as replies travel)."""
    samples: list[float] = []
    for t in terms:
        holder = by_id[responsible(t, list(by_id), 1)[0]]
        _, r0, b0 = await post_json(http, holder.url + "/p2p/v1/lookup", {"v": PROTOCOL_VERSION, "terms": [t], "m": 0})
        _, r1, b1 = await post_json(http, holder.url + "/p2p/v1/lookup", {"v": PROTOCOL_VERSION, "terms": [t], "m": 2000})
        n = len(r1.get("postings", {}).get(t, []))
        if n:
            samples.append((b1 - b0) / n)
    return statistics.mean(samples) if samples else 30.0


async def run_queries(http: aiohttp.ClientSession, searcher: PeerProc, ref: PeerProc, by_id: dict[str, PeerProc],
                      queries: list[tuple[str, list[str], str]], r: Results) -> dict[str, Any]:
    # df of every query term from its closest responsible peer (the network's exact df)
    df: dict[str, int] = {}
    for t in sorted({t for _, ts, _ in queries for t in ts}):
        holder = by_id[responsible(t, list(by_id), 1)[0]]
        status, body, _ = await post_json(http, holder.url + "/p2p/v1/lookup", {"v": PROTOCOL_VERSION, "terms": [t], "m": 0})
        if status != 200:
            raise RuntimeError(f"lookup of {t!r} at {holder.name} answered {status}: {body}")
        df[t] = int(body.get("df", {}).get(t, 0))
    r.query_replicas = await replica_check(http, by_id, sorted(df), 3)
    heavy = sorted(df, key=lambda t: -df[t])[:5]
    bpp = await measure_bytes_per_posting(http, by_id, heavy)
    log(f"df of {len(df)} query terms fetched; {bpp:.1f} bytes per posting in a lookup reply")

    async def search(peer: PeerProc, q: str, scope: str, limit: int) -> tuple[dict[str, Any], float]:
        t = time.perf_counter()
        async with http.get(peer.url + "/api/v1/search", params={"q": q, "scope": scope, "limit": str(limit)},
                            timeout=aiohttp.ClientTimeout(total=30)) as resp:
            body = await resp.json()
        wall = (time.perf_counter() - t) * 1000.0
        if resp.status != 200:
            raise RuntimeError(f"search {q!r} at {peer.name} answered {resp.status}: {body}")
        return body, wall

    for q, _, _ in queries[:5]:  # warm-up: open searchers, fill the resolver's cache
        await search(searcher, q, "global", 10)
        await search(ref, q, "local", 10)

    rows: list[dict[str, Any]] = []
    for q, terms, kind in queries:
        st0 = (await get_json(http, searcher.url + "/api/v1/status"))["network"]["p2p"]
        g, wall = await search(searcher, q, "global", 10)
        st1 = (await get_json(http, searcher.url + "/api/v1/status"))["network"]["p2p"]
        ref_body, _ = await search(ref, q, "local", 100)
        used = (st1["bytes_sent"] + st1["bytes_received"]) - (st0["bytes_sent"] + st0["bytes_received"])
        full = sum(df[t] for t in set(terms)) * bpp
        g_urls = [h["url"] for h in g["results"][:10]]
        ref_hits = ref_body["results"]
        r_urls = [h["url"] for h in ref_hits[:10]]
        overlap = tie_overlap = None
        if r_urls:
            strict = len(set(g_urls) & set(r_urls))
            tenth = ref_hits[min(10, len(ref_hits)) - 1]["score"]
            ref_score = {h["url"]: h["score"] for h in ref_hits}
            ties = sum(1 for u in g_urls if u not in r_urls and u in ref_score
                       and abs(ref_score[u] - tenth) <= 1e-6 * max(1.0, abs(tenth)))
            overlap = strict / len(r_urls)
            tie_overlap = min(1.0, (strict + ties) / len(r_urls))
        rows.append({
            "q": q, "kind": kind, "k": len(terms), "df": [df[t] for t in terms],
            "wall_ms": round(wall, 2), "took_ms": round(float(g.get("took_ms", 0.0)), 2),
            "total": g.get("total", 0), "ref_total": ref_body.get("total", 0), "peers": g.get("peers", {}),
            "bytes": used, "full_bytes": round(full), "ratio": (used / full) if full else None,
            "overlap": overlap, "overlap_ties": tie_overlap, "round_trips": g.get("round_trips"),
        })
    r.per_query = rows

    out: dict[str, Any] = {"queries": len(rows), "bytes_per_posting": round(bpp, 1)}
    for k in (1, 2, 3):
        sel = [x for x in rows if x["k"] == k]
        if not sel:
            continue
        w = [x["wall_ms"] for x in sel]
        tk = [x["took_ms"] for x in sel]
        out[f"{k}term"] = {"n": len(sel), "wall_p50_ms": round(pct(w, 0.5), 1), "wall_p95_ms": round(pct(w, 0.95), 1),
                           "took_p50_ms": round(pct(tk, 0.5), 1), "took_p95_ms": round(pct(tk, 0.95), 1),
                           "wall_max_ms": round(max(w), 1)}
    heavy_rows = [x for x in rows if x["ratio"] is not None and min(x["df"]) > FREQUENT_DF]
    all_rows = [x for x in rows if x["ratio"] is not None]

    def ratio_stats(sel: list[dict[str, Any]]) -> dict[str, Any]:
        if not sel:
            return {"n": 0}
        rs = [x["ratio"] for x in sel]
        return {"n": len(sel), "mean_ratio": round(statistics.mean(rs), 4), "p50_ratio": round(pct(rs, 0.5), 4),
                "max_ratio": round(max(rs), 4), "mean_bytes": round(statistics.mean(x["bytes"] for x in sel)),
                "mean_full_bytes": round(statistics.mean(x["full_bytes"] for x in sel))}

    out["bytes_all"] = ratio_stats(all_rows)
    out["bytes_all_terms_over_1000"] = ratio_stats(heavy_rows)
    out["bytes_multi_all_terms_over_1000"] = ratio_stats([x for x in heavy_rows if x["k"] > 1])
    ov = [x for x in rows if x["overlap"] is not None]
    out["overlap_queries"] = len(ov)
    out["overlap_at_10"] = round(statistics.mean(x["overlap"] for x in ov), 4) if ov else None
    out["overlap_at_10_ties"] = round(statistics.mean(x["overlap_ties"] for x in ov), 4) if ov else None
    out["overlap_by_kind"] = {
        kind: round(statistics.mean(x["overlap"] for x in ov if x["kind"] == kind), 4)
        for kind in ("frequent", "page") if any(x["kind"] == kind for x in ov)
    }
    mr = [x["total"] / x["ref_total"] for x in rows if x["ref_total"]]
    out["match_ratio"] = round(statistics.mean(mr), 4) if mr else None
    out["fewer_matches"] = sum(1 for x in rows if x["total"] < x["ref_total"])
    out["partial_answers"] = sum(1 for x in rows if x["peers"].get("failed", 0))
    rts = [x["round_trips"] for x in rows if x["round_trips"] is not None]
    out["round_trips"] = {str(n): rts.count(n) for n in sorted(set(rts))}  # sequential rounds per query (asker's count)
    out["empty_reference"] = sum(1 for x in rows if x["overlap"] is None)
    return out


def goals(r: Results) -> list[dict[str, Any]]:
    q, p = r.query, r.publish
    two = q.get("2term", {})
    heavy = q.get("bytes_all_terms_over_1000", {})
    rows = [
        ("2-term query p50 (HTTP wall time)", two.get("wall_p50_ms"), GOAL_P50_2TERM_MS, "ms", "<="),
        ("2-term query p95 (HTTP wall time)", two.get("wall_p95_ms"), GOAL_P95_2TERM_MS, "ms", "<="),
        ("DHT lookups per 1,000 published postings", p.get("dht_lookups_per_1000"), GOAL_LOOKUPS_PER_1000, "", "<="),
        ("bytes/query vs full lists, every term > 1,000 postings (mean)",
         heavy.get("mean_ratio") if heavy.get("n") else None, GOAL_BYTES_RATIO, "", "<="),
        ("overlap@10 vs one peer holding everything", q.get("overlap_at_10"), GOAL_OVERLAP, "", ">="),
    ]
    out = []
    for name, value, goal, unit, op in rows:
        if value is None:
            verdict = "n/a"
        else:
            ok = value <= goal if op == "<=" else value >= goal
            verdict = "MET" if ok else "NOT MET"
        out.append({"goal": name, "value": value, "target": f"{op} {goal:g}{(' ' + unit) if unit else ''}",
                    "verdict": verdict})
    return out


def table(r: Results) -> str:
    p, q = r.publish, r.query
    rows: list[tuple[str, str, str]] = [
        ("publish throughput", f"{p['postings_per_second']} postings/s",
         ("" if p.get("settled", True) else "DID NOT SETTLE (timeout): ")
         + f"{p['postings_acked']} postings acked in {p['settled_s']} s ({p['pages_indexed']} pages, "
         f"{p['pages_per_second']} pages/s; crawls done at {p['crawl_done_s']} s)"),
        ("DHT lookups / 1,000 postings", f"{p['dht_lookups_per_1000']}",
         f"{p['dht_lookups']} node lookups, of which {p['resolver_lookups']} resolver group lookups"),
        ("RPCs / 1,000 postings", f"{p['rpcs_per_1000']}",
         f"{p['dht_rpcs']} Kademlia UDP RPCs + {p['p2p_requests']} p2p HTTP requests"),
        ("p2p bytes / posting (publish)", f"{p['p2p_bytes_per_posting']}",
         f"{p['p2p_bytes']} bytes sent+received, postings + records, gzip"),
    ]
    for k in (1, 2, 3):
        s = q.get(f"{k}term")
        if s:
            rows.append((f"{k}-term query p50 / p95", f"{s['wall_p50_ms']} / {s['wall_p95_ms']} ms",
                         f"HTTP wall time, {s['n']} queries; took_ms {s['took_p50_ms']} / {s['took_p95_ms']}, "
                         f"max {s['wall_max_ms']} ms"))
    for key, label in (("bytes_all", "bytes/query vs full lists, all"),
                       ("bytes_all_terms_over_1000", "  ... every term > 1,000 postings"),
                       ("bytes_multi_all_terms_over_1000", "  ... same, 2-3 terms only")):
        s = q.get(key, {})
        if s.get("n"):
            rows.append((label, f"{s['mean_ratio'] * 100:.2f} % (mean)",
                         f"p50 {s['p50_ratio'] * 100:.2f} %, max {s['max_ratio'] * 100:.2f} %, {s['n']} queries, "
                         f"{s['mean_bytes']} B vs {s['mean_full_bytes']} B"))
        else:
            rows.append((label, "-", "no such query in this run"))
    rows.append(("matches vs reference", f"{q.get('match_ratio')}",
                 f"mean of global total / reference total; {q.get('fewer_matches')} queries found fewer"))
    ns, rc = r.network_stats, r.query_replicas
    if ns:
        rows.append(("searcher's N = every page", f"after {ns['seconds']} s" if ns["converged"] else "NO",
                     f"peer records counted {ns['documents_seen']} documents (waited after publishing settled)"))
    if rc:
        rows.append(("replica consistency", f"{rc['replicas_disagree']} / {rc['terms']} terms disagree",
                     f"closest replica lacks {rc['closest_replica_missing_postings']} of {rc['postings']} postings "
                     f"({rc['closest_replica_short']} terms)"))
    if q.get("round_trips"):
        rows.append(("round trips per query", ", ".join(f"{n}: {c}" for n, c in q["round_trips"].items()),
                     "sequential rounds of p2p calls the searching peer made (its round_trips), queries per count"))
    if q.get("overlap_at_10") is not None:
        rows.append(("overlap@10", f"{q['overlap_at_10']}",
                     f"{q['overlap_queries']} queries with results; ties counted: {q['overlap_at_10_ties']}; "
                     f"by kind {q['overlap_by_kind']}"))
    lines = table_lines(rows)
    for g in r.goals:
        lines.append(f"{g['goal']}: {g['value']}  (goal {g['target']}: {g['verdict']})")
    return "\n".join(lines)


async def run(args: argparse.Namespace, tmp: Path, site: sitegen.Site, site_url: str, r: Results) -> None:
    cfg = tmp / "peer.toml"
    extra = [f"{k.strip()} = {v.strip()}" for k, _, v in (s.partition("=") for s in args.set)]
    cfg.write_text("\n".join(["crawl_delay = 0.0", "parse_workers = 0", "allow_private_networks = true", *extra]) + "\n")
    first = PeerProc(tmp, "peer00", cfg, None)
    boot = f"127.0.0.1:{first.port}"
    crawlers = [first] + [PeerProc(tmp, f"peer{i:02d}", cfg, boot) for i in range(1, args.peers)]
    searcher = PeerProc(tmp, "searcher", cfg, boot)
    ref = PeerProc(tmp, "reference", cfg, None)
    net = crawlers + [searcher]
    everyone = net + [ref]
    try:
        first.start()
        async with aiohttp.ClientSession() as http:
            await first.wait_ready(http)
            for p in everyone[1:]:
                p.start()
            await asyncio.gather(*(p.wait_ready(http) for p in everyone[1:]))
            log(f"{len(everyone)} peer processes up: {args.peers} crawling, 1 searching (empty), 1 reference (alone)")
            r.join = await wait_membership(http, net, args.join_timeout)
            urls = site.urls(site_url)
            r.publish = await run_publish(http, crawlers, net, urls, args.timeout, args.poll)
            r.reference = await run_reference(http, ref, urls, args.timeout)
            if r.reference["documents"] != r.publish["pages_indexed"]:
                log(f"WARNING: the reference holds {r.reference['documents']} documents, "
                    f"the network indexed {r.publish['pages_indexed']}")
            r.network_stats = await wait_network_stats(http, searcher, r.publish["pages_indexed"], args.stats_timeout)
            v = vocabulary(site)
            queries = query_set(v, args.queries, args.seed)
            log(f"{len(queries)} queries ({sum(1 for q in queries if q[2] == 'frequent')} of frequent terms), "
                f"e.g. {[q for q, _, _ in queries[:6]]}")
            by_id = {p.peer_id: p for p in net}
            r.query = await run_queries(http, searcher, ref, by_id, queries, r)
    finally:
        for p in everyone:
            p.stop()
        for p in everyone:
            p.reap()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--direct" in argv:  # shards filled directly, no crawling: round trips, bytes, exactness (bench.netquery)
        from bench.netquery import main as direct

        return direct([a for a in argv if a != "--direct"])
    ap = argparse.ArgumentParser(prog="python -m bench network", description=__doc__.split("\n")[0])
    ap.add_argument("--peers", type=int, default=10, help="crawling peers (default 10; +1 searching, +1 reference)")
    ap.add_argument("--pages", type=int, default=2000, help="pages in the generated site (default 2000)")
    add_query_args(ap, "global")
    ap.add_argument("--timeout", type=float, default=1800.0,
                    help="seconds allowed for publishing to settle; after that the run goes on, marked unsettled")
    ap.add_argument("--join-timeout", type=float, default=120.0, help="seconds allowed for membership to converge")
    ap.add_argument("--stats-timeout", type=float, default=420.0,
                    help="seconds to wait for the searching peer's view of N to count every page (default 420)")
    ap.add_argument("--poll", type=float, default=3.0,
                    help="status polling interval in seconds (default 3; each status call scans the shard store)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a peer config value (TOML syntax), e.g. --set replication=3 (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (data dirs, peer logs)")
    add_report_args(ap, "also write the figures (and every query) as JSON to this file")
    args = ap.parse_args(argv)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # unwinds through the finally blocks that stop the peers

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)  # also when started in the background (SIGINT ignored)
    if args.peers < 2:
        ap.error("--peers must be at least 2")

    r = Results()
    r.machine = machine()
    r.config = {"peers": args.peers, "pages": args.pages, "queries": args.queries, "seed": args.seed,
                "peer_config": ["crawl_delay = 0.0", "parse_workers = 0", "allow_private_networks = true", *args.set]}
    tmp_s = tempfile.mkdtemp(prefix="yasearch-bench-net-")
    tmp = Path(tmp_s)
    try:
        with served_site(args.pages, args.seed, tmp / "site") as (site, url):
            asyncio.run(run(args, tmp, site, url, r))
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    r.goals = goals(r)
    report(r, table(r), args.json)
    if args.strict and any(g["verdict"] == "NOT MET" for g in r.goals):
        return 2
    return 0
