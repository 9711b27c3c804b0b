"""The local inverted index: Whoosh on disk, written by one thread, read by a pool.

Why it is shaped like this:

* Whoosh is synchronous and CPU-bound. Every Whoosh call runs off the event
  loop: all writes in ONE dedicated writer thread (a Whoosh index has one
  writer at a time, and one thread keeps its state simple), reads in a small
  thread pool where each thread keeps its own cached searcher (Whoosh readers
  are not documented as thread-safe), refreshed only after a commit.
* Writes are batched: :meth:`LocalIndex.add` only enqueues (and waits when the
  queue is full, which is the crawler's backpressure); the writer task commits
  every ``commit_interval`` seconds or ``commit_batch`` documents, then tells
  the ``on_commit`` callbacks which documents became durable.
* Crash safety comes from Whoosh: a commit writes new segment files, then
  atomically renames a new TOC generation into place; files of a commit that
  was interrupted are never referenced and are removed by the next commit. We
  fsync the new files and the directory after each commit so "committed" also
  survives a power cut. Whoosh's FileStorage write lock is an ``flock`` on a
  lock file; the kernel drops it when the process dies, so a leftover lock
  file after ``kill -9`` does not block reopening (a test proves it).
* Scores never come from Whoosh: :meth:`postings` returns the same
  :class:`~yasearch.records.Posting` records remote peers send, and
  :mod:`yasearch.ranking` scores both alike.
"""

from __future__ import annotations

import asyncio
import copyreg
import os
import pickle
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from whoosh import index as whoosh_index
from whoosh.analysis import CompositeAnalyzer, LowercaseFilter, RegexTokenizer, StemFilter, StopFilter
from whoosh.analysis.tokenizers import default_pattern
from whoosh.fields import ID, KEYWORD, NUMERIC, TEXT, Schema
from whoosh.formats import Frequency, Positions
from whoosh.lang.porter import stem as porter_stem
from whoosh.system import pack_uint
from whoosh.index import LockError
from whoosh.query import And, Or, Term
from whoosh.reading import TermNotFound
from whoosh.searching import Searcher
from whoosh.codec.whoosh3 import W3Codec, W3LeafMatcher
from whoosh.matching.wrappers import FilterMatcher
from whoosh.writing import IndexWriter, PostingPool

from yasearch.analysis import MAX_TERM_CHARS, make_analyzer
from yasearch.ranking import CollectionStats, TEXT_FIELDS, document_length, url_text
from yasearch.records import IN_URL, DocRecord, Document, Posting

T = TypeVar("T")

#: Stored body is capped: it is only kept for snippets, and a few huge pages
#: would otherwise dominate the index size.
MAX_STORED_BODY_CHARS = 100_000

#: Whoosh fields that make up a posting, with the flag each sets. ``url_terms``
#: only sets IN_URL and adds nothing to tf (see ranking.TEXT_FIELDS).
POSTING_FIELDS: tuple[tuple[str, int], ...] = TEXT_FIELDS + (("url_terms", IN_URL),)
_TF_FIELDS = frozenset(name for name, _ in TEXT_FIELDS)

#: Text fields a phrase can match in.
PHRASE_FIELDS: tuple[str, ...] = tuple(name for name, _ in TEXT_FIELDS)


class IndexClosedError(RuntimeError):
    """The index is not open (never opened, or already closed)."""


def make_schema() -> Schema:
    """The Whoosh schema. Analyzed fields all use the one shared analyzer."""
    analyzer = make_analyzer()
    return Schema(
        doc_id=ID(unique=True, stored=True, sortable=True),
        url=ID(stored=True, sortable=True),
        url_terms=TEXT(analyzer=analyzer, phrase=False),
        host=ID(stored=True),
        host_parts=KEYWORD(lowercase=True),
        title=TEXT(analyzer=analyzer, phrase=True, stored=True),
        headings=TEXT(analyzer=analyzer, phrase=True),
        body=TEXT(analyzer=analyzer, phrase=True, stored=True),
        description=TEXT(analyzer=analyzer, phrase=True, stored=True),
        language=ID(stored=True),
        crawled_at=NUMERIC(numtype=float, bits=64, stored=True),
        length=NUMERIC(numtype=int, bits=64, stored=True, sortable=True),
    )


def host_parts(host: str) -> list[str]:
    """``a.b.example.com`` -> itself and every parent domain (for ``site:``)."""
    host = host.lower().strip(".")
    if not host:
        return []
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


