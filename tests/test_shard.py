"""Shard store: upsert semantics, df, impact-ordered top-M, withdrawal, quotas,
validation, expiry, persistence and crash safety (real SQLite files)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sqlite3
import sys
import textwrap
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from yasearch.identity import Identity
from yasearch.records import IN_TITLE, IN_URL, DocRecord, Posting
from yasearch.shard import ShardStore, UpsertResult, impact
from yasearch.wire import (
    BadMessage, DocsRequest, PostingEntry, PostingsRequest, WirePosting, WithdrawRequest, batch_body, decode, sign,
)

ROOT = Path(__file__).resolve().parent.parent
A = "a" * 40  # origin peer IDs
Bo = "b" * 40


def did(n: int | str) -> str:
    return hashlib.sha1(str(n).encode()).hexdigest()


def rec(doc_id: str, url: str | None = None, **kw: object) -> DocRecord:
    url = url or f"https://example.org/{doc_id[:8]}"
    return DocRecord(doc_id=doc_id, url=url, **{"title": "T", "origin": A, **kw})  # type: ignore[arg-type]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ShardStore]:
    s = await ShardStore(tmp_path / "shard.db").open()
    yield s
    await s.close()


async def test_upsert_then_reupsert_keeps_one_posting_and_updates_it(store: ShardStore) -> None:
    d = did(1)
    r = await store.upsert(A, [("apple", Posting(d, 2, 0, 100)), ("pear", Posting(d, 1, 0, 100))])
    assert r == UpsertResult(accepted=2, refused_quota=0, created=2)
    r = await store.upsert(A, [("apple", Posting(d, 5, IN_TITLE, 120))])
    assert r == UpsertResult(accepted=1, refused_quota=0, created=0)
    assert await store.postings_for("apple", [d]) == [Posting(d, 5, IN_TITLE, 120)]
    st = await store.stats()
    assert st["postings"] == 2 and st["terms"] == 2
    assert st["origins"][A]["postings"] == 2
    # duplicates inside one batch: the later entry wins, still one row
    await store.upsert(A, [("apple", Posting(d, 7, 0, 1)), ("apple", Posting(d, 8, 0, 1))])
    assert await store.postings_for("apple", [d]) == [Posting(d, 8, 0, 1)]
    assert await store.origin_count(A) == 2
    # each update moved the posting in the impact order; it is still one posting
    assert await store.top("apple", 10) == [Posting(d, 8, 0, 1)]
    assert await store.df(["apple", "pear"]) == {"apple": 1, "pear": 1}


async def test_df_counts_documents_per_term(store: ShardStore) -> None:
    await store.upsert(A, [("apple", Posting(did(i), 1, 0, 10)) for i in range(5)])
    await store.upsert(Bo, [("apple", Posting(did(i), 1, 0, 10)) for i in range(5, 8)])
    await store.upsert(Bo, [("pear", Posting(did(1), 1, 0, 10))])
    assert await store.df(["apple", "pear", "nothing"]) == {"apple": 8, "pear": 1, "nothing": 0}
    assert await store.df([]) == {}


async def test_top_orders_by_impact_then_doc_id_and_respects_limit(store: ShardStore) -> None:
    title_hit = Posting(did("title"), 1, IN_TITLE, 300)
    body_only = Posting(did("body"), 1, 0, 300)
    short = Posting(did("short"), 2, 0, 50)
    long_ = Posting(did("long"), 2, 0, 5000)
    tie1, tie2 = sorted([did("tie1"), did("tie2")])
    ties = [Posting(tie2, 1, IN_URL, 10), Posting(tie1, 1, IN_URL, 10)]
    batch = [("fruit", p) for p in (body_only, long_, ties[0], title_hit, short, ties[1])]
    await store.upsert(A, batch)
    got = await store.top("fruit", 10)
    ids = [p.doc_id for p in got]
    assert ids.index(title_hit.doc_id) < ids.index(body_only.doc_id)
    assert ids.index(short.doc_id) < ids.index(long_.doc_id)
    assert ids.index(tie1) + 1 == ids.index(tie2)  # equal impact: doc_id order
    impacts = [impact(p) for p in got]
    assert impacts == sorted(impacts, reverse=True)
    assert len(got) == 6
    assert await store.top("fruit", 2) == got[:2]
    assert await store.top("fruit", 0) == []
    assert await store.top("unknown", 5) == []


async def test_postings_for_is_exact(store: ShardStore) -> None:
    await store.upsert(A, [("apple", Posting(did(i), i + 1, 0, 10)) for i in range(10)])
    await store.upsert(A, [("pear", Posting(did(20), 1, 0, 10))])
    want = [did(3), did(7), did(20), did(99)]
    got = await store.postings_for("apple", want)
    assert {p.doc_id for p in got} == {did(3), did(7)}
    assert {p.doc_id: p.tf for p in got} == {did(3): 4, did(7): 8}
    assert await store.postings_for("apple", []) == []
    # more candidates than one IN chunk
    many = [did(i) for i in range(1200)]
    assert len(await store.postings_for("apple", many)) == 10


async def test_missing_docs_and_put_docs(store: ShardStore) -> None:
    d1, d2, d3 = did(1), did(2), did(3)
    await store.upsert(A, [("apple", Posting(d1, 1, 0, 10)), ("apple", Posting(d2, 1, 0, 10))])
    assert await store.missing_docs([d1, d2, d3, d1]) == [d1, d2, d3]
    # d3 has no posting here: its record is not accepted (records follow postings);
    # nor is a record of d2 by an origin whose postings of d2 are not held here
    stored = await store.put_docs([rec(d1, host="example.org"), rec(d3), rec(d2, origin=Bo)])
    assert stored == 1
    assert await store.missing_docs([d1, d2, d3]) == [d2, d3]
    docs = await store.docs([d1, d2])
    assert list(docs) == [d1]
    assert docs[d1].origin == A
    assert docs[d1].host == "example.org"
    # only its origin replaces a record, and only with one as recent
    assert await store.put_docs([rec(d1, title="older", crawled_at=-1.0)]) == 0
    assert await store.put_docs([rec(d1, title="newer", crawled_at=5.0)]) == 1
    assert (await store.docs([d1]))[d1].title == "newer"
    assert await store.stats() == {
        "postings": 2,
        "terms": 1,
        "docs": 1,
        "origins": {A: {"postings": 2, "docs": 1}},
        "quota_per_origin": store.quota_per_origin,
    }


async def test_withdraw_all_removes_postings_and_record(store: ShardStore) -> None:
    d1, d2 = did(1), did(2)
    await store.upsert(A, [(t, Posting(d, 1, 0, 10)) for t in ("apple", "pear") for d in (d1, d2)])
    await store.put_docs([rec(d1), rec(d2)])
    assert await store.withdraw(A, [d1]) == 2
    assert await store.df(["apple", "pear"]) == {"apple": 1, "pear": 1}
    assert await store.missing_docs([d1, d2]) == [d1]
    assert await store.origin_count(A) == 2
    # another origin cannot withdraw what A holds
    assert await store.withdraw(Bo, [d2]) == 0
    assert await store.df(["apple"]) == {"apple": 1}
    assert await store.withdraw(A, []) == 0


async def test_withdraw_keeping_current_terms_for_a_recrawl(store: ShardStore) -> None:
    d = did(1)
    old = ["apple", "pear", "plum"]
    await store.upsert(A, [(t, Posting(d, 1, 0, 10)) for t in old])
    await store.put_docs([rec(d)])
    # re-crawl: now the page holds apple and kiwi
    await store.upsert(A, [(t, Posting(d, 2, 0, 12)) for t in ("apple", "kiwi")])
    removed = await store.withdraw(A, [d], keep_terms={d: {"apple", "kiwi"}})
    assert removed == 2
    assert await store.df(["apple", "pear", "plum", "kiwi"]) == {
        "apple": 1, "pear": 0, "plum": 0, "kiwi": 1,
    }
    assert await store.postings_for("apple", [d]) == [Posting(d, 2, 0, 12)]
    assert await store.missing_docs([d]) == []  # postings remain, so the record stays
    assert await store.origin_count(A) == 2


async def test_quota_refuses_and_counts_without_double_counting(tmp_path: Path) -> None:
    async with ShardStore(tmp_path / "q.db", quota_per_origin=5) as s:
        r = await s.upsert(A, [("t", Posting(did(i), 1, 0, 10)) for i in range(3)])
        assert (r.accepted, r.refused_quota) == (3, 0)
        # re-upserting the same three plus four new: the updates are free, two new fit
        batch = [("t", Posting(did(i), 2, 0, 10)) for i in range(7)]
        r = await s.upsert(A, batch)
        assert (r.accepted, r.refused_quota, r.created) == (5, 2, 2)
        assert await s.origin_count(A) == 5
        assert await s.df(["t"]) == {"t": 5}
        # at quota, updating what it holds is still accepted; anything new is refused
        r = await s.upsert(A, [("t", Posting(did(0), 9, 0, 10)), ("u", Posting(did(0), 1, 0, 10))])
        assert (r.accepted, r.refused_quota) == (1, 1)
        # other origins are unaffected
        r = await s.upsert(Bo, [("u", Posting(did(i), 1, 0, 10)) for i in range(5)])
        assert (r.accepted, r.refused_quota) == (5, 0)
        # a posting A holds is A's: B can neither take it over nor withdraw it
        await s.withdraw(Bo, [did(4)])
        r = await s.upsert(Bo, [("t", Posting(did(0), 1, 0, 10))])
        assert (r.accepted, r.refused_quota, r.refused_owner) == (0, 0, 1)
        assert await s.withdraw(Bo, [did(0)], only_terms={did(0): ["t"]}) == 0
        assert await s.postings_for("t", [did(0)]) == [Posting(did(0), 9, 0, 10)]
        assert (await s.origin_count(A), await s.origin_count(Bo)) == (5, 4)
        # the kept counts agree with the rows
        st = await s.stats()
        assert st["postings"] == 9 == sum(v["postings"] for v in st["origins"].values())


async def test_an_older_batch_or_withdrawal_replayed_changes_nothing(store: ShardStore) -> None:
    d = did(1)
    await store.upsert(A, [("t", Posting(d, 5, 0, 10))], signed_at=200.0)
    r = await store.upsert(A, [("t", Posting(d, 1, 0, 10))], signed_at=100.0)  # replayed old batch
    assert r.accepted == 0 and await store.postings_for("t", [d]) == [Posting(d, 5, 0, 10)]
    assert await store.withdraw(A, [d], signed_at=150.0) == 0  # a withdrawal older than the posting
    assert await store.withdraw(A, [d], signed_at=250.0) == 1


def posting(doc_id: str, tf: object = 1, flags: object = 0, length: object = 10) -> list[object]:
    return [doc_id, tf, flags, length]


@pytest.mark.parametrize(
    "bad",
    [
        ["x" * 65, posting(did(9))],
        ["", posting(did(9))],
        ["ok", posting("not-hex")],
        ["ok", posting(did(9).upper())],
        ["ok", posting(did(9), tf=-1)],
        ["ok", posting(did(9), flags=0x100)],
        ["ok", posting(did(9), length=-5)],
        ["ok", posting(did(9), tf=1.5)],
        ["ok", posting(did(9), tf=True)],
        ["ok", posting(did(9), tf="1")],
        ["ok", posting(did(9), length=10**400)],
        ["ok", [*posting(did(9)), 7]],
        [7, posting(did(9))],
        ["ok", {"doc_id": did(9)}],
    ],
)
async def test_invalid_batch_is_refused_whole_at_the_boundary(store: ShardStore, bad: object) -> None:
    """The store trusts typed values: a batch is decoded (and validated) whole where
    it enters the peer, so one bad entry means none of the batch reaches the store."""
    await store.upsert(A, [("apple", Posting(did(1), 1, 0, 10))])
    before = await store.stats()
    good = [["apple", posting(did(1), tf=9)], ["pear", posting(did(2))]]
    body = json.dumps({"origin": A, "postings": [*good, bad]}).encode()
    with pytest.raises(BadMessage, match=r"\$\.postings\[2\]|array` of at most length 4|not lowercase hex") as e:
        req = decode(body, PostingsRequest)
        await store.upsert(req.origin, [(x.term, x.posting) for x in req.postings])
    assert e.value.status == 400
    assert await store.stats() == before
    assert await store.postings_for("apple", [did(1)]) == [Posting(did(1), 1, 0, 10)]


def test_invalid_origin_records_and_withdrawals_are_refused() -> None:
    def refused(model: type, body: dict[str, object], where: str) -> None:
        with pytest.raises(BadMessage, match=where):
            decode(json.dumps(body).encode(), model)

    ok = [["a", posting(did(1))]]
    refused(PostingsRequest, {"origin": "", "postings": ok}, r"\$\.origin")
    good = {"doc_id": did(1), "url": "https://example.org/"}
    refused(DocsRequest, {"origin": A, "docs": [good, {**good, "url": "https://" + "h" * 3000}]}, r"\$\.docs\[1\]\.url")
    refused(DocsRequest, {"origin": A, "docs": [{**good, "crawled_at": 10**400}]}, r"\$\.docs\[0\]\.crawled_at")
    refused(WithdrawRequest, {"origin": A, "doc_ids": ["nope"]}, r"\$\.doc_ids\[0\]")
    refused(WithdrawRequest, {"origin": A, "doc_ids": [], "terms": {"nope": ["a"]}}, r"\$\.terms")
    # nested too deep to decode, even where an unknown field would be skipped
    deep = b'{"origin": "' + A.encode() + b'", "doc_ids": [], "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(BadMessage, match="nested"):
        decode(deep, WithdrawRequest)


async def test_expire_removes_stale_postings_and_orphan_records(tmp_path: Path) -> None:
    day = 86400.0
    now = 1_000_000_000.0
    async with ShardStore(tmp_path / "e.db", max_age=3 * day) as s:
        d_old, d_mixed, d_new = did("old"), did("mixed"), did("new")
        old = [("apple", Posting(d_old, 1, 0, 1)), ("apple", Posting(d_mixed, 1, 0, 1))]
        await s.upsert(A, old, ts=now - 4 * day)
        fresh = [("pear", Posting(d_mixed, 1, 0, 1)), ("pear", Posting(d_new, 1, 0, 1))]
        await s.upsert(Bo, fresh, ts=now - day)
        await s.put_docs([rec(d_old), rec(d_mixed), rec(d_new, origin=Bo)])
        assert await s.expire(now=now) == 2
        assert await s.df(["apple", "pear"]) == {"apple": 0, "pear": 2}
        assert await s.missing_docs([d_old, d_mixed, d_new]) == [d_old]
        st = await s.stats()
        assert st["postings"] == 2 and st["origins"].get(A, {}).get("postings", 0) == 0
        assert await s.origin_count(A) == 0
        assert await s.expire(now=now) == 0
        # a republish refreshes: nothing goes until max_age after the refresh
        await s.upsert(Bo, [("pear", Posting(d_new, 1, 0, 1))], ts=now + day)
        assert await s.expire(now=now + 3.5 * day) == 1  # only d_mixed's pear (stamped now - day)
        assert await s.df(["pear"]) == {"pear": 1}


async def test_reopen_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "shard.db"
    async with ShardStore(path) as s:
        await s.upsert(A, [("apple", Posting(did(1), 3, IN_TITLE, 40))])
        await s.put_docs([rec(did(1), language="en", crawled_at=12.5)])
    async with ShardStore(path) as s:
        assert await s.top("apple", 5) == [Posting(did(1), 3, IN_TITLE, 40)]
        doc = (await s.docs([did(1)]))[did(1)]
        assert (doc.language, doc.crawled_at, doc.origin) == ("en", 12.5, A)
        assert await s.origin_count(A) == 1
    with pytest.raises(RuntimeError):
        await s.df(["apple"])


async def test_all_postings_and_terms_page_through_everything(store: ShardStore) -> None:
    terms = [f"t{i:03d}" for i in range(30)]
    await store.upsert(A, [(t, Posting(did(i), 1, 0, 5)) for t in terms for i in range(3)])
    await store.upsert(Bo, [("zz", Posting(did(9), 1, 0, 5))])
    got = [x async for x in store.all_postings(batch=7)]
    assert len(got) == 91
    assert [(t, p.doc_id) for t, _, p in got] == sorted((t, p.doc_id) for t, _, p in got)
    by_b = [x async for x in store.all_postings(batch=4, origin=Bo)]
    assert by_b == [("zz", Bo, Posting(did(9), 1, 0, 5))]
    only = [t async for t, _, _ in store.all_postings(term_filter=lambda t: t.endswith("7"))]
    assert set(only) == {"t007", "t017", "t027"} and len(only) == 9
    page1 = await store.terms(limit=20)
    page2 = await store.terms(after=page1[-1][0], limit=20)
    assert [t for t, _ in page1 + page2] == [*terms, "zz"]
    assert dict(page1)["t000"] == 3


_WRITER = textwrap.dedent(
    """
    import asyncio, hashlib, sys, time
    sys.path.insert(0, sys.argv[2])
    from yasearch import shard
    from yasearch.shard import writes
    from yasearch.records import Posting

    PER_BATCH, HANG_IN = int(sys.argv[3]), int(sys.argv[4])
    real_impact, calls = writes.impact, 0

    def impact(p):
        # impact() runs inside the write transaction, once per row: halfway through
        # batch HANG_IN, say so and stall, so the parent's SIGKILL lands mid-transaction.
        global calls
        calls += 1
        if calls == HANG_IN * PER_BATCH + PER_BATCH // 2:
            print("MID", flush=True)
            time.sleep(60)
        return real_impact(p)

    writes.impact = impact

    async def main():
        s = await shard.ShardStore(sys.argv[1]).open()
        # a tiny page cache makes SQLite spill the open transaction's pages into the
        # WAL before COMMIT, so recovery has uncommitted frames to ignore
        await s._run(lambda c: c.execute("PRAGMA cache_size=8"))
        n = 0
        while True:
            # one marker term per batch: after the crash each marker has all rows or none
            batch = [
                (f"batch{n:05d}", Posting(hashlib.sha1(f"{n}/{i}".encode()).hexdigest(), 1, 0, 10))
                for i in range(PER_BATCH)
            ]
            await s.upsert("writer", batch)
            print(n, flush=True)
            n += 1

    asyncio.run(main())
    """
)


async def test_sigkill_mid_writes_leaves_only_whole_batches(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    per_batch, hang_in = 3000, 5
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WRITER, str(path), str(ROOT), str(per_batch), str(hang_in),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines = []
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
            assert line, "writer died early"
            if line == "MID":
                break
            lines.append(line)
        assert lines == [str(i) for i in range(hang_in)]
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts = dict(conn.execute("SELECT t.term, count(*) FROM postings p JOIN terms t ON t.id = p.term GROUP BY t.term"))
        # the committed batches are all there, whole; the one in flight left no row
        assert counts == {f"batch{i:05d}": per_batch for i in range(hang_in)}
        # and so are the per-term and per-batch counts committed with them
        assert dict(conn.execute("SELECT term, df FROM terms")) == counts
        assert sorted(n for (n,) in conn.execute("SELECT live FROM batches")) == [per_batch] * hang_in
        kept = conn.execute("SELECT postings FROM origins WHERE origin='writer'").fetchone()[0]
        assert kept == hang_in * per_batch  # quota counter committed with the rows
    finally:
        conn.close()

    # and the store opens and takes writes again
    async with ShardStore(path) as s:
        r = await s.upsert("writer", [("after", Posting(did(1), 1, 0, 1))])
        assert r.accepted == 1
        assert await s.origin_count("writer") == hang_in * per_batch + 1


def signed_batch(ident: Identity, entries: list[tuple[str, str, int]], at: float) -> PostingsRequest:
    return sign(
        PostingsRequest(
            origin=ident.hex, postings=[PostingEntry(t, WirePosting(d, tf, 0, 50)) for t, d, tf in entries], signed_at=at
        ),
        ident,
    )


async def kept_batches(store: ShardStore, terms: list[str]) -> dict[int, tuple[PostingsRequest, list[tuple[str, str]]]]:
    """What handoff would forward for ``terms``: each kept batch, decoded and checked as a receiver does."""
    out = {}
    for b, pairs in (await store.held_batches(terms)).items():
        body = await store.batch_body(b)
        assert body is not None
        out[b] = (decode(zlib.decompress(body), PostingsRequest), sorted(pairs))
    return out


async def test_a_signed_batch_is_kept_and_still_proves_what_is_left_of_it(store: ShardStore) -> None:
    """Handoff forwards the origin's signed batch: the store keeps it packed and gives
    back exactly what was signed, after some of its postings were replaced by a newer
    batch or withdrawn, and forgets it once nothing is held from it."""
    x = Identity.generate()
    now = time.time()
    d1, d2, d3 = did(1), did(2), did(3)
    first = signed_batch(x, [("apple", d1, 1), ("apple", d2, 2), ("pear", d1, 3), ("pear", d3, 1)], now - 60)
    await store.upsert(x.hex, [(e.term, e.posting) for e in first.postings], signed_at=first.signed_at, batch=first)
    again = await store.upsert(x.hex, [(e.term, e.posting) for e in first.postings], signed_at=first.signed_at, batch=first)
    assert again.accepted == 4 and again.created == 0  # the same batch twice: kept once
    second = signed_batch(x, [("apple", d1, 7)], now)
    as_sent = (hashlib.sha1(batch_body(second)).digest(), zlib.compress(batch_body(second)))  # the older call form
    await store.upsert(x.hex, [(e.term, e.posting) for e in second.postings], signed_at=second.signed_at, batch=as_sent)
    assert await store.withdraw(x.hex, [d3]) == 1

    kept = await kept_batches(store, ["apple", "pear"])
    assert len(kept) == 2
    by_sig = {req.sig: (req, pairs) for req, pairs in kept.values()}
    req, pairs = by_sig[first.sig]
    assert req.postings == first.postings and req.signed_at == first.signed_at  # every entry, as signed
    assert pairs == [("apple", d2), ("pear", d1)]  # what is still held from it
    req, pairs = by_sig[second.sig]
    assert req.postings == second.postings and pairs == [("apple", d1)]
    # a batch nothing is held from any more is gone
    await store.withdraw(x.hex, [d1, d2])
    assert await store.held_batches(["apple", "pear"]) == {}
    assert await store.stats() == {"postings": 0, "terms": 0, "docs": 0, "origins": {}, "quota_per_origin": store.quota_per_origin}


async def test_postings_without_a_signed_batch_are_not_handed_on(store: ShardStore) -> None:
    await store.upsert(A, [("apple", Posting(did(1), 1, 0, 10))])
    assert await store.held_batches(["apple"]) == {}


_V2_SCHEMA = """
CREATE TABLE postings (term TEXT NOT NULL, doc_id TEXT NOT NULL, origin TEXT NOT NULL, tf INTEGER NOT NULL,
    flags INTEGER NOT NULL, length INTEGER NOT NULL, impact REAL NOT NULL, updated REAL NOT NULL,
    signed REAL NOT NULL DEFAULT 0, batch INTEGER, PRIMARY KEY (term, doc_id)) WITHOUT ROWID;
