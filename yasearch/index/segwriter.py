"""A Whoosh segment writer that keeps postings per term in memory and writes them a block at a time.

Whoosh's :class:`~whoosh.writing.SegmentWriter` pushes every posting through
a generic pool as a ``(field, term, docnum, weight, value)`` tuple, sorts all
of them at commit, and hands them one at a time to the postings writer; a merge
of older segments reads every posting of theirs back the same way, into the same
pool. At ~1,700 postings per 20 KB page (the impact field doubles the body's)
that per-posting path was most of the indexing time, and merges grew with the
index.

:class:`FastSegmentWriter` writes the same files (Whoosh's W3 codec, read by
Whoosh unchanged), by another route:

* :meth:`~FastSegmentWriter.add_document` appends each posting to its term's
  list (``field -> term -> [(docnum, weight, value)]``): documents arrive in
  docnum order, so every list is already sorted and only the terms are sorted
  at commit;
* at commit the postings of the new documents and of the segments being merged
  are merged term by term (each source's terms are sorted, and their docnum
  ranges follow one another), and each term is cut into blocks of 128 that are
  handed to Whoosh's block writer whole;
* segments being merged are read a posting block at a time (one unpickling per
  block), their deleted documents dropped and their docnums moved as Whoosh's
  own merge does; their stored fields and columns are copied by Whoosh as before.

Deletions, the TOC commit and crash safety are Whoosh's, untouched. Schemas with
term vectors or spelling fields (none here) take Whoosh's own path.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterator
from itertools import accumulate, groupby
from operator import itemgetter
from typing import Any

from whoosh.codec.whoosh3 import W3LeafMatcher
from whoosh.reading import SegmentReader
from whoosh.writing import SegmentWriter

#: One term's postings from one source: (field, term bytes, docnums, weights, values).
TermPostings = tuple[str, bytes, list[int], list[float], list[bytes]]

_key = itemgetter(0, 1)


class TermPool:
    """The postings of the documents added to one writer: field -> term -> [(docnum, weight, value)]."""

    def __init__(self) -> None:
        self.fields: dict[str, dict[bytes, list[tuple[int, float, bytes]]]] = {}
        #: Postings held, and an estimate of their bytes (see :attr:`FastSegmentWriter.pool_bytes`).
        self.count = 0
        self.nbytes = 0

    def add(self, item: tuple[str, bytes, int, float, bytes | None]) -> None:
        """Whoosh's pool interface (one posting); docnums must arrive in increasing order per term."""
        fieldname, tbytes, docnum, weight, vbytes = item
        terms = self.fields.setdefault(fieldname, {})
        terms.setdefault(tbytes, []).append((docnum, weight, vbytes or b""))
        self.count += 1

    def items(self) -> Iterator[TermPostings]:
        """Every term's postings, sorted by (field, term)."""
        for fieldname in sorted(self.fields):
            terms = self.fields[fieldname]
            for tbytes in sorted(terms):
                ids, weights, values = zip(*terms[tbytes])
                yield fieldname, tbytes, ids, weights, values  # type: ignore[misc]

    def iter_postings(self) -> Iterator[tuple[str, bytes, int, float, bytes]]:
        for fieldname, tbytes, ids, weights, values in self.items():
            for d, w, v in zip(ids, weights, values):
                yield fieldname, tbytes, d, w, v

    def cleanup(self) -> None:
        self.fields = {}
        self.count = self.nbytes = 0


def segment_items(reader: SegmentReader, schema: Any, base: int, docmap: dict[int, int] | None) -> Iterator[TermPostings]:
    """Every term's live postings in one segment, docnums moved to the new segment's
    (``docmap``: old -> new for live documents, or None: ``base`` + old), sorted by (field, term)."""
    terms = reader._terms
    codec, postfile = terms._codec, terms._postfile
    deleted = reader.deleted_docs_set if reader.has_deletions() else None
    for (fieldname, tbytes), info in terms.items():
        if fieldname not in schema:
            continue
        fmt = schema[fieldname].format
        keep_values = fmt.fixed_value_size() != 0
        m = codec.postings_reader(postfile, info, fmt)
        ids: list[int] = []
        weights: list[float] = []
        values: list[bytes] = []
        if type(m) is W3LeafMatcher and not m._byteids:
            while True:
                m._read_data()
                ids.extend(accumulate(m._data[0]))
                m._read_weights()
                weights.extend(m._weights)
                if keep_values:
                    m._read_values()
                    values.extend(m._values)
                if m._lastblock:
                    break
                m._goto(m._nextoffset)
        else:
            while m.is_active():
                ids.append(m.id())
                weights.append(m.weight())
                if keep_values:
                    values.append(m.value())
                m.next()
        if deleted:
            live = [i for i, d in enumerate(ids) if d not in deleted]
            if len(live) < len(ids):
                ids = [ids[i] for i in live]
                weights = [weights[i] for i in live]
                if keep_values:
                    values = [values[i] for i in live]
        if not ids:
            continue
        if docmap is not None:
            ids = [docmap[d] for d in ids]
        elif base:
            ids = [d + base for d in ids]
        yield fieldname, tbytes, ids, weights, values