# --------------------------------------------------------------------------
# Fast indexing analysis
#
# Whoosh analyzes text through a chain of generators (tokenizer | lowercase |
# stop | stem) that yields one mutable Token per word: about 4 us per token,
# which made analysis ~60% of indexing time, and ranking.document_length ran it
# a second time for BM25's |d|. _fast_terms() computes exactly the same terms
# and positions as the shared StemmingAnalyzer in one flat loop (~5x faster),
# and the writer analyzes each field once for both the postings and the length.
# It is only used when the schema's analyzer is configured exactly as
# analysis.make_analyzer() builds it (checked, see _fast_analysis_ok);
# tests/test_fast_index.py checks term-for-term equality with Whoosh's chain.

#: Whoosh's default tokenizer pattern without the capturing group (same matches).
_TOKEN_RE = re.compile(default_pattern.pattern.replace("(\\.?", "(?:\\.?"), default_pattern.flags)


def _expected_analyzer_ok(analyzer: Any) -> bool:
    """True if ``analyzer`` is the StemmingAnalyzer configuration _fast_terms reproduces."""
    if not isinstance(analyzer, CompositeAnalyzer) or len(analyzer.items) != 4:
        return False
    tok, low, stop, stem = analyzer.items
    reference = make_analyzer().items[2]
    return (
        type(tok) is RegexTokenizer and not tok.gaps and tok.expression.pattern == default_pattern.pattern
        and tok.expression.flags == default_pattern.flags
        and type(low) is LowercaseFilter
        and type(stop) is StopFilter and stop.stops == reference.stops and stop.min == 2
        and stop.max == MAX_TERM_CHARS and stop.renumber
        and type(stem) is StemFilter and stem.stemfn is porter_stem and not stem.ignore and not stem.lang
    )


_fast_ok: bool | None = None


def _fast_analysis_ok() -> bool:
    global _fast_ok
    if _fast_ok is None:
        _fast_ok = _expected_analyzer_ok(make_analyzer())
    return _fast_ok


def _fast_terms(text: str) -> tuple[list[str], int]:
    """Analyzed terms of ``text`` in order, and the position of the first one.

    Same result as the shared analyzer with positions: StopFilter(renumber=True)
    keeps the first kept token's tokenizer position and numbers the following
    kept tokens consecutively.
    """
    toks = _TOKEN_RE.findall(text)
    get = _TERM_CACHE.get
    stems = [get(t) for t in toks]  # raw token -> term, "" if dropped, None if not seen yet
    if None in stems:
        for i, st in enumerate(stems):
            if st is None:
                stems[i] = _resolve(toks[i])
    terms = [st for st in stems if st]
    first = 0
    if terms:
        for first, st in enumerate(stems):
            if st:
                break
    return terms, first


#: raw token -> analyzed term ("" when the token is dropped: stopword, too short or long)
_TERM_CACHE: dict[str, str] = {}
_TERM_CACHE_MAX = 500_000


def _resolve(tok: str) -> str:
    w = tok.lower()
    if 2 <= len(w) <= MAX_TERM_CHARS and w not in _STOPS:
        term = porter_stem(w)
    else:
        term = ""
    if len(_TERM_CACHE) >= _TERM_CACHE_MAX:
        _TERM_CACHE.clear()
    _TERM_CACHE[tok] = term
    return term


_STOPS: frozenset[str] = make_analyzer().items[2].stops
_local = threading.local()


def _analyzed(text: str) -> tuple[list[str], int]:
    """_fast_terms with a per-thread memo of the last few texts (one document's fields)."""
    memo: dict[str, tuple[list[str], int]] | None = getattr(_local, "memo", None)
    if memo is None:
        memo = _local.memo = {}
    hit = memo.get(text)
    if hit is None:
        if len(memo) >= 16:
            memo.clear()
        hit = memo[text] = _fast_terms(text)
    return hit


def _forget_analyzed() -> None:
    memo = getattr(_local, "memo", None)
    if memo:
        memo.clear()


