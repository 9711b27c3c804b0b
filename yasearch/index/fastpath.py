"""The writer's fast analysis path: postings without Whoosh's generator chain.

Whoosh analyzes text through a chain of generators (tokenizer | lowercase |
stop | stem) that yields one mutable Token per word: about 4 us per token,
which made analysis ~60% of indexing time, and ranking.document_length ran it
a second time for BM25's |d|. :func:`yasearch.analysis.analyze_positions`
computes exactly the same terms and positions in one flat loop (~5x faster),
and the writer analyzes each field once for both the postings and the length.
It is only used when the schema's analyzer is configured exactly as
analysis.make_analyzer() builds it (checked, see :func:`fast_analysis_ok`);
tests/test_fast_index.py checks term-for-term equality with Whoosh's chain.
"""

from __future__ import annotations

import copyreg
import pickle
import threading
from array import array
from typing import Any

from whoosh.fields import TEXT, Schema
from whoosh.formats import Frequency, Positions
from whoosh.system import pack_uint

from yasearch.analysis import (
    _TERM_CACHE, TOKEN_RE, _has_parts, _token_terms, analyze, is_legacy_analyzer, is_standard_analyzer, make_analyzer,
    parts_of, term_of,
)
from yasearch.ranking import DEFAULT_WEIGHTS, TEXT_FIELDS, document_length as _ranking_document_length
from yasearch.ranking import postings_for_document, prior_bits, url_text
from yasearch.records import IN_ANCHOR, IN_URL, Document

_fast_ok: bool | None = None


def fast_analysis_ok() -> bool:
    """The shipped analyzer is the one :func:`analyze_positions` reproduces."""
    global _fast_ok
    if _fast_ok is None:
        _fast_ok = is_standard_analyzer(make_analyzer())
    return _fast_ok


_local = threading.local()

#: One analyzed text: (number of terms, term -> its positions in order).
Grouped = tuple[int, dict[str, list[int]]]


def _grouped(text: str) -> Grouped:
    """analyze_positions grouped by term, with a per-thread memo of the last few
    texts (one document's fields: its postings, its length and its impact weights
    all come from one analysis)."""
    memo: dict[str, Grouped] | None = getattr(_local, "memo", None)
    if memo is None:
        memo = _local.memo = {}
    hit = memo.get(text)
    if hit is None:
        if len(memo) >= 16:
            memo.clear()
        hit = memo[text] = _group(text)
    return hit


def _group(text: str) -> Grouped:
    """:func:`analyze_positions` of ``text`` grouped by term, in one loop over the tokens
    (the same terms, positions and order; tests/test_fast_index.py compares them)."""
    poses: dict[str, list[int]] = {}
    get = poses.get
    n = 0
    pos = -1
    if not _has_parts(text):
        for i, term in enumerate(_token_terms(text)):
            if term:
                pos = i if pos < 0 else pos + 1
                lst = get(term)
                if lst is None:
                    poses[term] = [pos]
                else:
                    lst.append(pos)
                n += 1
        return n, poses
    cache = _TERM_CACHE.get
    for i, tok in enumerate(TOKEN_RE.findall(text)):
        term = cache(tok)
        if term is None:
            term = term_of(tok)
        if not term:
            continue
        pos = i if pos < 0 else pos + 1
        lst = get(term)
        if lst is None:
            poses[term] = [pos]
        else:
            lst.append(pos)
        n += 1
        if "." in tok or "_" in tok:
            for part in parts_of(tok):
                lst = get(part)
                if lst is None:
                    poses[part] = [pos]
                else:
                    lst.append(pos)
                n += 1
    return n, poses


def forget_analyzed() -> None:
    """Drop this thread's memo (after each document: its texts will not come again)."""
    memo = getattr(_local, "memo", None)
    if memo:
        memo.clear()


