"""Reading the local index: one :class:`ReadView` per reader thread and commit.

Whoosh readers are not documented as thread-safe, so each reader thread keeps
its own searcher, refreshed only after a commit. Scores never come from
Whoosh: :meth:`ReadView.postings` returns the same
:class:`~yasearch.records.Posting` records remote peers send, and
:mod:`yasearch.ranking` scores both alike.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from itertools import accumulate
from operator import itemgetter
from typing import Any

from whoosh.codec.whoosh3 import W3LeafMatcher
from whoosh.matching.wrappers import FilterMatcher
from whoosh.query import And, Or, Term
from whoosh.reading import TermNotFound
from whoosh.searching import Searcher

from yasearch.index.docvalues import DocValues
from yasearch.index.impact import has_impact, open_block_index
from yasearch.index.passages import PassageColumns, Passages
from yasearch.index.schema import POSTING_FIELDS, PRIOR_FIELD, TF_FIELDS
from yasearch.ranking import CollectionStats
from yasearch.records import PRIOR_SHIFT, DocRecord, Posting



_first = itemgetter(0)

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

    def __init__(self, searcher: Searcher, generation: int, length_cache: dict[tuple[str, int], int],
                 docvalues: DocValues | None = None) -> None:
        self.searcher = searcher
        self.generation = generation
        self._length_cache = length_cache
        self._docvalues = docvalues or DocValues()
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
        self._leaf_starts = [offset for _leaf, offset in self._leaves]
        #: Per-generation memo for search code (e.g. facets per query); cleared on refresh.
        self.memo: dict[str, Any] = {}
        # column reads cost microseconds each and a query reads the same docs many times
        self._doc_id_memo: dict[int, str] = {}
        self._length_memo: dict[int, int] = {}
        self._pairs_memo: dict[tuple[str, str], list[tuple[int, float]]] = {}
        self._pairs_memo_size = 0
        self._df: dict[str, int] = {}
        self._total_length: int | None = None
        self._block_indexes: dict[int, Any] = {}
        self._passage_columns = PassageColumns(self._leaves)

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
            self._close_block_indexes()
            self._setup()
            old.close()
        return self

    def close(self) -> None:
        self._close_block_indexes()
        self.searcher.close()

    def _close_block_indexes(self) -> None:
        for index in self._block_indexes.values():
            if index is not None:
                index.close()
        self._block_indexes = {}

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

    def host_language(self, docnum: int) -> tuple[str, str]:
        """(host, language) of a document as indexed, without reading its stored fields."""
        i = bisect_right(self._leaf_starts, docnum) - 1
        leaf, offset = self._leaves[i]
        hosts, languages = self._docvalues.of_leaf(leaf)
        d = docnum - offset
        return hosts[d], languages[d]

    def docnum_of(self, doc_id: str) -> int | None:
        return self.searcher.document_number(doc_id=doc_id)

    def display(self, docnum: int) -> dict[str, Any]:
        """A document's stored record (url, title, description, ...): small, but documents
        written before stored passages (:mod:`.passages`) have their body in it too."""
        return self.searcher.stored_fields(docnum)

    def passages(self, docnum: int) -> Passages | None:
        """The stored body of a document as :class:`~.passages.Passages`, None for a
        document written before they existed (its body is in :meth:`display`)."""
        return self._passage_columns.of(docnum)

    def body_prefix(self, docnum: int, chars: int) -> str:
        """At least the first ``chars`` characters of the stored body (all of it when
        shorter), decompressing only the passages that hold them."""
        p = self.passages(docnum)
        if p is None:
            return (self.display(docnum).get("body") or "")[:chars]
        if not len(p):
            return ""
        return p.join(0, p.index_of(chars - 1))[:chars]

    def stored(self, docnum: int) -> dict[str, Any]:
        """Every stored field, the stored body (joined passages, if any) under ``body``."""
        f = self.display(docnum)
        if "body" not in f:
            p = self.passages(docnum)
            if p is not None:
                f = dict(f, body=p.join())
        return f

    def record(self, docnum: int) -> DocRecord:
        f = self.display(docnum)
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

    @property
    def leaves(self) -> list[tuple[Any, int]]:
        """(segment reader, docnum offset) of every segment."""
        return self._leaves

    @property
    def has_impact(self) -> bool:
        """The index has impact postings (created since they exist; see :mod:`.impact`)."""
        return has_impact(self.reader) and self.reader.doc_count_all() > 0

    def segment_lengths(self, leaf: Any) -> Any:
        """Document lengths of one segment by segment-local docnum (shared, built once per segment)."""
        return self._docvalues.lengths(leaf)

    def block_index(self, leaf: Any) -> Any:
        """The segment's impact block index (:func:`.impact.open_block_index`), opened once per view."""
        key = id(leaf)
        if key not in self._block_indexes:
            self._block_indexes[key] = open_block_index(leaf)
        return self._block_indexes[key]

    def min_length(self, leaf: Any) -> int:
        """The shortest document length in a segment (deleted ones included: a lower bound)."""
        segment = leaf.segment()
        key = ((segment.segment_id() if segment is not None else "") + ":min", leaf.doc_count_all())
        value = self._length_cache.get(key)
        if value is None:
            lengths = leaf.column_reader("length")
            value = min((int(lengths[d]) for d in range(leaf.doc_count_all())), default=0)
            self._length_cache[key] = value
        return value

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
        """(docnum, weight) of every live posting of ``term`` in ``fieldname``, in docnum order."""
        for block in self._pair_blocks(fieldname, term):
            yield from block

    def live_pairs(self, fieldname: str, term: str) -> Iterator[tuple[int, float]]:
        """(docnum, weight) of every live posting of ``term`` in ``fieldname``, in docnum order."""
        return self._pairs(fieldname, term)

    def _pair_blocks(self, fieldname: str, term: str) -> Iterator[Iterable[tuple[int, float]]]:
        """:meth:`_pairs` a posting block at a time.

        Reads Whoosh's posting blocks whole instead of calling
        ``is_active/id/weight/next`` per posting (far fewer Python calls), and
        decodes a block's delta-coded ids with ``itertools.accumulate`` (C)
        instead of Whoosh's generator; other matcher kinds (e.g. inlined single
        postings) take the generic path.
        """
        for leaf, offset in self._leaves:
            try:
                m = leaf.postings(fieldname, term)
            except TermNotFound:
                continue
            deleted: Any = None
            if type(m) is FilterMatcher and m._exclude:
                deleted, m = m._ids, m.child
            if type(m) is W3LeafMatcher and not m._byteids:
                while m.is_active():
                    if m._ids is None:
                        if m._data is None:
                            m._read_data()
                        m._ids = tuple(accumulate(m._data[0]))
                    if m._weights is None:
                        m._read_weights()
                    i = m._i
                    ids, weights = m._ids, m._weights
                    if i:
                        ids, weights = ids[i:], weights[i:]
                    if offset:
                        ids = [d + offset for d in ids]
                    if deleted is None:
                        yield zip(ids, weights)
                    else:
                        yield [(d, w) for d, w in zip(ids, weights) if d - offset not in deleted]
                    m._next_block()
            else:
                out = []
                while m.is_active():
                    d = m.id()
                    if deleted is None or d not in deleted:
                        out.append((d + offset, m.weight()))
                    m.next()
                yield out

    def _pair_list(self, fieldname: str, term: str) -> list[tuple[int, float]]:
        """:meth:`_pairs` as a list, memoized for this generation.

        A query reads each posting list up to three times (candidates, df,
        postings); short lists are kept so that blocks are decoded once.
        """
        key = (fieldname, term)
        pairs = self._pairs_memo.get(key)
        if pairs is None:
            pairs = []
            for block in self._pair_blocks(fieldname, term):
                pairs.extend(block)
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
                docs.update(map(_first, self._pair_list(fieldname, term)))
            cached = self._df[term] = len(docs)
        return cached

    def term_postings(self, term: str, restrict: set[int] | None) -> list[Posting]:
        """Postings of one term, over all documents or only ``restrict`` docnums.

        Union over fields: tf summed over the text fields, one flag per field.
        """
        acc = self.term_tf_flags(term, restrict)
        postings = [
            Posting(doc_id=self.doc_id_of(d), tf=tf, flags=flags, length=self.length_of(d))
            for d, (tf, flags) in acc.items()
        ]
        postings.sort(key=lambda p: p.doc_id)
        return postings

    def term_tf_flags(self, term: str, restrict: set[int] | None) -> dict[int, list[int]]:
        """docnum -> [tf, flags] of one term (what :meth:`term_postings` makes postings of)."""
        acc: dict[int, list[int]] = {}
        ordered: list[int] | None = None
        for fieldname, flag in POSTING_FIELDS:
            counts_tf = fieldname in TF_FIELDS
            if restrict is not None and len(restrict) * 16 < self._field_df(fieldname, term):
                # a few candidates in a long posting list: skip to each of them
                if ordered is None:
                    ordered = sorted(restrict)
                self._skip_accumulate(acc, fieldname, term, ordered, counts_tf, flag)
                continue
            pairs = self._pair_list(fieldname, term)
            if not acc and restrict is None:  # the first field: no merging
                acc = {d: [int(w + 0.5) if counts_tf else 0, flag] for d, w in pairs}
                continue
            for d, w in pairs:
                if restrict is not None and d not in restrict:
                    continue
                entry = acc.get(d)
                if entry is None:
                    entry = acc[d] = [0, 0]
                if counts_tf:
                    entry[0] += int(w + 0.5)  # weights are whole tf counts (field boost 1)
                entry[1] |= flag
        self._add_prior_bits(acc)
        return acc

    def _add_prior_bits(self, acc: dict[int, list[int]]) -> None:
        """OR each document's prior class bits (records.PRIOR_SHIFT) into its flags."""
        prior = self.memo.get("prior_bits")
        if prior is None:
            prior = self.memo["prior_bits"] = {
                d: cls << PRIOR_SHIFT for cls in range(1, 8) for d in self.docnums(Term(PRIOR_FIELD, str(cls)))
            }
        if not prior:
            return
        if len(acc) <= len(prior):
            for d, entry in acc.items():
                bits = prior.get(d)
                if bits:
                    entry[1] |= bits
        else:
            for d, bits in prior.items():
                entry = acc.get(d)
                if entry is not None:
                    entry[1] |= bits

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