def write_terms(fieldwriter: Any, schema: Any, items: Iterator[TermPostings]) -> None:
    """Write every term of ``items`` (sorted by (field, term); one term may come from several
    sources in a row, in docnum order) with Whoosh's W3 field writer, a block at a time."""
    current = None
    for (fieldname, tbytes), group in groupby(items, key=_key):
        parts = list(group)
        if len(parts) == 1:
            _f, _t, ids, weights, values = parts[0]
        else:
            ids, weights, values = [], [], []
            for _f, _t, i, w, v in parts:
                ids += i
                weights += w
                values += v
        if fieldname != current:
            if current is not None:
                fieldwriter.finish_field()
            fieldwriter.start_field(fieldname, schema[fieldname])
            current = fieldname
            keep_values = schema[fieldname].format.fixed_value_size() != 0
        pw = fieldwriter._postwriter
        limit = pw._blocklimit
        fieldwriter.start_term(tbytes)
        n = len(ids)
        for start in range(0, n, limit):
            end = start + limit
            pw._ids = array("I", ids[start:end])
            block_weights = array("f", weights[start:end])
            pw._weights = block_weights
            pw._maxweight = max(block_weights)
            pw._values = values[start:end] if keep_values else []
            if end < n:
                pw._write_block()
        fieldwriter.finish_term()
    if current is not None:
        fieldwriter.finish_field()


class FastSegmentWriter(SegmentWriter):
    """Whoosh's segment writer with per-term in-memory postings and block-wise merges (module docstring)."""

    def __init__(self, ix: Any, **kwargs: Any) -> None:
        super().__init__(ix, **kwargs)
        self._fast = not any(f.vector or f.separate_spelling() for _n, f in self.schema.items())
        if self._fast:
            self.pool = TermPool()
        self._merged: list[tuple[Any, int, dict[int, int] | None]] = []

    @property
    def pool_bytes(self) -> int:
        """Estimated memory the postings held for the next commit take (0 on Whoosh's own path)."""
        return self.pool.nbytes if self._fast else 0

    def add_document(self, **fields: Any) -> None:
        if not self._fast or any(k.startswith("_") and not k.startswith("_stored_") for k in fields):
            return super().add_document(**fields)  # boosts, or a schema this path does not cover
        self._check_state()
        perdocwriter = self.perdocwriter
        schema = self.schema
        docnum = self.docnum
        pool = self.pool
        pfields = pool.fields
        fieldnames = sorted(name for name in fields if not name.startswith("_"))
        self._check_fields(schema, fieldnames)
        perdocwriter.start_doc(docnum)
        count = 0
        nbytes = 0
        try:
            for fieldname in fieldnames:
                value = fields[fieldname]
                if value is None:
                    continue
                field = schema[fieldname]
                length = 0
                if field.indexed:
                    items = field.index(value)
                    terms = pfields.get(fieldname)
                    if terms is None:
                        terms = pfields[fieldname] = {}
                    for tbytes, freq, weight, vbytes in items:
                        length += freq
                        posting = (docnum, weight, vbytes)
                        lst = terms.get(tbytes)
                        if lst is None:
                            terms[tbytes] = [posting]
                            nbytes += 100 + len(tbytes)
                        else:
                            lst.append(posting)
                        nbytes += 72 + len(vbytes)
                        count += 1
                    if not field.scorable:
                        length = 0
                customval = fields.get("_stored_%s" % fieldname, value)
                perdocwriter.add_field(fieldname, field, customval if field.stored else None, length)
                column = field.column_type
                if column and customval is not None:
                    perdocwriter.add_column_value(fieldname, column, field.to_column_value(customval))
        except Exception:
            perdocwriter.cancel_doc()
            raise
        perdocwriter.finish_doc()
        pool.count += count
        pool.nbytes += nbytes
        self._added = True
        self.docnum += 1

    def add_reader(self, reader: Any) -> None:
        if not self._fast or not isinstance(reader, SegmentReader):
            return super().add_reader(reader)
        self._check_state()
        basedoc = self.docnum
        ndxnames = {name for name in reader.indexed_field_names() if name in self.schema}
        docmap = self.write_per_doc(set(self.schema.names()) | ndxnames, reader)
        self._merged.append((reader.segment(), basedoc, docmap))
        self._added = True

    def _flush_segment(self) -> None:
        if not self._fast:
            return super()._flush_segment()
        self.perdocwriter.close()
        readers = [SegmentReader(self.storage, self.schema, seg) for seg, _b, _m in self._merged]
        try:
            sources = [self.pool.items()] + [
                segment_items(r, self.schema, base, docmap) for r, (_s, base, docmap) in zip(readers, self._merged)
            ]
            items = sources[0] if len(sources) == 1 else heapq.merge(*sources, key=_key)
            write_terms(self.fieldwriter, self.schema, items)
        finally:
            for r in readers:
                r.close()
        self.fieldwriter.close()

    def _close_segment(self) -> None:
        super()._close_segment()
        self._merged = []
