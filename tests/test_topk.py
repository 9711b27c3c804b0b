"""Top-k evaluation (yasearch.topk) returns exactly what scoring every match returns.

Random indexes (several segments, replaced and deleted documents, identical
documents whose scores tie) and random queries: the page search_local returns
is, document for document and score for score, the same page as ranking every
match with ranking.bm25_scores over the index's postings. Facets cost nothing
unless asked for, and then count the matches from the per-segment arrays.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from yasearch.analysis import doc_id
from yasearch.index import LocalIndex
from yasearch.query import parse_query
from yasearch.ranking import bm25_scores, rank
from yasearch.records import Document
from yasearch.search import build_query, search_local, top_matches
from yasearch.topk import exhaustive_top

WORDS = ("apple banana cherry damson elder fig grape hazel iris juniper kiwi lemon mango nectar olive "
         "peach quince rowan sloe tamarind").split()


def _text(rng: random.Random, n: int) -> str:
    # Zipf-like: early words are common, late ones rare
    return " ".join(WORDS[min(len(WORDS) - 1, int(rng.paretovariate(1.2)) - 1)] for _ in range(n))


def random_doc(rng: random.Random, i: int, host: str) -> Document:
    url = f"http://{host}/{rng.choice(WORDS)}/{i}.html"
    return Document(doc_id=doc_id(url), url=url, host=host, title=_text(rng, rng.randint(0, 4)),
                    headings=_text(rng, rng.randint(0, 6)), body=_text(rng, rng.randint(1, 80)),
                    description=_text(rng, rng.randint(0, 10)), language=rng.choice(["en", "de", "en-gb", ""]))


@pytest.fixture
async def index(make_index) -> LocalIndex:
    return await make_index(commit_interval=60, commit_batch=10_000, fsync=False)


async def fill_randomly(ix: LocalIndex, seed: int) -> list[Document]:
    rng = random.Random(seed)
    docs: list[Document] = []
    for batch in range(4):  # one segment per flush
        for i in range(rng.randint(30, 90)):
            doc = random_doc(rng, batch * 1000 + i, rng.choice(["a.example", "b.example:8080"]))
            docs.append(doc)
            await ix.add(doc)
            if i % 7 == 0:  # an identical twin under another URL: tied scores
                twin = Document(**{**doc.__dict__, "url": doc.url + "?twin", "doc_id": doc_id(doc.url + "?twin")})
                docs.append(twin)
                await ix.add(twin)
        await ix.flush()
    for doc in rng.sample(docs, 15):  # deletions and replacements in older segments
        if rng.random() < 0.5:
            await ix.delete(doc.doc_id)
        else:
            await ix.add(Document(**{**doc.__dict__, "body": _text(rng, 20)}))
    await ix.flush()
    return docs


async def reference(ix: LocalIndex, q: str, limit: int, offset: int) -> tuple[int, list[tuple[str, float]]]:
    """Every match scored: Whoosh's candidates, their Posting records, bm25_scores, rank."""
    parsed = parse_query(q)
    terms = list(dict.fromkeys(parsed.terms))

    def run(view):
        docnums = view.docnums(build_query(parsed))
        return len(docnums), {view.doc_id_of(d) for d in docnums}

    total, ids = await ix.run_read(run)
    postings = await ix.postings(terms, ids)
    stats = await ix.collection_stats(terms)
    return total, rank(bm25_scores(postings, stats))[offset : offset + limit]


async def engine(ix: LocalIndex, q: str, limit: int, offset: int):
    """The top-k engine under search_local (which then applies lead proximity, duplicates
    and relaxed AND on top): (total, estimated, [(doc_id, score)] of the page)."""
    parsed = parse_query(q)
    total, estimated, top = await ix.run_read(
        lambda v: top_matches(v, parsed, build_query(parsed), offset + limit, False))
    return total, estimated, [(d, score) for _n, d, score in top[offset : offset + limit]]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_top_k_equals_exhaustive_scoring_on_random_indexes(index, seed, monkeypatch):
    from yasearch import topk

    paths = {"dense": 0, "blocks": 0}  # both ways of scoring a segment are checked

    def counted(name, key):
        real = getattr(topk, name)

        def wrapper(*a, **kw):
            paths[key] += 1
            return real(*a, **kw)
        monkeypatch.setattr(topk, name, wrapper)

    counted("_dense_segment", "dense")
    counted("_bounded_blocks", "blocks")
    await fill_randomly(index, seed)
    rng = random.Random(seed * 100)
    queries = [" ".join(rng.sample(WORDS, rng.randint(1, 3))) for _ in range(40)]
    queries += [f"{rng.choice(WORDS[:5])} -{rng.choice(WORDS[5:10])}" for _ in range(5)]
    queries += [f"{rng.choice(WORDS[:5])} site:b.example" for _ in range(3)]
    queries += [f"{rng.choice(WORDS[:5])} lang:en" for _ in range(3)]
    queries += [f'"{WORDS[0]} {WORDS[1]}"', WORDS[0], f"{WORDS[0]} {WORDS[1]}"]
    matched = estimated = 0
    for q in queries:
        for limit, offset in ((10, 0), (5, 3), (200, 0)):
            want_total, want = await reference(index, q, limit, offset)
            total, is_estimate, got = await engine(index, q, limit, offset)
            assert got == want, (q, limit, offset)
            if is_estimate:  # only a multi-word query that skipped blocks estimates
                assert len(parse_query(q).terms) > 1 and total >= len(got)
                estimated += 1
            else:
                assert total == want_total, q
        matched += want_total > 0
    assert matched > len(queries) // 2  # the queries did find things
    assert paths["dense"] > 10 and paths["blocks"] > 10, paths