class _FastText(TEXT):
    """A TEXT field whose ``index()`` uses :func:`_fast_terms`.

    Only ever lives in a writer's private copy of the schema; it pickles as a
    plain ``TEXT``, so the schema on disk is unchanged.
    """

    def __reduce_ex__(self, protocol: Any) -> Any:
        # what pickle protocols 0/1 emit for a plain TEXT: class + __dict__
        return (copyreg._reconstructor, (TEXT, object, None), dict(self.__dict__))

    def index(self, value: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or kwargs:
            return TEXT.index(self, value, **kwargs)
        terms, first = _analyzed(value)
        fmt = self.format
        fb = fmt.field_boost
        if type(fmt) is Positions:
            poses: dict[str, list[int]] = {}
            for pos, term in enumerate(terms, first):
                lst = poses.get(term)
                if lst is None:
                    poses[term] = [pos]
                else:
                    lst.append(pos)
            return [
                (term.encode("utf-8"), len(lst), len(lst) * fb, _encode_positions(lst))
                for term, lst in poses.items()
            ]
        freqs: dict[str, int] = {}
        for term in terms:
            freqs[term] = freqs.get(term, 0) + 1
        return [(term.encode("utf-8"), n, n * fb, pack_uint(n)) for term, n in freqs.items()]


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


def _fast_schema(schema: Schema) -> Schema:
    """A copy of ``schema`` with its TEXT fields indexed by :class:`_FastText`."""
    if not _fast_analysis_ok():
        return schema
    fields: dict[str, Any] = {}
    changed = False
    for name, f in schema.items():
        if (
            type(f) is TEXT and type(f.format) in (Positions, Frequency) and not f.vector
            and not f.separate_spelling() and _expected_analyzer_ok(f.analyzer)
        ):
            fast = _FastText.__new__(_FastText)
            fast.__dict__.update(f.__dict__)
            f = fast
            changed = True
        fields[name] = f
    return Schema(**fields) if changed else schema


def _document_length(doc: Document) -> int:
    """ranking.document_length, computed with the writer's (memoized) fast analysis."""
    if not _fast_analysis_ok():
        return document_length(doc)
    return sum(len(_analyzed(getattr(doc, name) or "")[0]) for name, _ in TEXT_FIELDS)


def _whoosh_fields(doc: Document) -> dict[str, Any]:
    host = doc.host.lower()
    return {
        "doc_id": doc.doc_id,
        "url": doc.url,
        "url_terms": url_text(doc.url),
        "host": host,
        "host_parts": " ".join(host_parts(host)),
        "title": doc.title or "",
        "headings": doc.headings or "",
        "body": doc.body or "",
        # Whoosh stores "_stored_<field>" instead of the indexed value.
        "_stored_body": (doc.body or "")[:MAX_STORED_BODY_CHARS],
        "description": doc.description or "",
        "language": doc.language or "",
        "crawled_at": float(doc.crawled_at or 0.0),
        "length": _document_length(doc),
    }


# --------------------------------------------------------------------------
# Reading


#: Posting lists of at most this many entries are memoized per read view (and
#: so per reader thread, until the next commit), up to this many entries in
#: all (~100 bytes each: ~20 MB per reader thread at most).
_PAIRS_MEMO_MAX_LEN = 20_000
_PAIRS_MEMO_BUDGET = 200_000


class ReadView:
    """One thread's view of one committed index generation.

    Only ever used from the reader thread that created it. Search code gets one
    through :meth:`LocalIndex.run_read` and may use :attr:`searcher` directly
    to evaluate Whoosh queries for candidate selection.
    """

    def __init__(self, searcher: Searcher, generation: int, length_cache: dict[tuple[str, int], int]) -> None:
        self.searcher = searcher
        self.generation = generation
        self._length_cache = length_cache
        self._setup()

    def _setup(self) -> None:
        self.reader = self.searcher.reader()
        if self.reader.doc_count_all() == 0:
            # An empty index has no column files; Whoosh raises rather than return nothing.
            self._doc_ids: Any = []
            self._urls: Any = []
            self._lengths: Any = []
        else:
            self._doc_ids = self.reader.column_reader("doc_id")
            self._urls = self.reader.column_reader("url")
            self._lengths = self.reader.column_reader("length")
        self._leaves = list(self.reader.leaf_readers())
        # column reads cost microseconds each and a query reads the same docs many times
        self._doc_id_memo: dict[int, str] = {}
        self._length_memo: dict[int, int] = {}
        self._pairs_memo: dict[tuple[str, str], list[tuple[int, float]]] = {}
        self._pairs_memo_size = 0
        self._df: dict[str, int] = {}
        self._total_length: int | None = None

    def refreshed(self, ix: Any, generation: int) -> "ReadView":
        """This view moved to the latest commit.

        A fresh searcher rather than ``Searcher.refresh()``: the latter reuses
        segment readers by segment identity and can keep a stale deletion set
        after a delete-only commit.
        """
        if generation != self.generation:
            old = self.searcher
            self.searcher = ix.searcher()
            self.generation = generation
            self._setup()
            old.close()
        return self

    def close(self) -> None:
        self.searcher.close()

    # ---- basic lookups

    @property
    def n_docs(self) -> int:
        return self.reader.doc_count()

    def doc_id_of(self, docnum: int) -> str:
        v = self._doc_id_memo.get(docnum)
        if v is None:
            v = self._doc_id_memo[docnum] = self._doc_ids[docnum]
        return v

    def url_of(self, docnum: int) -> str:
        return self._urls[docnum]

    def length_of(self, docnum: int) -> int:
        v = self._length_memo.get(docnum)
        if v is None:
            v = self._length_memo[docnum] = int(self._lengths[docnum])
        return v

    def docnum_of(self, doc_id: str) -> int | None:
        return self.searcher.document_number(doc_id=doc_id)

    def stored(self, docnum: int) -> dict[str, Any]:
        return self.searcher.stored_fields(docnum)

    def record(self, docnum: int) -> DocRecord:
        f = self.stored(docnum)
        return DocRecord(
            doc_id=f["doc_id"],
            url=f["url"],
            title=f.get("title", ""),
            description=f.get("description", ""),
            language=f.get("language", ""),
            length=int(f.get("length", 0)),
            crawled_at=float(f.get("crawled_at", 0.0)),
            origin="local",
            host=f.get("host", ""),
        )

    def docnums(self, query: Any) -> set[int]:
        """Live documents matching a Whoosh query."""
        fast = self._boolean_docnums(query)
        if fast is not None:
            return fast
        return set(self.searcher.docs_for_query(query))

    def _boolean_docnums(self, q: Any) -> set[int] | None:
        """Docnums of a tree of Term / Or / And queries from posting-block reads, else None.

        Whoosh's union/intersection matchers cost several Python calls per
        posting; plain word queries (an And of per-term Ors over the fields)
        are evaluated here with set operations instead. Anything else
        (phrases, exclusions, minmatch, ...) returns None: Whoosh evaluates it.
        """
        kind = type(q)
        if kind is Term:
            return {d for d, _w in self._pair_list(q.fieldname, q.text)}
        if kind is Or and not q.minmatch:
            out: set[int] = set()
            for sub in q.subqueries:
                docs = self._boolean_docnums(sub)
                if docs is None:
                    return None
                out |= docs
            return out
        if kind is And and q.subqueries:
            result: set[int] | None = None
            for sub in q.subqueries:
                docs = self._boolean_docnums(sub)
                if docs is None:
                    return None
                result = docs if result is None else result & docs
            return result
        return None

    def total_length(self) -> int:
        """Sum of document lengths of live documents.

        Cached per (segment, live count): segments are immutable apart from
        deletions, so only new or changed segments are summed after a commit.
        """
        if self._total_length is None:
            total = 0
            for leaf, _offset in self.reader.leaf_readers():
                segment = leaf.segment()
                if segment is None or leaf.doc_count_all() == 0:  # an empty index
                    continue
                key = (segment.segment_id(), leaf.doc_count())
                seg_total = self._length_cache.get(key)
                if seg_total is None:
                    lengths = leaf.column_reader("length")
                    seg_total = sum(int(lengths[d]) for d in leaf.all_doc_ids())
                    self._length_cache[key] = seg_total
                total += seg_total
            self._total_length = total
        return self._total_length

    def avg_length(self) -> float:
        n = self.n_docs
        return self.total_length() / n if n else 0.0

    # ---- postings

    def _matcher(self, fieldname: str, term: str) -> Any | None:
        try:
            return self.reader.postings(fieldname, term)
        except TermNotFound:
            return None

    def _pairs(self, fieldname: str, term: str) -> Iterator[tuple[int, float]]:
        """(docnum, weight) of every live posting of ``term`` in ``fieldname``, in docnum order.

        Reads Whoosh's posting blocks a block at a time instead of calling
        ``is_active/id/weight/next`` per posting (far fewer Python calls);
        other matcher kinds (e.g. inlined single postings) take the generic path.
        """
        for leaf, offset in self._leaves:
            try:
                m = leaf.postings(fieldname, term)
            except TermNotFound:
                continue
            deleted: Any = None
            if type(m) is FilterMatcher and m._exclude:
                deleted, m = m._ids, m.child
            if type(m) is W3LeafMatcher:
                while m.is_active():
                    if m._ids is None:
                        m._read_ids()
                    if m._weights is None:
                        m._read_weights()
                    i = m._i
                    ids, weights = m._ids, m._weights
                    if i:
                        ids, weights = ids[i:], weights[i:]
                    for d, w in zip(ids, weights):
                        if deleted is None or d not in deleted:
                            yield d + offset, w
                    m._next_block()
            else:
                while m.is_active():
                    d = m.id()
                    if deleted is None or d not in deleted:
                        yield d + offset, m.weight()
                    m.next()

    def _pair_list(self, fieldname: str, term: str) -> list[tuple[int, float]]:
        """:meth:`_pairs` as a list, memoized for this generation.

        A query reads each posting list up to three times (candidates, df,
        postings); short lists are kept so that blocks are decoded once.
        """
        key = (fieldname, term)
        pairs = self._pairs_memo.get(key)
        if pairs is None:
            pairs = list(self._pairs(fieldname, term))
            if len(pairs) <= _PAIRS_MEMO_MAX_LEN:
                if self._pairs_memo_size + len(pairs) > _PAIRS_MEMO_BUDGET:
                    self._pairs_memo.clear()
                    self._pairs_memo_size = 0
                self._pairs_memo[key] = pairs
                self._pairs_memo_size += len(pairs)
        return pairs

    def df(self, term: str) -> int:
        """Live documents containing ``term`` in any posting field."""
        cached = self._df.get(term)
        if cached is None:
            docs: set[int] = set()
            for fieldname, _flag in POSTING_FIELDS:
                docs.update(d for d, _w in self._pair_list(fieldname, term))
            cached = self._df[term] = len(docs)
        return cached

    def term_postings(self, term: str, restrict: set[int] | None) -> list[Posting]:
        """Postings of one term, over all documents or only ``restrict`` docnums.

        Union over fields: tf summed over the text fields, one flag per field.
        """
        acc: dict[int, list[int]] = {}
        ordered: list[int] | None = None
        for fieldname, flag in POSTING_FIELDS:
            counts_tf = fieldname in _TF_FIELDS
            if restrict is not None and len(restrict) * 16 < self._field_df(fieldname, term):
                # a few candidates in a long posting list: skip to each of them
                if ordered is None:
                    ordered = sorted(restrict)
                self._skip_accumulate(acc, fieldname, term, ordered, counts_tf, flag)
                continue
            for d, w in self._pair_list(fieldname, term):
                if restrict is not None and d not in restrict:
                    continue
                entry = acc.get(d)
                if entry is None:
                    entry = acc[d] = [0, 0]
                if counts_tf:
                    entry[0] += int(round(w))
                entry[1] |= flag
        postings = [
            Posting(doc_id=self.doc_id_of(d), tf=tf, flags=flags, length=self.length_of(d))
            for d, (tf, flags) in acc.items()
        ]
        postings.sort(key=lambda p: p.doc_id)
        return postings

    def _field_df(self, fieldname: str, term: str) -> int:
        try:
            return self.reader.doc_frequency(fieldname, term)
        except TermNotFound:
            return 0

    def _skip_accumulate(
        self, acc: dict[int, list[int]], fieldname: str, term: str, ordered: list[int], counts_tf: bool, flag: int
    ) -> None:
        m = self._matcher(fieldname, term)
        if m is None:
            return
        for d in ordered:
            if not m.is_active():
                break
            if m.id() < d:
                m.skip_to(d)
                if not m.is_active():
                    break
            if m.id() == d:
                self._accumulate(acc, d, m, counts_tf, flag)

    @staticmethod
    def _accumulate(acc: dict[int, list[int]], docnum: int, m: Any, counts_tf: bool, flag: int) -> None:
        entry = acc.get(docnum)
        if entry is None:
            entry = acc[docnum] = [0, 0]
        if counts_tf:
            entry[0] += int(round(m.weight()))
        entry[1] |= flag

    def postings(self, terms: Iterable[str], restrict: set[int] | None) -> dict[str, list[Posting]]:
        return {term: self.term_postings(term, restrict) for term in dict.fromkeys(terms)}

    def collection_stats(self, terms: Iterable[str]) -> CollectionStats:
        return CollectionStats(
            n_docs=self.n_docs,
            avg_length=self.avg_length(),
            df={term: self.df(term) for term in dict.fromkeys(terms)},
        )

    # ---- suggestions (see yasearch.suggest)

    def title_terms(self, prefixes: Iterable[str], max_terms: int, exact: Iterable[str] = ()) -> dict[str, int]:
        """Analyzed title terms starting with any of ``prefixes`` (and those of
        ``exact`` that exist), with their title df.

        At most ``max_terms`` terms are expanded in all. The df comes from
        Whoosh's term info, which still counts deleted documents until their
        segment is merged; callers confirm liveness with :meth:`title_samples`.
        """
        found: dict[str, int] = {}
        for term in exact:
            if term and term not in found:
                df = self.reader.doc_frequency("title", term)
                if df:
                    found[term] = df
        budget = max_terms
        for prefix in dict.fromkeys(prefixes):
            if not prefix or budget <= 0:
                continue
            for raw in self.reader.expand_prefix("title", prefix):
                term = raw.decode("utf-8") if isinstance(raw, bytes) else raw
                if term not in found:
                    found[term] = self.reader.doc_frequency("title", term)
                budget -= 1
                if budget <= 0:
                    break
        return found

    def title_samples(self, term: str, n: int) -> list[str]:
        """Stored titles of up to ``n`` live documents with ``term`` in the title."""
        titles: list[str] = []
        for docnum, _w in self._pairs("title", term):
            titles.append(self.stored(docnum).get("title", "") or "")
            if len(titles) >= n:
                break
        return titles


# --------------------------------------------------------------------------
# Writing


@dataclass
class _Op:
    """One queued write. ``future`` is resolved on the loop with ``result``."""

    kind: str  # "add" | "delete" | "delete_host" | "flush" | "stop"
    doc: Document | None = None
    key: str = ""
    future: asyncio.Future[Any] | None = None


@dataclass
class _Outcome:
    """What one batch of ops did, reported back from the writer thread."""

    commits: list[list[str]] = field(default_factory=list)  # doc ids per commit
    results: list[tuple[_Op, Any]] = field(default_factory=list)


class _WriterState:
    """Whoosh writer state; touched only by the single writer thread."""

    def __init__(self, ix: Any, limitmb: int, commit_batch: int, on_durable: Callable[[], None]) -> None:
        self.ix = ix
        self.limitmb = limitmb
        self.commit_batch = commit_batch
        self.on_durable = on_durable
        self.writer: IndexWriter | None = None
        self.added: dict[str, None] = {}  # doc ids updated in the open writer
        self.dirty = False  # the open writer has changes (adds or deletes)

    def _w(self) -> IndexWriter:
        if self.writer is None:
            try:
                self.writer = self.ix.writer(limitmb=self.limitmb, timeout=10.0, codec=_codec())
            except LockError as e:
                raise RuntimeError(
                    f"Whoosh index at {self.ix.storage.folder} is locked by another live process"
                ) from e
            self.writer.schema = _fast_schema(self.writer.schema)
            self.writer.pool = _FastPool(self.writer._tempstorage, self.writer.newsegment, limitmb=self.limitmb)
        return self.writer

    def commit(self, out: _Outcome) -> None:
        if self.writer is None:
            return
        if not self.dirty:
            self.writer.cancel()
        else:
            self.writer.commit()
            self.on_durable()
            out.commits.append(list(self.added))
        self.writer = None
        self.added = {}
        self.dirty = False

    def apply(self, ops: list[_Op]) -> _Outcome:
        out = _Outcome()
        for op in ops:
            if op.kind == "add":
                assert op.doc is not None
                # Whoosh's update_document only finds *committed* duplicates,
                # so a second version of a document in the same writer would
                # be a duplicate: commit the first one before replacing it.
                if op.doc.doc_id in self.added:
                    self.commit(out)
                self._w().update_document(**_whoosh_fields(op.doc))
                _forget_analyzed()
                self.added[op.doc.doc_id] = None
                self.dirty = True
                if len(self.added) >= self.commit_batch:
                    self.commit(out)
            elif op.kind == "delete":
                if op.key in self.added:
                    self.commit(out)
                if self._w().delete_by_term("doc_id", op.key):
                    self.dirty = True
                out.results.append((op, None))
            elif op.kind == "delete_host":
                self.commit(out)
                count = self._w().delete_by_term("host", op.key.lower())
                self.dirty = self.dirty or bool(count)
                self.commit(out)
                out.results.append((op, count))
            elif op.kind == "flush":
                self.commit(out)
                out.results.append((op, None))
            elif op.kind == "stop":
                self.commit(out)
                out.results.append((op, None))
        return out

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.cancel()
            self.writer = None


def _codec() -> Any:
    """Whoosh's default codec, tuned for write speed.

    * ``compression=0``: posting blocks are not zlib-compressed (zlib was ~10%
      of indexing time; reading uncompressed blocks is faster too; the index is
      somewhat larger). Readers handle both, block by block.
    * ``length_stats = False``: Whoosh otherwise looks up the field length of
      every posting at commit (a column read per posting, ~20% of commit time)
      to keep per-block min/max lengths, which only feed Whoosh's own
      block-quality pruning in ``Searcher.search``. Scores here come from
      ranking.bm25_scores over ``length`` and never from Whoosh, and with the
      statistic absent Whoosh's pruning bound stays a valid upper bound.
    """
    codec = W3Codec(compression=0)
    codec.length_stats = False
    return codec


class _FastPool(PostingPool):
    """Whoosh's posting pool without per-posting type asserts and with cheaper size accounting.

    (``fieldnames`` is not maintained: only Whoosh's multiprocessing writer reads it.)
    """

    def add(self, item: tuple[str, bytes, int, float, bytes | None]) -> None:
        self.currentsize += 140 + 2 * len(item[1]) + len(item[4] or b"")
        if self.currentsize > self.limit:
            self.save()
        self.current.append(item)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------


class LocalIndex:
    """This peer's inverted index of the pages it crawled.

    Construct, ``await open()``, use, ``await close()``. See the module
    docstring for the threading and durability model.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        commit_interval: float = 1.0,
        commit_batch: int = 500,
        limitmb: int = 256,
        queue_size: int | None = None,
        reader_threads: int = 2,
        fsync: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.commit_interval = commit_interval
        self.commit_batch = max(1, commit_batch)
        self.limitmb = limitmb
        self.queue_size = queue_size or max(64, 2 * self.commit_batch)
        self.reader_threads = max(1, reader_threads)
        self.fsync = fsync
        #: Called on the event loop after each commit with the committed doc ids.
        self.on_commit: list[Callable[[list[str]], None]] = []
        self._ix: Any = None
        self._queue: asyncio.Queue[_Op] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._write_pool: ThreadPoolExecutor | None = None
        self._read_pool: ThreadPoolExecutor | None = None
        self._state: _WriterState | None = None
        self._generation = 0
        self._doc_count = 0
        self._local = threading.local()
        self._views: list[ReadView] = []
        self._views_lock = threading.Lock()
        self._length_cache: dict[tuple[str, int], int] = {}
        self._synced: set[str] = set()
        self._error: BaseException | None = None

    # ---- lifecycle

    async def open(self) -> None:
        """Open the index on disk, creating it if it does not exist yet."""
        if self._ix is not None:
            return
        self._write_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-writer")
        self._read_pool = ThreadPoolExecutor(max_workers=self.reader_threads, thread_name_prefix="index-reader")
        loop = asyncio.get_running_loop()
        self._ix = await loop.run_in_executor(self._write_pool, self._open_sync)
        self._state = _WriterState(self._ix, self.limitmb, self.commit_batch, self._after_commit_sync)
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._error = None
        self._writer_task = asyncio.create_task(self._writer_loop(), name="index-writer")

    def _open_sync(self) -> Any:
        self.directory.mkdir(parents=True, exist_ok=True)
        if whoosh_index.exists_in(str(self.directory)):
            ix = whoosh_index.open_dir(str(self.directory))
        else:
            ix = whoosh_index.create_in(str(self.directory), make_schema())
        self._synced = set(os.listdir(self.directory))
        self._doc_count = ix.doc_count()
        return ix

    async def close(self) -> None:
        """Commit what is pending, stop the writer, release files and threads."""
        if self._ix is None:
            return
        if self._writer_task is not None and not self._writer_task.done() and self._error is None:
            await self._submit(_Op("stop"))
        if self._writer_task is not None:
            self._writer_task.cancel()
            try:
                await self._writer_task
            except (asyncio.CancelledError, Exception):
                pass
        loop = asyncio.get_running_loop()
        assert self._write_pool is not None and self._read_pool is not None
        if self._state is not None:
            await loop.run_in_executor(self._write_pool, self._state.abort)
        self._read_pool.shutdown(wait=True)
        self._write_pool.shutdown(wait=True)
        with self._views_lock:
            for view in self._views:
                view.close()
            self._views.clear()
        self._ix.close()
        self._ix = None
        self._writer_task = None
        self._state = None
        self._local = threading.local()

    async def __aenter__(self) -> "LocalIndex":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- writes

    def _check_open(self) -> asyncio.Queue[_Op]:
        if self._ix is None or self._queue is None:
            raise IndexClosedError("index is not open")
        if self._error is not None:
            raise RuntimeError("index writer failed") from self._error
        return self._queue

    async def _submit(self, op: _Op) -> Any:
        queue = self._check_open()
        op.future = asyncio.get_running_loop().create_future()
        await queue.put(op)
        return await op.future

    async def add(self, doc: Document) -> None:
        """Queue a document for indexing (replacing any with the same doc_id).

        Returns once queued, not once committed: ``on_commit`` says when it is
        durable. Waits while the queue is full, which throttles the crawler to
        the indexing speed.
        """
        await self._check_open().put(_Op("add", doc=doc))

    async def delete(self, doc_id: str) -> None:
        """Delete a document; durable at the next commit."""
        await self._submit(_Op("delete", key=doc_id))

    async def delete_host(self, host: str) -> int:
        """Delete every document of ``host`` (exact host); returns how many."""
        return int(await self._submit(_Op("delete_host", key=host)))

    async def flush(self) -> None:
        """Commit everything queued so far; returns when it is on disk."""
        await self._submit(_Op("flush"))

    async def _writer_loop(self) -> None:
        """Drain the queue into the writer thread; commit on size or time."""
        assert self._queue is not None and self._state is not None
        queue, state = self._queue, self._state
        loop = asyncio.get_running_loop()
        getter: asyncio.Task[_Op] | None = None
        dirty_since: float | None = None
        try:
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(queue.get())
                timeout = None
                if dirty_since is not None:
                    timeout = max(0.0, dirty_since + self.commit_interval - time.monotonic())
                done, _ = await asyncio.wait({getter}, timeout=timeout)
                ops: list[_Op] = []
                if done:
                    ops.append(getter.result())
                    getter = None
                    while len(ops) < 256 and not queue.empty():
                        ops.append(queue.get_nowait())
                else:
                    ops.append(_Op("flush"))  # interval elapsed: time-based commit
                try:
                    outcome = await loop.run_in_executor(self._write_pool, state.apply, ops)
                except Exception as e:
                    self._error = e
                    for op in ops:
                        if op.future is not None and not op.future.done():
                            op.future.set_exception(e)
                    raise
                self._deliver(outcome)
                if state.writer is not None and state.dirty:
                    if dirty_since is None:
                        dirty_since = time.monotonic()
                else:
                    dirty_since = None
                if any(op.kind == "stop" for op in ops):
                    return
        finally:
            if getter is not None:
                getter.cancel()

    def _deliver(self, outcome: _Outcome) -> None:
        """On the loop: tell callbacks what got committed, then wake waiters."""
        for doc_ids in outcome.commits:
            self._generation += 1
            for callback in list(self.on_commit):
                callback(doc_ids)
        for op, result in outcome.results:
            if op.future is not None and not op.future.done():
                op.future.set_result(result)

    def _after_commit_sync(self) -> None:
        """Writer thread, right after a Whoosh commit: make it durable, count."""
        if self.fsync:
            names = set(os.listdir(self.directory))
            for name in names - self._synced:
                path = self.directory / name
                if path.is_file():
                    try:
                        _fsync_path(path)
                    except FileNotFoundError:
                        pass
            _fsync_path(self.directory)
            self._synced = names
        self._doc_count = self._ix.doc_count()

    # ---- reads

    def _view(self) -> ReadView:
        """This reader thread's view, refreshed if a commit happened since."""
        view: ReadView | None = getattr(self._local, "view", None)
        generation = self._generation
        if view is None:
            view = ReadView(self._ix.searcher(), generation, self._length_cache)
            self._local.view = view
            with self._views_lock:
                self._views.append(view)
        else:
            view.refreshed(self._ix, generation)
        return view

    async def run_read(self, fn: Callable[[ReadView], T]) -> T:
        """Run ``fn(view)`` in the reader pool against the latest commit."""
        self._check_open()
        assert self._read_pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._read_pool, lambda: fn(self._view()))

    def doc_count(self) -> int:
        """Committed live documents (cached after each commit; no I/O)."""
        return self._doc_count

    async def total_length(self) -> int:
        return await self.run_read(lambda v: v.total_length())

    async def collection_stats(self, terms: Iterable[str]) -> CollectionStats:
        """N, average length and df of ``terms`` over this whole index."""
        terms = list(terms)
        return await self.run_read(lambda v: v.collection_stats(terms))

    async def postings(self, terms: list[str], restrict: set[str] | None = None) -> dict[str, list[Posting]]:
        """Postings of ``terms`` (each list sorted by doc_id), optionally only for some docs."""
        terms = list(terms)

        def run(view: ReadView) -> dict[str, list[Posting]]:
            docnums: set[int] | None = None
            if restrict is not None:
                docnums = set()
                for doc in restrict:
                    d = view.docnum_of(doc)
                    if d is not None:
                        docnums.add(d)
            return view.postings(terms, docnums)

        return await self.run_read(run)

    async def get(self, doc_id: str) -> DocRecord | None:
        def run(view: ReadView) -> DocRecord | None:
            d = view.docnum_of(doc_id)
            return None if d is None else view.record(d)

        return await self.run_read(run)

    async def get_url(self, url: str) -> DocRecord | None:
        def run(view: ReadView) -> DocRecord | None:
            d = view.searcher.document_number(url=url)
            return None if d is None else view.record(d)

        return await self.run_read(run)

    async def has(self, doc_id: str) -> bool:
        return await self.run_read(lambda v: v.docnum_of(doc_id) is not None)

    async def documents_by_host(self) -> list[tuple[str, int]]:
        """(host, live document count), most documents first."""

        def run(view: ReadView) -> list[tuple[str, int]]:
            counts: list[tuple[str, int]] = []
            for raw in view.reader.lexicon("host"):
                host = raw.decode("utf-8") if isinstance(raw, bytes) else raw
                n = len(view.docnums(Term("host", host)))
                if n:
                    counts.append((host, n))
            counts.sort(key=lambda hc: (-hc[1], hc[0]))
            return counts

        return await self.run_read(run)

    async def doc_ids_of_host(self, host: str) -> list[str]:
        """Doc ids of every live document of ``host`` (exact host, as stored: lowercase)."""

        def run(view: ReadView) -> list[str]:
            return sorted(view.doc_id_of(d) for d in view.docnums(Term("host", host.lower())))

        return await self.run_read(run)

    async def documents_of_host(self, host: str, offset: int = 0, limit: int = 50) -> tuple[int, list[DocRecord]]:
        """(number of live documents of ``host``, one page of their records ordered by URL)."""

        def run(view: ReadView) -> tuple[int, list[DocRecord]]:
            docnums = sorted(view.docnums(Term("host", host.lower())), key=view.url_of)
            page = docnums[max(0, offset) : max(0, offset) + max(0, limit)]
            return len(docnums), [view.record(d) for d in page]

        return await self.run_read(run)
