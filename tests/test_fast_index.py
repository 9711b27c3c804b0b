"""The writer's fast analysis path indexes exactly what Whoosh's analyzer chain would."""

from __future__ import annotations

import pickle
import random

from whoosh.fields import TEXT

from yasearch.index import fastpath, make_schema
from yasearch.ranking import document_length
from yasearch.records import Document

TRICKY = [
    "",
    "   ",
    "the and of a",  # only stopwords
    "The quick brown fox jumps over the lazy dog; the dog sleeps.",
    "Version 3.11.7 of Python, e.g. file.tar.gz and foo..bar and a.b. and ...",
    "x y z 1 2 3 ab cd",  # minsize
    "a" * 64 + " " + "b" * 65 + " ok",  # maxsize
    "İstanbul ÇAĞLAYAN straße ΣΊΣΥΦΟΣ naïve café Ǆemal",
    "under_score snake_case CamelCase wild*card **stars** 10*20",
    "日本語のテキスト 中文 한국어 العربية",
    "running runs ran runner easily fairly",
    "tab\tand\nnewline\r\nand\u00a0nbsp\u2003em",
    "\x00nul\x00bytes",
    "dump and json.dumps then dump_it, dumps and json_dump.json",  # parts also whole words, before and after
]


def _whoosh(field: TEXT, value: str) -> list[tuple[bytes, int, float, bytes]]:
    return sorted(TEXT.index(field, value))


def _fast(field: TEXT, value: str) -> list[tuple[bytes, int, float, bytes]]:
    fast = fastpath.fast_schema(make_schema())
    name = next(n for n, f in make_schema().items() if f == field and isinstance(f, TEXT))
    fastpath.forget_analyzed()
    return sorted(fast[name].index(value))


def _corpus() -> list[str]:
    rng = random.Random(7)
    words = [w for s in TRICKY for w in s.split()] + "alpha beta gamma delta the of search engines".split()
    return TRICKY + [" ".join(rng.choice(words) for _ in range(rng.randint(1, 200))) for _ in range(50)]


def test_fast_path_is_enabled_for_the_shipped_analyzer() -> None:
    assert fastpath.fast_analysis_ok()
    fast = fastpath.fast_schema(make_schema())
    assert isinstance(fast["body"], fastpath.FastText)
    assert isinstance(fast["url_terms"], fastpath.FastText)  # Frequency format
    assert not isinstance(fast["doc_id"], fastpath.FastText)


def test_fast_index_equals_whoosh_positions_and_frequency() -> None:
    schema = make_schema()
    fast = fastpath.fast_schema(schema)
    for name in ("body", "url_terms"):
        for text in _corpus():
            fastpath.forget_analyzed()
            assert sorted(fast[name].index(text)) == sorted(TEXT.index(schema[name], text)), (name, text)


def test_document_length_matches_ranking() -> None:
    for text in _corpus():
        doc = Document(doc_id="x", url="http://h/", host="h", title=text[:30], headings=text[5:60],
                       body=text, description=text[::-1])
        fastpath.forget_analyzed()
        assert fastpath.document_length(doc) == document_length(doc)


def test_fast_schema_pickles_as_plain_text() -> None:
    fast = fastpath.fast_schema(make_schema())
    blob = pickle.dumps(fast, 2)
    assert b"_FastText" not in blob
    back = pickle.loads(blob)
    assert type(back["body"]) is TEXT
    ref = make_schema()
    assert back.names() == ref.names()
    for name in ref.names():  # (Whoosh's ID fields never compare equal, so compare the TEXT ones)
        assert type(back[name]) is type(ref[name])
        if type(ref[name]) is TEXT:
            assert back[name] == ref[name] and back[name].analyzer == ref[name].analyzer


# -- reads: block-wise posting reads and set-based boolean queries ------------------


async def test_block_reads_match_whoosh_matchers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from yasearch.index import LocalIndex, POSTING_FIELDS
    from yasearch.query import parse_query
    from yasearch.search import build_query

    rng = random.Random(3)
    vocab = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda", "sigma"]

    def doc(i: int) -> Document:
        words = [rng.choice(vocab[: 3 + i % 7]) for _ in range(rng.randint(5, 60))]
        url = f"http://h{i % 3}.example/p{i}"
        return Document(doc_id=f"{i:040x}", url=url, host=f"h{i % 3}.example", title=" ".join(words[:3]),
                        headings=" ".join(words[3:6]), body=" ".join(words), description=words[-1])

    ix = LocalIndex(tmp_path / "ix", commit_interval=1000, commit_batch=10_000)
    await ix.open()
    try:
        for i in range(300):  # > 128 postings per term: several posting blocks
            await ix.add(doc(i))
        await ix.flush()
        for i in range(300, 420):  # a second segment
            await ix.add(doc(i))
        await ix.flush()
        for i in range(0, 420, 7):  # deletions in both segments
            await ix.delete(f"{i:040x}")
        await ix.flush()
        await ix.add(doc(1000))  # a tiny third segment (inlined single postings)
        await ix.flush()

        def check(view) -> None:  # type: ignore[no-untyped-def]
            assert len(view._leaves) >= 2
            for term in vocab + ["nosuchterm", "h1"]:
                for field, _flag in POSTING_FIELDS:
                    m = view._matcher(field, term)
                    ref = []
                    while m is not None and m.is_active():
                        ref.append((m.id(), m.weight()))
                        m.next()
                    assert list(view._pairs(field, term)) == ref, (field, term)
            queries = ["alpha", "alpha beta", "gamma zeta kappa", "sigma", "nosuchterm alpha", "site:h1.example beta"]
            for q in queries:
                wq = build_query(parse_query(q))
                assert view.docnums(wq) == set(view.searcher.docs_for_query(wq)), q
            everything = view.postings(vocab, None)
            for term in vocab:
                full = {p.doc_id: p for p in everything[term]}
                for restrict in ({1, 2, 3}, set(range(0, 400, 2))):
                    got = view.term_postings(term, restrict)
                    want = sorted((full[view.doc_id_of(d)] for d in restrict if view.doc_id_of(d) in full),
                                  key=lambda p: p.doc_id)
                    assert got == want, (term, len(restrict))

        await ix.run_read(check)
    finally:
        await ix.close()
