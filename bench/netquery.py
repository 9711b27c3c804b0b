"""Global query benchmark on directly filled shards: round trips, bytes, exactness.

``python -m bench network --direct`` (or ``python -m bench.netquery``). No crawling:
P peers start in this process (real HTTP on loopback, real DHT), join, and the
shard stores of each term's responsible peers are filled directly with a
generated corpus (signed records of one origin, postings as a publisher would
send them), so every common term has more than 10,000 postings in a minute
instead of hours of crawling. The searching peer holds none of the query terms
(its calls all travel) and scores with the corpus' N and average length.

Per query: the top 10 against brute-force BM25 over the whole corpus (the same
:mod:`yasearch.ranking` function: one big index), the p2p bytes the searching
peer sent and received against shipping every query term's full posting list,
and the sequential round trips, measured from outside: the depth of the longest
chain of lookup/verify calls where each starts after the one before it ended
(so the same figure is measured for any version of the asker).

Scenarios: ``heavy`` (1-3 terms, every term in 45-70 % of the documents: df >
10,000 with the default 24,000 documents, lists 11-17 times the first batch of
1,000), ``mixed`` (topical terms with df in the thousands, alone and with common
ones) and ``flat`` (the rarest term a "flat" word, in 42-46 % of the documents
once each and nowhere special, with 1-2 common words: its own best postings say
little about the top 10, the case an asker that reads one term's top M misses).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import log, pct, table_lines
from yasearch.analysis import analyze
from yasearch.config import Config
from yasearch.identity import KEY_FILE, Identity
from yasearch.network import Contact
from yasearch.query import parse_query
from yasearch.ranking import CollectionStats, bm25_scores, rank
from yasearch.records import IN_DESCRIPTION, IN_HEADINGS, IN_TITLE, Posting
from yasearch.server import PeerServer
from yasearch.wire import LookupRequest, WireRecord, sign

SYLLABLES = "ka lo mi nu re sa ti vo be da fe gu ho ji".split()


@dataclass
class Corpus:
    n_docs: int
    lengths: list[int]
    postings: dict[str, dict[int, Posting]] = field(default_factory=dict)  # term -> doc index -> posting
    common: list[str] = field(default_factory=list)
    topical: list[str] = field(default_factory=list)
    flat: tuple[str, ...] = ()
    doc_ids: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)


def words(rng: random.Random, n: int, avoid: set[str]) -> list[str]:
    """``n`` made-up words that the analyzer keeps as one term each."""
    out: list[str] = []
    while len(out) < n:
        w = "".join(rng.choice(SYLLABLES) for _ in range(4))
        t = analyze(w)
        if len(t) == 1 and t[0] == w and w not in avoid and w not in out:
            out.append(w)
    return out


def generate(n_docs: int, seed: int, common: list[str], topical: list[str], mu: float = 6.2,
             flat: tuple[str, ...] = ()) -> Corpus:
    """Documents with lognormal lengths and a richness (more occurrences of every word);
    common words in 45-70 % of them, each topical word mostly in its own topic's documents."""
    rng = random.Random(seed)
    c = Corpus(n_docs=n_docs, lengths=[], common=common, topical=topical, flat=flat)
    c.urls = [f"http://d{i}.bench.example/page" for i in range(n_docs)]
    c.doc_ids = [hashlib.sha1(u.encode()).hexdigest() for u in c.urls]
    rich = [rng.lognormvariate(0, 0.5) for _ in range(n_docs)]
    c.lengths = [max(30, int(rng.lognormvariate(mu, 0.7))) for _ in range(n_docs)]
    topics = max(1, len(topical) // 2)
    topic_of = [rng.randrange(topics) for _ in range(n_docs)]

    def posting(i: int, tf_scale: float, title_p: float) -> Posting:
        tf = 1
        while rng.random() < min(0.85, 0.35 * tf_scale * rich[i]):
            tf += 1
        flags = (IN_TITLE if rng.random() < title_p else 0) | (IN_HEADINGS if rng.random() < 2 * title_p else 0)
        flags |= IN_DESCRIPTION if rng.random() < title_p else 0
        return Posting(doc_id=c.doc_ids[i], tf=min(tf, c.lengths[i]), flags=flags, length=c.lengths[i])

    for w in common:
        p = rng.uniform(0.45, 0.70)
        c.postings[w] = {i: posting(i, 1.0, 0.03) for i in range(n_docs) if rng.random() < p}
    for w in flat:  # once per document, nowhere special: only the length tells postings apart
        p = rng.uniform(0.42, 0.46)
        c.postings[w] = {i: Posting(doc_id=c.doc_ids[i], tf=1, flags=0, length=c.lengths[i])
                         for i in range(n_docs) if rng.random() < p}
    for j, w in enumerate(topical):
        mine = j // 2
        c.postings[w] = {
            i: posting(i, 2.0 if topic_of[i] == mine else 0.6, 0.3 if topic_of[i] == mine else 0.01)
            for i in range(n_docs) if rng.random() < (0.8 if topic_of[i] == mine else 0.04)
        }
    return c


def reference(c: Corpus, terms: list[str], avg: float) -> list[str]:
    """Top 10 doc ids of one big index: AND, BM25 with the corpus' N, df and average length."""
    docs = set.intersection(*(set(c.postings[t]) for t in terms))
    scored = {t: [c.postings[t][i] for i in docs] for t in terms}
    df = {t: len(c.postings[t]) for t in terms}
    return [d for d, _s in rank(bm25_scores(scored, CollectionStats(c.n_docs, avg, df)))[:10]]


class Calls:
    """The searcher's lookup/verify calls as (start, end) intervals: the chain depth is the round trips."""

    def __init__(self, client: Any) -> None:
        self.spans: list[tuple[float, float]] = []
        for name in ("lookup", "verify"):
            real = getattr(client, name)

            async def timed(*a: Any, _real: Any = real, **kw: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await _real(*a, **kw)
                finally:
                    self.spans.append((t0, time.perf_counter()))

            setattr(client, name, timed)

    def depth(self) -> int:
        spans = sorted(self.spans)
        level: list[int] = []
        for i, (s, _e) in enumerate(spans):
            level.append(1 + max((level[j] for j in range(i) if spans[j][1] <= s), default=0))
        return max(level, default=0)


def seeded_identity(seed: int, i: int) -> Identity:
    """The same key pair in every run: the same node IDs, so the same words land on the same peers."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Identity(Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"bench-{seed}-{i}".encode()).digest()))


async def start_peers(tmp: Path, n: int, replication: int, budget: float, seed: int) -> list[PeerServer]:
    servers = []
    for i in range(n):
        (tmp / f"peer{i}").mkdir(parents=True)
        key = tmp / f"peer{i}" / KEY_FILE
        key.write_bytes(seeded_identity(seed, i).private_pem())
        key.chmod(0o600)
        cfg = Config(data_dir=tmp / f"peer{i}", port=0, crawl_delay=0.0, parse_workers=0, allow_private_networks=True,
                     replication=replication, search_budget=budget)
        s = PeerServer(cfg)
        await s.start()
        servers.append(s)
    boot = [("127.0.0.1", servers[0].peer.port)]
    for s in servers[1:] + servers:
        await s.peer.join(boot)
    return servers


async def fill(servers: list[PeerServer], c: Corpus, replication: int, seed: int) -> dict[str, list[int]]:
    """Each term's postings (and the records they name) into its responsible peers' shards."""
    searcher = servers[0].peer
    origin = seeded_identity(seed, -1)
    now = time.time()
    recs = [sign(WireRecord(doc_id=d, url=u, title=f"document {i}", description=f"generated page number {i}",
                            language="en", length=c.lengths[i], crawled_at=now, host=u.split("/")[2],
                            origin=origin.node_id.hex()), origin) for i, (d, u) in enumerate(zip(c.doc_ids, c.urls))]
    by_id = {s.peer.identity.node_id: s.peer for s in servers}
    holders: dict[str, list[int]] = {}
    held: dict[bytes, set[int]] = {}
    for t, plist in c.postings.items():
        reps = (await searcher.resolver.responsible(t, skip_failed=False))[:replication]
        holders[t] = [servers.index(next(s for s in servers if s.peer.identity.node_id == r.node_id)) for r in reps]
        items = [(t, p) for p in plist.values()]
        for r in reps:
            shard = by_id[r.node_id].shard
            for j in range(0, len(items), 5000):
                await shard.upsert(origin.node_id.hex(), items[j : j + 5000], signed_at=now)
            held.setdefault(r.node_id, set()).update(plist)
    for nid, docs in held.items():
        batch = [recs[i] for i in sorted(docs)]
        for j in range(0, len(batch), 1000):
            await by_id[nid].shard.put_docs(batch[j : j + 1000])
    return holders


async def bytes_per_posting(servers: list[PeerServer], c: Corpus, term: str, holder: int) -> float:
    me, other = servers[0].peer, servers[holder].peer
    contact = Contact(other.identity.node_id, other.url)
    tr = me.transport
    b0 = tr.bytes_received + tr.bytes_sent
    await me.p2p.lookup(contact, LookupRequest(terms=[term], m=0))
    b1 = tr.bytes_received + tr.bytes_sent
    reply = await me.p2p.lookup(contact, LookupRequest(terms=[term], m=2000))
    b2 = tr.bytes_received + tr.bytes_sent
    return ((b2 - b1) - (b1 - b0)) / max(1, len(reply.postings.get(term, [])))


def queries(c: Corpus, rng: random.Random, n: int, searcher_terms: set[str]) -> dict[str, list[list[str]]]:
    common = [w for w in c.common if w not in searcher_terms]
    topical = [w for w in c.topical if w not in searcher_terms]
    heavy = [rng.sample(common, 1 + i % 3) for i in range(n)]
    mixed = []
    for i in range(n):
        k = i % 3
        if k == 0:
            mixed.append([rng.choice(topical)])
        elif k == 1:
            mixed.append([rng.choice(topical), rng.choice(common)])
        else:
            j = rng.randrange(len(topical) // 2) * 2
            mixed.append(topical[j : j + 2] + [rng.choice(common)])
    out = {"heavy": heavy, "mixed": mixed}
    if c.flat:  # the rarest word flat, the others not: its own top postings say little about the top 10
        out["flat"] = [[rng.choice(c.flat)] + rng.sample(common, 1 + i % 2) for i in range(n)]
    return out


async def not_held(servers: list[PeerServer], rng: random.Random, n: int, avoid: set[str], replication: int) -> list[str]:
    """``n`` words whose replicas do not include the searching peer (so every call of a query travels)."""
    me = servers[0].peer
    out: list[str] = []
    while len(out) < n:
        w = words(rng, 1, avoid | set(out))[0]
        reps = (await me.resolver.responsible(w, skip_failed=False))[:replication]
        if me.identity.node_id not in {r.node_id for r in reps}:
            out.append(w)
    return out


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    servers = await start_peers(tmp, args.peers, args.replication, args.budget, args.seed)
    out: dict[str, Any] = {}
    try:
        common = await not_held(servers, rng, args.common, set(), args.replication)
        topical = await not_held(servers, rng, args.topical, set(common), args.replication)
        t0 = time.perf_counter()
        flat = await not_held(servers, rng, args.flat, set(common) | set(topical), args.replication)
        c = generate(args.docs, args.seed, common, topical, args.mu, tuple(flat))
        total_len = sum(c.lengths)
        avg = total_len / c.n_docs
        log(f"corpus: {c.n_docs} documents (average length {avg:.0f}), {sum(len(p) for p in c.postings.values())} postings, df of common words "
            f"{sorted(len(c.postings[w]) for w in common)} ({time.perf_counter() - t0:.1f}s)")
        t0 = time.perf_counter()
        holders = await fill(servers, c, args.replication, args.seed)
        log(f"{args.peers} peers joined, shards filled in {time.perf_counter() - t0:.1f}s (replication {args.replication})")
        searcher = servers[0].peer
        searcher.global_search.network_totals = lambda: (c.n_docs, total_len)
        searcher.global_search.hedge_after = args.budget  # no hedged second calls: every call is a round trip's
        if args.first_batch:
            searcher.global_search.first_batch = args.first_batch
        mine = {t for t, h in holders.items() if 0 in h}
        heavy_term = max((w for w in common if w not in mine), key=lambda w: len(c.postings[w]))
        bpp = await bytes_per_posting(servers, c, heavy_term, holders[heavy_term][0])
        log(f"{bpp:.1f} bytes per posting in a lookup reply (gzip as sent); the searcher holds {sorted(mine)}")
        calls = Calls(searcher.p2p)
        for scenario, qs in queries(c, rng, args.queries, mine).items():
            rows = []
            for terms in qs:
                q = " ".join(terms)
                tr = searcher.transport
                b0 = tr.bytes_sent + tr.bytes_received
                calls.spans.clear()
                resp = await searcher.global_search.search(parse_query(q), limit=10)
                used = tr.bytes_sent + tr.bytes_received - b0
                want = reference(c, terms, avg)
                got = [h.doc_id for h in resp.results[:10]]
                full = sum(len(c.postings[t]) for t in set(terms)) * bpp
                rows.append({"q": q, "terms": len(terms), "df": [len(c.postings[t]) for t in terms],
                             "overlap": len(set(got) & set(want)) / len(want) if want else None,
                             "exact": got == want, "bytes": used, "ratio": used / full, "depth": calls.depth(),
                             "round_trips": getattr(resp, "round_trips", None), "took_ms": resp.took_ms,
                             "failed": resp.peers.get("failed", 0)})
            out[scenario] = rows
            summary(scenario, rows)
    finally:
        for s in reversed(servers):
            await s.stop()
    return out


def summary(scenario: str, rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    ov = [r["overlap"] for r in rows if r["overlap"] is not None]
    ratios = [r["ratio"] for r in rows]
    depth = [r["depth"] for r in rows]
    dist = {d: depth.count(d) for d in sorted(set(depth))}
    took = [r["took_ms"] for r in rows]
    lines = [
        (f"{scenario}: overlap@10", f"{statistics.mean(ov):.4f}" if ov else "-",
         f"{len(ov)} queries with matches; identical top 10 (order too) in {sum(r['exact'] for r in rows)}"),
        (f"{scenario}: bytes vs full lists", f"{statistics.mean(ratios) * 100:.2f} % (mean)",
         f"p50 {pct(ratios, 0.5) * 100:.2f} %, max {max(ratios) * 100:.2f} %; mean {statistics.mean(r['bytes'] for r in rows):.0f} B"),
        (f"{scenario}: sequential round trips", f"p50 {pct(depth, 0.5)}, max {max(depth)}", f"distribution {dist}"),
        (f"{scenario}: took_ms (in-process)", f"p50 {pct(took, 0.5):.0f}, p95 {pct(took, 0.95):.0f}",
         f"{len(rows)} queries, {sum(1 for r in rows if r['failed'])} with failed calls"),
    ]
    for k in (1, 2, 3):
        sel = [r for r in rows if r["terms"] == k]
        if sel:
            lines.append((f"  {k}-term", f"overlap {statistics.mean(r['overlap'] for r in sel if r['overlap'] is not None):.3f}",
                          f"bytes {statistics.mean(r['ratio'] for r in sel) * 100:.2f} %, round trips "
                          f"{ {d: [r['depth'] for r in sel].count(d) for d in sorted({r['depth'] for r in sel})} }"))
    print("\n".join(table_lines(lines)), flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench network --direct", description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=24000, help="documents in the generated corpus (default 24000)")
    ap.add_argument("--peers", type=int, default=6, help="peers in this process, the first one searching (default 6)")
    ap.add_argument("--replication", type=int, default=2, help="replicas per term (default 2)")
    ap.add_argument("--common", type=int, default=8, help="common words, each in 45-70 %% of documents (default 8)")
    ap.add_argument("--topical", type=int, default=16, help="topical words, two per topic (default 16)")
    ap.add_argument("--flat", type=int, default=2,
                    help="flat words: in 42-46 %% of documents, tf 1, no field (default 2; scenario flat)")
    ap.add_argument("--queries", type=int, default=30, help="queries per scenario (default 30)")
    ap.add_argument("--budget", type=float, default=30.0, help="search budget in seconds (default 30: no partial answers)")
    ap.add_argument("--first-batch", type=int, default=0, help="postings per term in round trip 1 (default: the asker's own)")
    ap.add_argument("--mu", type=float, default=6.2,
                    help="log of the median document length in tokens (default 6.2: ~500; 8.0: ~3,000)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="yasearch-bench-netquery-") as tmp:
        asyncio.run(run(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