CREATE INDEX postings_impact ON postings(term, impact DESC, doc_id);
CREATE TABLE docs (doc_id TEXT PRIMARY KEY, url TEXT NOT NULL, title TEXT NOT NULL, description TEXT NOT NULL,
    language TEXT NOT NULL, length INTEGER NOT NULL, crawled_at REAL NOT NULL, origin TEXT NOT NULL,
    host TEXT NOT NULL, updated REAL NOT NULL, pubkey TEXT NOT NULL DEFAULT '', sig TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
CREATE TABLE origins (origin TEXT PRIMARY KEY, postings INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE batches (id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, body BLOB NOT NULL);
CREATE TABLE origin_sources (origin TEXT PRIMARY KEY, source TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE sources (source TEXT PRIMARY KEY, postings INTEGER NOT NULL) WITHOUT ROWID;
"""


async def test_a_store_of_the_older_schema_starts_empty_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A peer upgraded in place: the text-keyed store (schema 2) is not converted; it
    starts empty and says so once, and republish/handoff fill it again."""
    path = tmp_path / "shard.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(_V2_SCHEMA)
        conn.execute(
            "INSERT INTO postings VALUES ('apple', ?, ?, 1, 0, 10, 1.0, 1.0, 1.0, NULL)", (did(1), A)
        )
        conn.execute("INSERT INTO origins VALUES (?, 1)", (A,))
    conn.close()
    with caplog.at_level("WARNING", logger="yasearch.shard.schema"):
        async with ShardStore(path) as s:
            assert await s.df(["apple"]) == {"apple": 0}
            assert (await s.totals())["postings"] == 0
            assert (await s.upsert(A, [("apple", Posting(did(1), 1, 0, 10))])).accepted == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "older" in warnings[0] and "empty" in warnings[0]
    caplog.clear()
    async with ShardStore(path) as s:  # the new store is kept, without a warning
        assert await s.df(["apple"]) == {"apple": 1}
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


async def test_a_store_answers_before_open(tmp_path: Path) -> None:
    """The HTTP side may ask for status before the peer started and opened its store."""
    s = ShardStore(tmp_path / "shard.db")
    try:
        assert await s.totals() == {"postings": 0, "docs": 0}
        assert await s.df(["apple"]) == {"apple": 0}
    finally:
        await s.close()


async def test_a_store_written_by_a_newer_schema_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "shard.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
    conn.close()
    s = ShardStore(path)
    with pytest.raises(RuntimeError, match="newer yasearch"):
        await s.open()
    await s.close()
