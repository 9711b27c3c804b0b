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
from collections.abc import Iterator, Sequence
from itertools import accumulate, groupby
from operator import itemgetter, sub
from pickle import dumps
from typing import Any

from whoosh.codec.whoosh3 import WHOOSH3_HEADER_MAGIC, W3LeafMatcher, W3TermInfo
from whoosh.filedb.filetables import HashWriter
from whoosh.reading import SegmentReader
from whoosh.system import pack_int, pack_long, pack_ushort
from whoosh.util.numeric import length_to_byte
from whoosh.writing import SegmentWriter

from yasearch.index.impact import BLOCKS_EXT, DENSE_MIN_DOCS, DENSE_SHARE, dense_weights, encode_blocks, frontier
from yasearch.index.schema import IMPACT_FIELD, ImpactField

#: One term's postings from one source: (field, term bytes, docnums, weights, values).
TermPostings = tuple[str, bytes, Sequence[int], Sequence[float], Sequence[bytes]]
#: A term's postings in the pool: docnums, weights, values (empty for formats without values).
Entry = tuple[array, array, list]

_key = itemgetter(0, 1)
_TERMINFO = W3TermInfo._struct
_NO_LENGTH = length_to_byte(0)


class TermPool:
    """The postings of the documents added to one writer: field -> term -> (docnums, weights, values).

    Arrays, not a tuple per posting: nothing for the garbage collector to track,
    and freeing them after the commit is cheap."""

    def __init__(self) -> None:
        self.fields: dict[str, dict[Any, Entry]] = {}
        #: An estimate of the bytes held (see :attr:`FastSegmentWriter.pool_bytes`).
        self.nbytes = 0

    def add(self, item: tuple[str, bytes, int, float, bytes | None]) -> None:
        """Whoosh's pool interface (one posting); docnums must arrive in increasing order per term."""
        fieldname, tbytes, docnum, weight, vbytes = item
        terms = self.fields.setdefault(fieldname, {})
        entry = terms.get(tbytes)
        if entry is None:
            entry = terms[tbytes] = (array("I"), array("f"), [])
        entry[0].append(docnum)
        entry[1].append(weight)
        if vbytes:
            entry[2].append(vbytes)
        self.nbytes += 40 + len(vbytes or b"")

    def items(self) -> Iterator[TermPostings]:
        """Every term's postings, sorted by (field, term).

        Fields indexed by the fast path key their terms by ``str`` (encoded here,
        once per term): code point order is UTF-8 byte order, so sorting either
        gives Whoosh's order. A term keyed both ways (never, in practice) is merged.
        """
        for fieldname in sorted(self.fields):
            as_bytes: dict[bytes, Entry] = {}
            for key, entry in self.fields[fieldname].items():
                tbytes = key.encode("utf-8") if type(key) is str else key
                other = as_bytes.get(tbytes)
                as_bytes[tbytes] = entry if other is None else _merge_entries(other, entry)
            for tbytes in sorted(as_bytes):
                ids, weights, values = as_bytes[tbytes]
                yield fieldname, tbytes, ids, weights, values

    def iter_postings(self) -> Iterator[tuple[str, bytes, int, float, bytes]]:
        for fieldname, tbytes, ids, weights, values in self.items():
            for d, w, v in zip(ids, weights, values or [b""] * len(ids)):
                yield fieldname, tbytes, d, w, v

    def cleanup(self) -> None:
        self.fields = {}
        self.nbytes = 0


def _merge_entries(a: Entry, b: Entry) -> Entry:
    ids, weights, values = a[0] + b[0], a[1] + b[1], a[2] + b[2]
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return (array("I", [ids[i] for i in order]), array("f", [weights[i] for i in order]),
            [values[i] for i in order] if values else [])


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
        ids: Any = array("I")
        weights: Any = array("f")
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
                ids = array("I", [ids[i] for i in live])
                weights = array("f", [weights[i] for i in live])
                if keep_values:
                    values = [values[i] for i in live]
        if not ids:
            continue
        if docmap is not None:
            ids = array("I", [docmap[d] for d in ids])
        elif base:
            ids = array("I", [d + base for d in ids])
        yield fieldname, tbytes, ids, weights, values


