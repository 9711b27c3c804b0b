"""The scored lookup a replica answers for the distributed top-k (protocol 2, issue 9):
postings in the exact order of their BM25 contribution at the asker's average length,
a bound for the rest, deeper batches, records of the candidates that reach the page;
its fields validated where a message enters; and what a lying replica can make an asker do.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from peerutil import assert_json_error
from yasearch.netfetch import DEEPER_BATCH, MAX_CANDIDATES, MAX_ROUNDS
from yasearch.netsearch import GlobalSearch
from yasearch.network import Contact
from yasearch.query import parse_query
from yasearch.ranking import DEFAULT_WEIGHTS, K1, contribution
from yasearch.records import Posting
from yasearch.wire import LookupReply, LookupRequest, WirePosting

ORIGIN = "ab" * 20


def doc(i: int) -> str:
    return hashlib.sha1(f"d{i}".encode()).hexdigest()


def tf_part(p: Posting | WirePosting, avg: float) -> float:
    return contribution(1.0, p.tf + DEFAULT_WEIGHTS.boost(p.flags), p.length, avg)


@pytest.fixture
async def held(peer):
    """A peer holding 300 postings of "walrus" with varied tf, flags and lengths."""
    rng = random.Random(5)
    batch = [("walrus", Posting(doc_id=doc(i), tf=rng.randint(1, 9), flags=rng.choice([0, 0, 1, 2, 8, 9]),
                                length=rng.randint(20, 4000))) for i in range(300)]
    await peer.shard.upsert(ORIGIN, batch)
    return peer, {p.doc_id: p for _t, p in batch}


async def test_postings_come_in_exact_contribution_order_with_the_bound_of_the_rest(held) -> None:
    peer, postings = held
    for avg in (0.0, 150.0, 2500.0):  # the order depends on the asker's average length
        want = sorted(postings.values(), key=lambda p: (-tf_part(p, avg), p.doc_id))
        got: list[WirePosting] = []
        while len(got) < len(want):
            reply = await peer.local.lookup(LookupRequest(terms=["walrus"], m=70, avg=avg, skip=len(got)))
            batch = reply.postings["walrus"]
            got += batch
            rest = want[len(got):]
            assert reply.df == {"walrus": 300}
            assert reply.bound["walrus"] == pytest.approx(tf_part(rest[0], avg) if rest else 0.0, rel=1e-9)
        assert [p.doc_id for p in got] == [p.doc_id for p in want]


async def test_a_floor_stops_a_deeper_batch(held) -> None:
    peer, postings = held
    avg = 600.0
    parts = sorted((tf_part(p, avg) for p in postings.values()), reverse=True)
    floor = parts[120]
    reply = await peer.local.lookup(LookupRequest(terms=["walrus"], m=2000, avg=avg, skip=50, floor=floor))
    sent = [tf_part(p, avg) for p in reply.postings["walrus"]]
    assert len(sent) == len([x for x in parts[50:] if x >= floor]) and min(sent) >= floor
    assert reply.bound["walrus"] < floor


async def test_records_of_candidates_reaching_the_page(held) -> None:
    """``record_at``: the replica adds its term's contribution to the asker's partial
    score and names the best ``records_top`` that reach the threshold."""
    peer, postings = held
    ids = sorted(postings)[:50]
    partial = [float(i % 5) for i in range(50)]
    idf, avg = 2.0, 500.0
    score = {d: partial[i] + contribution(idf, postings[d].tf + DEFAULT_WEIGHTS.boost(postings[d].flags), postings[d].length, avg)
             for i, d in enumerate(ids)}
    at = sorted(score.values(), reverse=True)[20]
    reply = await peer.local.lookup(LookupRequest(terms=["walrus"], m=0, candidates=ids, avg=avg, idf=idf,
                                                  partial=partial, record_at=at, records_top=8))
    assert len(reply.postings["walrus"]) == 50
    best = sorted(ids, key=lambda d: (-score[d], d))[:8]
    # no records were published for these postings: the replica names none, but it chose these
    from yasearch.shard.service import reaching

    assert reaching(LookupRequest(terms=["walrus"], m=0, candidates=ids, avg=avg, idf=idf, partial=partial,
                                  record_at=at, records_top=8), reply.postings) == best


@pytest.mark.parametrize(
    "body, status",
    [
        (b'{"terms": ["apple"], "avg": -1}', 400),
        (b'{"terms": ["apple"], "avg": 1e12}', 400),
        (b'{"terms": ["apple"], "floor": 4.0}', 400),
        (b'{"terms": ["apple"], "skip": 1000001}', 400),
        (b'{"terms": ["apple"], "idf": 101}', 400),
        (b'{"terms": ["apple"], "records_top": 1001}', 400),
        (b'{"terms": ["apple"], "record_ids": ["zz"]}', 400),
        (b'{"terms": ["apple"], "record_ids": [' + b",".join([b'"' + b"b" * 40 + b'"'] * 1001) + b"]}", 413),
        (b'{"terms": ["apple"], "partial": [' + b",".join([b"1.0"] * 5001) + b"]}", 413),
        (b'{"terms": ["apple"], "partial": [-1.0]}', 400),
    ],
)
async def test_scored_lookup_fields_are_checked_where_they_enter(peer, http, body: bytes, status: int) -> None:
    async with http.post(peer.url + "/p2p/v1/lookup", data=body) as r:
        await assert_json_error(r, status)


def test_a_bound_no_tf_part_reaches_is_a_bad_reply() -> None:
    from yasearch.wire import BadMessage, decode

    assert 3.0 > K1 + 1.0
    with pytest.raises(BadMessage):
        decode(b'{"df": {"a": 1}, "postings": {"a": []}, "bound": {"a": 3.5}}', LookupReply)


async def test_a_lying_replica_can_make_the_asker_fetch_only_so_much() -> None:
    """A replica of "liar" answers every sorted read with a fresh full batch of
    made-up top documents and the largest bound the wire allows: the asker's rounds,
    candidates and deeper reads stay capped, and the query ends."""
    honest, liar = Contact(b"\x01" * 20, "http://honest"), Contact(b"\x02" * 20, "http://liar")
    calls: list[tuple[str, LookupRequest]] = []
    fresh = iter(range(10**9))

    class Resolver:
        async def responsible(self, term: str, *, skip_failed: bool = True) -> list[Contact]:
            return [liar if term == "liar" else honest]

        def mark_dead(self, c: Contact) -> None:
            pass

    class Client:
        async def lookup(self, c: Contact, req: LookupRequest) -> LookupReply:
            t = req.terms[0]
            calls.append((t, req))
            cands = req.candidates if isinstance(req.candidates, list) else None
            if t == "liar":
                if cands is not None:
                    return LookupReply(df={t: 10**6}, postings={t: [WirePosting(d, 50, 1, 60) for d in cands]})
                made_up = [WirePosting(doc(next(fresh)), 50, 1, 60) for _ in range(req.m)]
                return LookupReply(df={t: 10**6}, postings={t: made_up}, bound={t: 3.0})
            if cands is not None:
                return LookupReply(df={t: 10**6}, postings={t: [WirePosting(d, 1, 0, 500) for d in cands[::2]]})
            top = [WirePosting(doc(10**8 + i), 3, 0, 500) for i in range(req.m)]
            return LookupReply(df={t: 10**6}, postings={t: top}, bound={t: 3.0})

    search = GlobalSearch("00" * 20, Resolver(), Client(), None, url_of=lambda _: None,  # type: ignore[arg-type]
                          network_totals=lambda: (2 * 10**6, 10**9), hedge_after=5.0, budget=60.0)
    search._local_candidates = _no_local  # type: ignore[method-assign]
    tally = search_tally()
    await search._collect(parse_query("honest liar"), tally, {}, 40)
    sorted_reads = [r for t, r in calls if t == "liar" and not isinstance(r.candidates, list)]
    assert len(sorted_reads) <= 1 + MAX_ROUNDS
    assert all(r.m <= DEEPER_BATCH for r in sorted_reads)
    asked = sum(len(r.candidates) for _t, r in calls if isinstance(r.candidates, list))
    assert asked <= (1 + MAX_ROUNDS) * 2 * MAX_CANDIDATES
    assert len(calls) <= 2 * (2 + 2 * MAX_ROUNDS)
    assert tally.rounds <= 2 + MAX_ROUNDS


async def _no_local(parsed):
    return {"postings": {}, "hits": {}}


def search_tally():
    from yasearch.netfetch import Tally

    return Tally()


def test_the_sql_field_boost_is_the_ranking_boost_for_every_flag_value() -> None:
    import sqlite3

    from yasearch.ranking import DEFAULT_WEIGHTS
    from yasearch.shard.scored import _WTF

    conn = sqlite3.connect(":memory:")
    for flags in range(256):
        (w,) = conn.execute(f"SELECT {_WTF} FROM (SELECT 3 AS tf, ? AS flags)", (flags,)).fetchone()
        assert w == pytest.approx(3 + DEFAULT_WEIGHTS.boost(flags)), flags
