"""``python -m bench shard``: the shard store's disk cost and speed on realistic postings.

Fills a fresh store the way a holder is filled: every origin's postings arrive as
signed batches (up to 5,000 entries, ordered document by document like the
publisher's) through :class:`yasearch.shard.service.LocalPeer` (the holder's
side of ``/p2p/v1/postings``, without HTTP and without the signature check, which
is the boundary's cost, not the store's), each followed by the signed records of
its documents. The vocabulary is Zipf-distributed. Then it reports:

* bytes of disk per held posting: the database files (main + WAL) after a WAL
  checkpoint ("steady state", pages as the writes left them) and after VACUUM;
* write throughput (postings per second through ``LocalPeer.postings``);
* top-m, postings_for and df read times on the most frequent terms;
* withdrawal time (whole documents, one call each) and a no-op expiry pass.

``--code DIR`` runs the same benchmark against another checkout of yasearch (e.g. a
detached worktree of an older commit): DIR goes first on ``sys.path``.
``--compare DIR`` runs DIR's code and this checkout's alternately (``--rounds`` each,
child processes) and prints the best figure of each side with the ratio: the
machine is shared, so only figures taken side by side compare. Read times are
the median over the terms of the best of 5 calls.
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
from pathlib import Path
from typing import Any


def _word(rank: int) -> str:
    """A made-up word per vocabulary rank: frequent words short, rare ones longer."""
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    out = []
    n = rank
    while True:
        out.append(letters[n % 26])
        n //= 26
        if n == 0:
            break
    return "".join(out) + ("s" * (3 - len(out)) if len(out) < 3 else "") + ("ing" if rank % 7 == 3 else "")


def make_corpus(n_postings: int, n_docs: int, vocab: int, seed: int) -> list[tuple[str, int, list[tuple[str, int, int]]]]:
    """``[(url, length, [(term, tf, flags)])]``: ``n_postings`` postings over ``n_docs``."""
    rnd = random.Random(seed)
    weights = [1.0 / (r + 1) for r in range(vocab)]
    cum: list[float] = []
    acc = 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    per_doc = n_postings // n_docs
    docs = []
    for i in range(n_docs):
        terms: dict[str, None] = {}
        while len(terms) < per_doc:
            for r in rnd.choices(range(vocab), cum_weights=cum, k=per_doc - len(terms)):
                terms[_word(r)] = None
        length = rnd.randint(per_doc * 2, per_doc * 20)
        entries = []
        for t in terms:
            tf = min(length, 1 + int(rnd.expovariate(0.7)))
            flags = 1 if rnd.random() < 0.03 else (2 if rnd.random() < 0.05 else 0)
            entries.append((t, tf, flags))
        docs.append((f"https://site{i % 97}.example/page/{i}", length, entries))
    return docs


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-shard-") as d:
        return await _run_in(args, Path(d))


async def _run_in(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from yasearch.identity import Identity
    from yasearch.shard import ShardStore
    from yasearch.shard.service import LocalPeer
    from yasearch.wire import DocsRequest, PostingEntry, PostingsRequest, WirePosting, WireRecord, sign

    async def no_verify(*_a: object) -> dict[str, dict[str, str]]:
        return {}

    corpus = make_corpus(args.postings, args.docs, args.vocab, args.seed)
    ids = [Identity.generate() for _ in range(args.origins)]
    path = tmp / "shard.db"
    out: dict[str, Any] = {}
    now = time.time()
    # the signed batches and records, made before the clock starts
    batches: list[tuple[PostingsRequest, DocsRequest]] = []
    for o, ident in enumerate(ids):
        mine = [d for i, d in enumerate(corpus) if i % len(ids) == o]
        entries: list[tuple[PostingEntry, WireRecord]] = []
        for url, length, terms in mine:
            doc_id = hashlib.sha1(url.encode()).hexdigest()
            rec = sign(WireRecord(doc_id=doc_id, url=url, title=f"Page {url[-6:]} of a site", description="A page "
                                  "about things, with a description of the usual length for a web page. " * 2,
                                  language="en", length=length, crawled_at=now - 3600, host=url.split("/")[2],
                                  origin=ident.hex), ident)
            for t, tf, flags in terms:
                entries.append((PostingEntry(t, WirePosting(doc_id, tf, flags, length)), rec))
        for i in range(0, len(entries), args.batch):
            chunk = entries[i : i + args.batch]
            req = sign(PostingsRequest(origin=ident.hex, postings=[e for e, _ in chunk], signed_at=now), ident)
            recs = list({r.doc_id: r for _, r in chunk}.values())
            batches.append((req, DocsRequest(origin=ident.hex, docs=recs)))
    rnd = random.Random(args.seed + 1)
    rnd.shuffle(batches)  # origins publish concurrently

    store = await ShardStore(path).open()
    local = LocalPeer(store, no_verify)
    t0 = time.perf_counter()
    held = 0
    for req, docs in batches:
        reply = await local.postings(req)
        held += reply.accepted
        await local.docs(docs)
    write_s = time.perf_counter() - t0
    out["postings_held"] = held
    out["write_postings_per_s"] = held / write_s

    def size(conn: Any) -> int:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(p.stat().st_size for p in tmp.iterdir() if p.name.startswith("shard.db"))

    out["bytes_per_posting_steady"] = await store._run(size) / held  # noqa: SLF001 - a benchmark looks inside
    # reads: the most frequent terms (the ones top-M truncates)
    counts: dict[str, int] = {}
    for _u, _l, terms in corpus:
        for t, _tf, _f in terms:
            counts[t] = counts.get(t, 0) + 1
    heavy = sorted(counts, key=lambda t: -counts[t])[:20]
    all_ids = [hashlib.sha1(u.encode()).hexdigest() for u, _l, _t in corpus]

    async def timed(coro_fn: Any, items: list[Any]) -> float:
        """Median over the items of the best of 5 calls each (the machine is shared)."""
        times = []
        for x in items:
            best = float("inf")
            for _ in range(5):
                t = time.perf_counter()
                await coro_fn(x)
                best = min(best, (time.perf_counter() - t) * 1000)
            times.append(best)
        return statistics.median(times)

    out["top_ms"] = await timed(lambda t: store.top(t, args.m), heavy)
    out["postings_for_ms"] = await timed(lambda x: store.postings_for(*x), [(t, rnd.sample(all_ids, min(500, len(all_ids)))) for t in heavy])
    out["df_ms"] = await timed(lambda ts: store.df(ts), [heavy[i : i + 5] for i in range(0, 20, 5)])
    docs_recs = await timed(lambda ds: store.signed_docs(ds), [rnd.sample(all_ids, min(100, len(all_ids))) for _ in range(10)])
    out["signed_docs_100_ms"] = docs_recs
    t = time.perf_counter()
    await store.expire()
    out["expire_noop_ms"] = (time.perf_counter() - t) * 1000
    # withdraw whole documents, one call each (a page gone)
    gone = rnd.sample(range(len(corpus)), min(args.withdraw, len(corpus) // 2))
    t = time.perf_counter()
    removed = 0
    for i in gone:
        removed += await store.withdraw(ids[i % len(ids)].hex, [all_ids[i]])
    out["withdraw_ms_per_doc"] = (time.perf_counter() - t) * 1000 / len(gone)
    out["withdrawn_postings"] = removed
    out["withdrawn_docs"] = len(gone)

    def vacuum(conn: Any) -> int:
        conn.execute("VACUUM")
        return size(conn)

    out["bytes_per_posting_vacuumed"] = await store._run(vacuum) / (held - removed)  # noqa: SLF001
    await store.close()
    return out


_FIGURES = [  # key, label, format, better
    ("bytes_per_posting_steady", "bytes per held posting, steady state", "{:.1f}", min),
    ("bytes_per_posting_vacuumed", "bytes per held posting, after VACUUM", "{:.1f}", min),
    ("write_postings_per_s", "write, postings/s", "{:,.0f}", max),
    ("top_ms", "top(term, m), ms", "{:.2f}", min),
    ("postings_for_ms", "postings_for(term, 500), ms", "{:.2f}", min),
    ("df_ms", "df(5 terms), ms", "{:.2f}", min),
    ("signed_docs_100_ms", "signed_docs(100), ms", "{:.2f}", min),
    ("withdraw_ms_per_doc", "withdraw one document, ms", "{:.2f}", min),
    ("expire_noop_ms", "expire (nothing due), ms", "{:.1f}", min),
]


def compare(args: argparse.Namespace, argv: list[str]) -> int:
    """Run this checkout and ``--compare DIR`` alternately, ``--rounds`` times each, in
    child processes; print the best figure of each side and their ratio."""
    import json
    import subprocess

    rest = [a for i, a in enumerate(argv) if a != "--compare" and (i == 0 or argv[i - 1] != "--compare")]
    rest = [a for i, a in enumerate(rest) if a != "--rounds" and (i == 0 or rest[i - 1] != "--rounds")]
    here = str(Path(__file__).resolve().parent.parent)
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for side, code in (("old", args.compare), ("new", here)):
                out = Path(tmp) / f"{side}{r}.json"
                subprocess.run([sys.executable, "-m", "bench", "shard", *rest, "--code", code, "--json", str(out)],
                               check=True, cwd=here, stdout=subprocess.DEVNULL)
                runs[side].append(json.loads(out.read_text()))
    print(f"  {'figure':40s} {'old':>12s} {'new':>12s} {'new/old':>8s}   (best of {args.rounds} alternating runs)")
    for key, label, fmt, best in _FIGURES:
        o = best(x[key] for x in runs["old"])
        n = best(x[key] for x in runs["new"])
        print(f"  {label:40s} {fmt.format(o):>12s} {fmt.format(n):>12s} {n / o if o else float('nan'):8.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench shard", description=__doc__.split("\n\n")[0])
    ap.add_argument("--postings", type=int, default=200_000)
    ap.add_argument("--docs", type=int, default=2_000)
    ap.add_argument("--vocab", type=int, default=50_000, help="Zipf vocabulary size")
    ap.add_argument("--origins", type=int, default=4)
    ap.add_argument("--batch", type=int, default=5_000, help="entries per signed batch")
    ap.add_argument("--m", type=int, default=1_000, help="top-m read size")
    ap.add_argument("--withdraw", type=int, default=200, help="documents withdrawn")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--code", help="a yasearch checkout to benchmark instead of this one")
    ap.add_argument("--compare", metavar="DIR", help="run DIR's code and this one alternately, side by side")
    ap.add_argument("--rounds", type=int, default=2, help="with --compare: runs of each side")
    ap.add_argument("--json", help="also write the figures to this file")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)
    if args.compare:
        return compare(args, argv)
    if args.code:
        if "yasearch" in sys.modules:
            raise SystemExit("--code: yasearch is already imported")
        sys.path.insert(0, str(Path(args.code).resolve()))
    import yasearch.shard

    print(f"[bench shard] code: {Path(yasearch.shard.__file__).parent}", flush=True)
    out = asyncio.run(run(args))
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(out))
    print(f"  postings held            {out['postings_held']:,}")
    print(f"  bytes per held posting   {out['bytes_per_posting_steady']:.1f} (steady state: WAL checkpointed, "
          f"no VACUUM)")
    print(f"                           {out['bytes_per_posting_vacuumed']:.1f} (after {out['withdrawn_docs']} "
          "documents withdrawn and VACUUM)")
    print(f"  write                    {out['write_postings_per_s']:,.0f} postings/s (signed batches of {args.batch}"
          " + their records, through LocalPeer)")
    print(f"  top(term, {args.m})          {out['top_ms']:.2f} ms median over the 20 most frequent terms")
    print(f"  postings_for(term, 500)  {out['postings_for_ms']:.2f} ms median")
    print(f"  df(5 terms)              {out['df_ms']:.2f} ms median")
    print(f"  signed_docs(100)         {out['signed_docs_100_ms']:.2f} ms median")
    print(f"  withdraw one document    {out['withdraw_ms_per_doc']:.2f} ms ({out['withdrawn_postings']:,} postings "
          f"in {out['withdrawn_docs']} documents)")
    print(f"  expire (nothing due)     {out['expire_noop_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