def write_terms(fieldwriter: Any, schema: Any, items: Iterator[TermPostings], blocks: Any = None,
                lengths: Sequence[int] = ()) -> None:
    """Write every term of ``items`` (sorted by (field, term); one term may come from several
    sources in a row, in docnum order) into a W3 field writer's files: the bytes Whoosh's
    ``W3PostingsWriter`` writes, with one write and no per-posting call per term.

    With ``blocks`` (a :class:`whoosh.filedb.filetables.HashWriter`), each impact term's
    block headers go there too, with each block's shortest document by ``lengths``
    (docnum -> document length), its Pareto-best (wtf, length) pairs and its place in
    the postings file (:func:`yasearch.index.impact.encode_blocks`, version 2)."""
    current = None
    postfile = fieldwriter._postfile
    pos = postfile.tell()
    write = postfile.write
    tindex_add = fieldwriter._tindex.add
    fieldkey = b""
    limit = fieldwriter._codec._blocklimit
    fixedsize: int | None = None
    for (fieldname, tbytes), group in groupby(items, key=_key):
        parts = list(group)
        _f, _t, ids, weights, values = parts[0]
        if len(parts) > 1:
            ids, weights, values = array("I", ids), array("f", weights), list(values)
            for _f, _t, i, w, v in parts[1:]:
                ids += i
                weights += w
                values += v
        if fieldname != current:
            if current is not None:
                fieldwriter.finish_field()
            fieldwriter.start_field(fieldname, schema[fieldname])
            current = fieldname
            fieldkey = pack_ushort(fieldwriter._fieldid)
            fixedsize = schema[fieldname].format.fixed_value_size()
            headers = blocks is not None and fieldname == IMPACT_FIELD
        n = len(ids)
        chunks = [WHOOSH3_HEADER_MAGIC]
        total = 0.0
        top: Any = 0
        at = pos + len(WHOOSH3_HEADER_MAGIC)
        # a single block's header comes with the term's matcher; a dense term needs a record anyway
        dense = headers and len(lengths) >= DENSE_MIN_DOCS and n * DENSE_SHARE >= len(lengths)
        indexed = headers and (n > limit or dense)
        if indexed:
            lasts, maxes, minlens, counts, places = array("I"), array("f"), array("I"), array("I"), array("Q")
            fronts = []
        for start in range(0, n, limit):
            end = min(n, start + limit)
            bids = ids[start:end]
            bw = weights[start:end]
            deltas = (bids[0],) + tuple(map(sub, bids[1:], bids[:-1]))
            lo, hi = min(bw), max(bw)
            if lo == hi:
                mini_w: Any = None if lo == 1.0 else bw[0]
            else:
                mini_w = tuple(bw)
            if fixedsize is None or fixedsize < 0:
                mini_v: Any = tuple(values[start:end])
            elif fixedsize == 0:
                mini_v = None
            else:
                mini_v = b"".join(values[start:end])
            data = dumps((deltas, mini_w, mini_v), 2)
            block_top = hi if hi > 0 else 0
            info = dumps((end - start, bids[-1], block_top, 0, 0, _NO_LENGTH), 2)
            size = len(info) + len(data)
            chunks += (pack_int(-size if end == n else size), info, data)
            total += sum(bw)
            if block_top > top:
                top = block_top
            if indexed:
                blens = list(map(lengths.__getitem__, bids)) if lengths else [0] * (end - start)
                lasts.append(bids[-1])
                maxes.append(hi)
                minlens.append(min(blens))
                counts.append(end - start)
                places.append(at)
                fronts.append(frontier(bw, blens))
            at += 4 + size
        blob = b"".join(chunks)
        write(blob)
        if indexed:
            blocks.add(tbytes, encode_blocks(lasts, maxes, minlens, counts, places, fronts,
                                             dense_weights(ids, weights, len(lengths)) if dense else None))
        tindex_add(fieldkey + tbytes, _TERMINFO.pack(False, total, n, 0, _NO_LENGTH, top, ids[0], ids[-1])
                   + pack_long(pos) + pack_int(len(blob)))
        pos += len(blob)
    if current is not None:
        fieldwriter.finish_field()


