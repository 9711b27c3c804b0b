"""The fast segment writer writes the same index as Whoosh's own writer, merges included."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from whoosh import index as whoosh_index
from whoosh.writing import OPTIMIZE, SegmentWriter

from yasearch.index.codec import fast_codec
from yasearch.index.fastpath import fast_schema, forget_analyzed
from yasearch.index.impact import (DENSE_SHARE, MAX_PAIRS, dense_section, open_block_index, term_blocks,
                                   term_postings)
from yasearch.index.schema import IMPACT_FIELD, make_schema
from yasearch.index.segwriter import FastSegmentWriter
from yasearch.index.writer import WriteOp, WriterState, whoosh_fields
from yasearch.records import Document

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda search engine index "
         "posting block merge segment parser_state CamelCase http_server").split()


def _doc(rng: random.Random, n: int) -> Document:
    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, k)))

    return Document(doc_id=f"d{n:03d}", url=f"http://h{n % 3}.example/p/{n}", host=f"h{n % 3}.example",
                    title=text(6), headings=text(10), body=text(300), description=text(20), language="en",
                    crawled_at=float(n))


def _ops(seed: int) -> list[list[tuple[str, Any]]]:
    """Commits of adds (some replacing earlier documents) and deletes."""
    rng = random.Random(seed)
    commits = []
    for c in range(14):
        ops: list[tuple[str, Any]] = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.2 and c:
                ops.append(("delete", f"d{rng.randrange(60):03d}"))
            else:
                ops.append(("add", _doc(rng, rng.randrange(60))))
        commits.append(ops)
    return commits


def _build(directory: Path, writer_class: Any, commits: list[list[tuple[str, Any]]]) -> Any:
    ix = whoosh_index.create_in(str(directory), make_schema())
    for i, ops in enumerate(commits):
        w = writer_class(ix, codec=fast_codec())
        w.schema = fast_schema(w.schema)
        added: set[str] = set()
        for kind, value in ops:
            if kind == "add":
                if value.doc_id in added:  # one version per writer, as WriterState does
                    continue
                added.add(value.doc_id)
                w.update_document(**whoosh_fields(value))
                forget_analyzed()
            else:
                w.delete_by_term("doc_id", value)
        w.commit(**({"mergetype": OPTIMIZE} if i == len(commits) - 1 and directory.name.endswith("opt") else {}))
    return ix


def _contents(ix: Any) -> tuple[list[int], list[Any], list[Any]]:
    with ix.reader() as r:
        segments = [leaf.doc_count_all() for leaf, _ in r.leaf_readers()]
        postings = []
        for fieldname, btext in r.all_terms():
            info = r.term_info(fieldname, btext)
            postings.append((fieldname, btext, info.doc_frequency(), info.weight(), info.max_weight(),
                             info.min_id(), info.max_id()))
            m = r.postings(fieldname, btext)
            while m.is_active():
                postings.append((fieldname, btext, m.id(), m.weight(), m.value()))
                m.next()
        stored = [(d, r.stored_fields(d)) for d in r.all_doc_ids()]
        return segments, postings, stored


def test_same_postings_stored_fields_and_segments_as_whoosh(tmp_path: Path) -> None:
    for suffix in ("merge", "opt"):
        commits = _ops(11)
        (tmp_path / f"fast-{suffix}").mkdir()
        (tmp_path / f"whoosh-{suffix}").mkdir()
        fast = _contents(_build(tmp_path / f"fast-{suffix}", FastSegmentWriter, commits))
        ref = _contents(_build(tmp_path / f"whoosh-{suffix}", SegmentWriter, commits))
        assert fast[0] == ref[0]
        assert len(ref[0]) < len(commits)  # segments were merged along the way
        assert fast[1] == ref[1]
        assert fast[2] == ref[2]
        assert len(ref[1]) > 1000


def test_writer_commits_early_when_its_postings_outgrow_limitmb(tmp_path: Path) -> None:
    rng = random.Random(3)
    ix = whoosh_index.create_in(str(tmp_path), make_schema())
    docs = [Document(doc_id=f"d{n}", url=f"http://h.example/{n}", host="h.example",
                     body=" ".join(f"w{rng.randrange(10**6)}" for _ in range(1000))) for n in range(60)]
    big = WriterState(ix, limitmb=1, commit_batch=500, on_durable=lambda: None)
    out = big.apply([WriteOp("add", doc=d) for d in docs] + [WriteOp("flush")])
    assert len(out.commits) > 1
    assert sum(len(c) for c in out.commits) == 60
    assert ix.doc_count() == 60


def test_block_index_holds_each_impact_blocks_header_and_shortest_document(tmp_path: Path) -> None:
    rng = random.Random(5)
    commits = [[("add", _doc(rng, n)) for n in range(300)], [("add", _doc(rng, n)) for n in range(300, 340)],
               [("delete", f"d{n:03d}") for n in range(300, 340, 7)]]
    ix = _build(tmp_path, FastSegmentWriter, commits)
    checked = dense_terms = 0
    with ix.reader() as r:
        for leaf, offset in r.leaf_readers():
            index = open_block_index(leaf)
            assert index is not None
            lengths = leaf.column_reader("length")
            for _field, btext in leaf.all_terms():
                if _field != IMPACT_FIELD:
                    continue
                term = btext.decode("utf-8")
                fast = term_blocks(leaf, offset, term, index)
                slow = term_blocks(leaf, offset, term)
                assert [(b.first, b.last, b.count, b.max_wtf) for b in fast] == \
                       [(b.first, b.last, b.count, b.max_wtf) for b in slow]
                for b, s in zip(fast, slow):
                    assert b.load() == s.load()
                    live = [int(lengths[d - offset]) for d in b.load()]
                    assert all(b.min_len <= n for n in live)
                    # every posting is dominated by one of the block's pairs (at most MAX_PAIRS)
                    assert len(b.best()) <= MAX_PAIRS
                    assert all(any(w <= pw and int(lengths[d - offset]) >= pn for pw, pn in b.best())
                               for d, w in b.load().items())
                    if not leaf.has_deletions() and len(fast) > 1:  # one block: no record, the header
                        assert b.min_len == min(live)
                        assert b.pairs is not None and max(w for w, _n in b.pairs) == b.max_wtf
                        checked += 1
                _blocks, dense = term_postings(leaf, offset, term, index)
                assert dense_section(index, term) == dense  # the short way to the same bytes
                n_docs = leaf.doc_count_all()
                df = sum(1 for bl in fast for _d in bl.load())
                if df * DENSE_SHARE >= n_docs and not leaf.has_deletions():  # one byte per document: 2 * wtf
                    assert dense is not None and len(dense) == n_docs
                    postings = {d: w for bl in fast for d, w in bl.load().items()}
                    assert {d + offset: v / 2 for d, v in enumerate(dense) if v} == postings
                    dense_terms += 1
                elif df * DENSE_SHARE < n_docs:
                    assert dense is None
            index.close()
    assert checked > 20 and dense_terms > 5


def test_segments_without_a_block_index_are_read_header_by_header(tmp_path: Path) -> None:
    ix = _build(tmp_path, SegmentWriter, _ops(5)[:3])
    with ix.reader() as r:
        leaf, offset = next(iter(r.leaf_readers()))
        assert open_block_index(leaf) is None
        assert term_blocks(leaf, offset, "alpha", None, 7)[0].min_len == 7


def test_a_blocks_pairs_bound_every_posting_and_give_its_best_score_exactly() -> None:
    from yasearch.index.impact import frontier
    from yasearch.ranking import contribution

    rng = random.Random(3)
    merged = 0
    for _ in range(300):
        n = rng.randint(1, 128)
        wtfs = [rng.choice([1.0, 2.0, 3.5, 4.0, 8.5, 40.0]) + rng.randint(0, 30) for _ in range(n)]
        lengths = [rng.randint(1, 5000) for _ in range(n)]
        pairs = frontier(wtfs, lengths)
        assert 1 <= len(pairs) <= MAX_PAIRS
        assert all(any(w <= pw and n >= pn for pw, pn in pairs) for w, n in zip(wtfs, lengths))
        best = max(contribution(1.7, w, n, 900.0) for w, n in zip(wtfs, lengths))
        bound = max(contribution(1.7, w, n, 900.0) for w, n in pairs)
        if all((w, n) in set(zip(wtfs, lengths)) for w, n in pairs):
            assert bound == best  # the Pareto-best postings themselves: exact
        else:
            merged += 1
            assert bound >= best
    assert merged > 0  # long frontiers were merged into looser pairs


def test_a_dense_section_is_twice_each_wtf_or_none_when_a_wtf_does_not_fit_a_byte() -> None:
    from yasearch.index.impact import dense_weights

    assert dense_weights([0, 2, 5], [1.0, 3.5, 127.5], 6) == bytes([2, 0, 7, 0, 0, 255])
    assert dense_weights([1], [1.25], 3) is None  # not a multiple of 0.5
    assert dense_weights([1], [128.0], 3) is None  # beyond a byte