class FastText(TEXT):
    """A TEXT field whose ``index()`` uses :func:`analyze_positions`.

    Only ever lives in a writer's private copy of the schema; it pickles as a
    plain ``TEXT``, so the schema on disk is unchanged.
    """

    def __reduce_ex__(self, protocol: Any) -> Any:
        # what pickle protocols 0/1 emit for a plain TEXT: class + __dict__
        return (copyreg._reconstructor, (TEXT, object, None), dict(self.__dict__))

    def index(self, value: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or kwargs:
            return TEXT.index(self, value, **kwargs)
        fb = self.format.field_boost
        poses = _grouped(value)[1]
        if type(self.format) is Positions:
            return [(term.encode("utf-8"), len(lst), len(lst) * fb, _encode_positions(lst))
                    for term, lst in poses.items()]
        return [(term.encode("utf-8"), len(lst), len(lst) * fb, pack_uint(len(lst))) for term, lst in poses.items()]

    def index_into(self, value: str, docnum: int, terms: dict[str, Any]) -> tuple[int, int]:
        """Add the postings of ``value`` to a segment writer's pool for one field
        (term -> (docnums, weights, values), see :class:`yasearch.index.segwriter.TermPool`),
        keyed by the term as ``str``; returns (the field length, bytes added, roughly)."""
        fb = self.format.field_boost
        n, poses = _grouped(value)
        positions = type(self.format) is Positions
        encode = _encode_positions if positions else _encode_frequency
        single = _SINGLE_POSITIONS
        once = pack_uint(1)
        nbytes = 0
        for term, lst in poses.items():
            entry = terms.get(term)
            if entry is None:
                entry = terms[term] = (array("I"), array("f"), [])
                nbytes += 400
            entry[0].append(docnum)
            if len(lst) == 1:
                entry[1].append(fb)
                value = single.get(lst[0]) if positions else once
                entry[2].append(encode(lst) if value is None else value)
            else:
                entry[1].append(len(lst) * fb)
                entry[2].append(encode(lst))
        return n, nbytes + 16 * len(poses) + 4 * n


def _encode_frequency(poslist: list[int]) -> bytes:
    """whoosh.formats.Frequency's value: the count."""
    return pack_uint(len(poslist))


def _encode_positions(poslist: list[int]) -> bytes:
    """whoosh.formats.Positions.encode, inlined; single positions (most terms) cached."""
    if len(poslist) == 1:
        pos = poslist[0]
        enc = _SINGLE_POSITIONS.get(pos)
        if enc is None:
            enc = _SINGLE_POSITIONS[pos] = pack_uint(1) + pickle.dumps([pos], 2)
        return enc
    deltas = [poslist[0]]
    deltas += [b - a for a, b in zip(poslist, poslist[1:])]
    return pack_uint(len(deltas)) + pickle.dumps(deltas, 2)


_SINGLE_POSITIONS: dict[int, bytes] = {}


def fast_schema(schema: Schema) -> Schema:
    """A copy of ``schema`` with its TEXT fields indexed by :class:`FastText`."""
    if not fast_analysis_ok():
        return schema
    fields: dict[str, Any] = {}
    changed = False
    for name, f in schema.items():
        if (
            type(f) is TEXT and type(f.format) in (Positions, Frequency) and not f.vector
            and not f.separate_spelling()
            # an index built before identifier parts (analysis.is_legacy_analyzer) gets them from now on
            and (is_standard_analyzer(f.analyzer) or is_legacy_analyzer(f.analyzer))
        ):
            fast = FastText.__new__(FastText)
            fast.__dict__.update(f.__dict__)
            f = fast
            changed = True
        fields[name] = f
    return Schema(**fields) if changed else schema


def document_length(doc: Document) -> int:
    """ranking.document_length, computed with the writer's (memoized) fast analysis."""
    if not fast_analysis_ok():
        return _ranking_document_length(doc)
    return sum(_grouped(getattr(doc, name) or "")[0] for name, _ in TEXT_FIELDS)


def impact_weights(doc: Document) -> dict[str, float]:
    """term -> BM25 ``wtf`` (tf + default field boosts) of ``doc``, the values of the
    impact field: the same tf and flags as :func:`ranking.postings_for_document`,
    from the writer's memoized analysis."""
    if not fast_analysis_ok():
        boost = DEFAULT_WEIGHTS.boost
        return {t: p.tf + boost(p.flags) for t, p in postings_for_document(doc).items()}
    tf: dict[str, int] = {}
    flags: dict[str, int] = {}
    for name, flag in TEXT_FIELDS:
        poses = _grouped(getattr(doc, name) or "")[1]
        if not tf:
            tf = {term: len(lst) for term, lst in poses.items()}
        else:
            for term, lst in poses.items():
                tf[term] = tf.get(term, 0) + len(lst)
        if flag:
            for term in poses:
                flags[term] = flags.get(term, 0) | flag
    for term in set(analyze(url_text(doc.url))):
        flags[term] = flags.get(term, 0) | IN_URL
        tf.setdefault(term, 0)
    for term in set(analyze(doc.anchor or "")):
        flags[term] = flags.get(term, 0) | IN_ANCHOR
        tf.setdefault(term, 0)
    boosts = [DEFAULT_WEIGHTS.boost(f) for f in range(32)]
    prior = DEFAULT_WEIGHTS.boost(prior_bits(doc))  # the same for every term of the document
    return {t: n + boosts[flags.get(t, 0)] + prior for t, n in tf.items()}