async def test_ties_are_broken_by_doc_id_like_rank(index):
    # twenty identical documents: one score, so the page is the doc_ids in order
    docs = [Document(doc_id=doc_id(f"http://t.example/{i}"), url=f"http://t.example/{i}", host="t.example",
                     title="same", body="tied words here") for i in range(20)]
    for d in docs:
        await index.add(d)
    await index.flush()
    got = await search_local(index, parse_query("tied"), limit=5, offset=2)
    assert [h.doc_id for h in got.results] == sorted(d.doc_id for d in docs)[2:7]
    assert len({h.score for h in got.results}) == 1 and got.total == 20


async def test_exhaustive_top_is_the_reference(index):
    await fill_randomly(index, 7)
    parsed = parse_query(f"{WORDS[0]} {WORDS[2]}")
    terms = list(dict.fromkeys(parsed.terms))
    _total, want = await reference(index, parsed.raw, 10, 0)
    assert await index.run_read(lambda v: exhaustive_top(v, build_query(parsed), terms, 10)) == want


async def test_facets_only_when_asked_and_counted_from_the_matches(index):
    docs = await fill_randomly(index, 4)
    q = parse_query(WORDS[0])
    plain = await search_local(index, q)
    assert plain.facets == {"host": [], "language": []}
    with_facets = await search_local(index, q, facets=True)
    live = {}
    for d in docs:  # the last version of each document, if it is still in the index
        live[d.doc_id] = d
    present = [d for i, d in live.items() if await index.has(i)]
    hosts: dict[str, int] = {}
    for d in present:
        if WORDS[0] in (d.title + " " + d.headings + " " + d.body + " " + d.description + " " + d.url).split() \
                or WORDS[0] in d.url:
            h = d.host.split(":")[0]
            hosts[h] = hosts.get(h, 0) + 1
    assert sum(n for _h, n in with_facets.facets["host"]) == with_facets.total
    assert dict((h, n) for h, n in with_facets.facets["host"]) == hosts
    # the same counts again (cached per query until the next commit), and a copy each time
    again = await search_local(index, q, facets=True, limit=3, offset=2)
    assert again.facets == with_facets.facets
    again.facets["host"].clear()
    assert (await search_local(index, q, facets=True)).facets == with_facets.facets


async def test_writer_process_indexes_like_the_writer_thread(tmp_path):
    """The same documents through a writer process: the same searches, replacements and deletions."""
    results = []
    for writer_process in (False, True):
        ix = LocalIndex(tmp_path / f"ix-{writer_process}", commit_interval=60, commit_batch=40, fsync=True,
                        writer_process=writer_process)
        await ix.open()
        try:
            await fill_randomly(ix, 11)
            removed = await ix.delete_host("a.example")
            pages = [(q, await search_local(ix, parse_query(q), limit=50)) for q in WORDS[:6]]
            results.append((ix.doc_count(), removed,
                            [(q, r.total, [(h.doc_id, h.score) for h in r.results]) for q, r in pages]))
        finally:
            await ix.close()
    assert results[0] == results[1]
    # reopened: the process's commits are on disk
    ix = LocalIndex(tmp_path / "ix-True")
    await ix.open()
    try:
        assert ix.doc_count() == results[1][0] and ix.doc_count() > 0
    finally:
        await ix.close()


async def test_totals_are_exact_up_to_a_bound_then_estimated_and_flagged(index, monkeypatch):
    from yasearch import topk

    await fill_randomly(index, 5)
    queries = [f"{a} {b}" for a in WORDS[:4] for b in WORDS[:4] if a < b]
    exact = [await engine(index, q, 3, 0) for q in queries]
    assert not any(is_estimate for _t, is_estimate, _r in exact)
    monkeypatch.setattr(topk, "EXACT_TOTAL_POSTINGS", 0)
    estimated = [await engine(index, q, 3, 0) for q in queries]
    assert any(is_estimate for _t, is_estimate, _r in estimated)  # some skipped blocks, so an estimate
    for (et, e_est, er), (xt, _x_est, xr) in zip(estimated, exact):
        assert er == xr
        assert et == xt or (e_est and et >= len(er))


@pytest.mark.parametrize("layout", ["v1", "no records"])
async def test_older_block_index_layouts_give_the_same_top_k(index, layout, monkeypatch):
    """Indexes written before the block index's version 2 (no Pareto pairs, no dense
    sections) or without records are still read, and still give exhaustive scoring's page."""
    from yasearch.index import impact, segwriter

    if layout == "v1":  # the five block arrays only
        encode = segwriter.encode_blocks
        monkeypatch.setattr(segwriter, "encode_blocks", lambda *a: encode(*a[:5]))
    else:  # an empty block index: every term's block headers are read one by one
        write = segwriter.write_terms
        monkeypatch.setattr(segwriter, "write_terms", lambda fw, schema, items, blocks=None, lengths=():
                            write(fw, schema, items))
    await fill_randomly(index, 9)
    extras = await index.run_read(lambda v: [impact.decode_extra(raw) for leaf, _o in v.leaves
                                             if (ix := v.block_index(leaf)) is not None
                                             for _k, raw in ix.items()])
    assert all(e == (None, None) for e in extras) and (layout != "v1" or extras)
    rng = random.Random(9)
    for q in [" ".join(rng.sample(WORDS, rng.randint(1, 3))) for _ in range(25)]:
        want_total, want = await reference(index, q, 10, 0)
        total, is_estimate, got = await engine(index, q, 10, 0)
        assert got == want, q
        assert is_estimate or total == want_total