def _add_postings(field: Any, items: Any, docnum: int, terms: dict[Any, Entry]) -> tuple[int, int]:
    """Whoosh's ``(term bytes, freq, weight, value)`` postings of one field into the
    pool; returns (the field length, bytes added, roughly)."""
    keep_values = field.format.fixed_value_size() != 0
    length = 0
    nbytes = 0
    for tbytes, freq, weight, vbytes in items:
        length += freq
        entry = terms.get(tbytes)
        if entry is None:
            entry = terms[tbytes] = (array("I"), array("f"), [])
            nbytes += 400 + len(tbytes)
        entry[0].append(docnum)
        entry[1].append(weight)
        if keep_values:
            entry[2].append(vbytes)
            nbytes += len(vbytes)
        nbytes += 8
    return length, nbytes


class FastSegmentWriter(SegmentWriter):
    """Whoosh's segment writer with per-term in-memory postings and block-wise merges (module docstring)."""

    def __init__(self, ix: Any, **kwargs: Any) -> None:
        super().__init__(ix, **kwargs)
        self._fast = not any(f.vector or f.separate_spelling() for _n, f in self.schema.items())
        if self._fast:
            self.pool = TermPool()
        self._merged: list[tuple[Any, int, dict[int, int] | None]] = []
        #: docnum -> document length (the ``length`` field) of the new segment, for the block index
        self._lengths = array("I")

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
        nbytes = 0
        try:
            for fieldname in fieldnames:
                value = fields[fieldname]
                if value is None:
                    continue
                field = schema[fieldname]
                length = 0
                if field.indexed:
                    terms = pfields.get(fieldname)
                    if terms is None:
                        terms = pfields[fieldname] = {}
                    fast = getattr(field, "index_into", None)
                    if fast is not None and type(value) is str:  # fastpath.FastText
                        length, added = fast(value, docnum, terms)
                        nbytes += added
                    elif type(field) is ImpactField and type(value) is dict:
                        for term, wtf in value.items():
                            entry = terms.get(term)
                            if entry is None:
                                entry = terms[term] = (array("I"), array("f"), [])
                                nbytes += 400
                            entry[0].append(docnum)
                            entry[1].append(wtf)
                        nbytes += 8 * len(value)
                    else:
                        length, added = _add_postings(field, field.index(value), docnum, terms)
                        nbytes += added
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
        self._lengths.append(max(0, int(fields.get("length") or 0)))
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
        lengths = reader.column_reader("length") if reader.has_column("length") else None
        self._lengths.extend(int(lengths[d]) if lengths is not None else 0 for d in reader.all_doc_ids())
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
            blocks = HashWriter(self.newsegment.create_file(self.storage, BLOCKS_EXT)) \
                if IMPACT_FIELD in self.schema and len(self._lengths) == self.docnum else None
            try:
                write_terms(self.fieldwriter, self.schema, items, blocks, self._lengths)
                if blocks is not None:
                    blocks.close()
            except BaseException:
                # a full disk, say: close the new segment's files without writing more,
                # so that removing them frees their space (the writer is then aborted)
                fw = self.fieldwriter
                for f in (getattr(blocks, "dbfile", None), fw._postfile, fw._tindex.dbfile):
                    try:
                        if f is not None:
                            f.close()
                    except OSError:
                        pass
                fw.is_closed = True
                raise
        finally:
            for r in readers:
                r.close()
        self.fieldwriter.close()

    def _close_segment(self) -> None:
        super()._close_segment()
        self._merged = []
