"""Block-level access to the impact postings, for top-k evaluation.

Each term has one posting list in the impact field (see
:class:`yasearch.index.schema.ImpactField`): docnum and ``wtf``. Whoosh writes
it in blocks of up to 128 postings, each with a small header holding the
block's last docnum and its maximum weight. :func:`term_blocks` reads only the
headers; a block's postings are decoded on demand (:meth:`Block.load`), so a
search can bound a block's best possible score and skip blocks that cannot
reach the top k.

Segments written by :class:`yasearch.index.segwriter.FastSegmentWriter` also
hold a **block index** (``<segment>.ybk``, inside the compound segment file):
per impact term of more than one block, every block's last docnum, maximum
``wtf``, shortest document (``length``), posting count and place in the postings
file, in one record (a term of one block has its header read with its matcher,
and is bounded by the segment's shortest document). Version 2 records
(:func:`encode_blocks`) add each block's Pareto-best (wtf, length) pairs and, for
a term in at least a quarter of the segment's documents, a **dense section**: a
byte per document, twice its wtf (:func:`dense_weights`). A
query then reads one record per term and segment instead of walking every block
header (which grew with the term's document frequency), and bounds each block by
its own shortest document instead of the segment's. Segments without it (written
before, or by Whoosh's own writer) are read header by header as before.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from whoosh.codec.whoosh3 import W3LeafMatcher
from whoosh.filedb.filetables import HashReader
from whoosh.matching.wrappers import FilterMatcher
from whoosh.reading import TermNotFound

from yasearch.index.schema import IMPACT_FIELD


@dataclass
class Block:
    """One posting block of a term in one segment (docnums are global: segment offset added)."""

    first: int  # a lower bound of the block's first docnum (previous block's last + 1)
    last: int
    count: int
    max_wtf: float
    _matcher: Any
    _position: int | None  # None: the postings were given inline
    _offset: int
    _deleted: Any
    _pairs: dict[int, float] | None = None
    #: A lower bound of the block's documents' lengths (its shortest, or the segment's).
    min_len: int = 0
    #: (wtf, length) pairs such that every posting of the block has a wtf no larger and a
    #: length no shorter than one of them (its Pareto-best postings; :func:`frontier`).
    #: None: only (``max_wtf``, ``min_len``) is known.
    pairs: tuple[tuple[float, int], ...] | None = None

    def best(self) -> tuple[tuple[float, int], ...]:
        """The pairs bounding the block's postings (see ``pairs``)."""
        return self.pairs or ((self.max_wtf, self.min_len),)

    def load(self) -> dict[int, float]:
        """docnum -> wtf of the block's live postings."""
        if self._pairs is None:
            m = self._matcher
            if self._position is None:  # inlined or generic matcher: read it all
                ids, weights = [], []
                while m.is_active():
                    ids.append(m.id())
                    weights.append(m.weight())
                    m.next()
            else:
                m._goto(self._position)
                m._read_data()
                ids = tuple(accumulate(m._data[0]))
                m._read_weights()
                weights = m._weights
            off, deleted = self._offset, self._deleted
            if deleted:
                self._pairs = {d + off: w for d, w in zip(ids, weights) if d not in deleted}
            else:
                self._pairs = dict(zip([d + off for d in ids] if off else ids, weights))
        return self._pairs


#: Extension of a segment's block index file.
BLOCKS_EXT = ".ybk"

#: Marks the frontier section that follows the block arrays in a version 2 record.
FRONTIER_MARK = b"\xffPF2"

#: At most this many (wtf, length) pairs bound a block (:func:`frontier`).
MAX_PAIRS = 8


def frontier(wtfs: Any, lengths: Any) -> list[tuple[float, int]]:
    """The Pareto-best (wtf, length) pairs of one block's postings, highest wtf first:
    every posting has a wtf no larger and a length no shorter than one of them.

    BM25 rises with wtf and falls with length, so the block's best score for any
    idf and average length is the best of these pairs' scores. Beyond
    :data:`MAX_PAIRS`, neighbours are merged into (larger wtf, shorter length):
    still a bound, only looser."""
    out: list[tuple[float, int]] = []
    shortest = None
    for w, n in sorted(zip(wtfs, lengths), key=lambda p: (-p[0], p[1])):
        if shortest is None or n < shortest:
            out.append((w, n))
            shortest = n
    while len(out) > MAX_PAIRS:
        merged = [(a[0], b[1]) for a, b in zip(out[0::2], out[1::2])]
        out = merged + out[len(merged) * 2 :]
    return out


#: Marks the dense section: the term's wtf of every document of the segment, one byte each.
DENSE_MARK = b"\xffDN1"

#: A term has a dense section in a segment of at least this many documents...
DENSE_MIN_DOCS = 64
#: ... when at least one document in this many holds it.
DENSE_SHARE = 4


def dense_weights(ids: Any, weights: Any, n_docs: int) -> bytes | None:
    """One byte per document of the segment: twice the term's wtf there, 0 where it is
    absent; None when a wtf is not a multiple of 0.5 in (0, 127.5] (then it has none)."""
    out = bytearray(n_docs)
    for d, w in zip(ids, weights):
        v = w * 2.0
        if not 0.0 < v <= 255.0 or v != int(v):
            return None
        out[d] = int(v)
    return bytes(out)


def encode_blocks(lasts: array, maxes: array, minlens: array, counts: array, places: array,
                  frontiers: list[list[tuple[float, int]]] | None = None, dense: bytes | None = None) -> bytes:
    """One term's block index record: the number of blocks, then each array whole
    (last docnum 'I', max wtf 'f', shortest document 'I', count 'I', place 'Q'; native order).

    Version 2 appends, with ``frontiers`` (one per block), :data:`FRONTIER_MARK`, the
    number of pairs of each block ('B'), then every pair's wtf ('f') and length ('I');
    then, with ``dense`` (:func:`dense_weights`), :data:`DENSE_MARK` and those bytes.
    Version 1 records end after the five arrays; a version 1 reader ignores the rest."""
    out = len(lasts).to_bytes(4, "little") + b"".join(a.tobytes() for a in (lasts, maxes, minlens, counts, places))
    if frontiers is not None:
        sizes = array("B", [len(f) for f in frontiers])
        wtfs = array("f", [w for f in frontiers for w, _n in f])
        lengths = array("I", [n for f in frontiers for _w, n in f])
        out += FRONTIER_MARK + sizes.tobytes() + wtfs.tobytes() + lengths.tobytes()
    if dense is not None:
        out += DENSE_MARK + dense
    return out


def decode_blocks(raw: bytes) -> tuple[array, array, array, array, array]:
    """The five block arrays of a record (either version)."""
    n = int.from_bytes(raw[:4], "little")
    out = []
    at = 4
    for code in "IfIIQ":
        a = array(code)
        size = a.itemsize * n
        a.frombytes(raw[at : at + size])
        at += size
        out.append(a)
    return out[0], out[1], out[2], out[3], out[4]


def decode_extra(raw: bytes) -> tuple[list[tuple[tuple[float, int], ...]] | None, bytes | None]:
    """(each block's (wtf, length) pairs, the dense section) of a version 2 record; either
    None when absent (always for a version 1 record)."""
    n = int.from_bytes(raw[:4], "little")
    at = 4 + 24 * n
    fronts = None
    if raw[at : at + len(FRONTIER_MARK)] == FRONTIER_MARK:
        at += len(FRONTIER_MARK)
        sizes = array("B")
        sizes.frombytes(raw[at : at + n])
        at += n
        total = sum(sizes)
        wtfs, lengths = array("f"), array("I")
        wtfs.frombytes(raw[at : at + 4 * total])
        lengths.frombytes(raw[at + 4 * total : at + 8 * total])
        at += 8 * total
        pairs = list(zip(wtfs, lengths))
        fronts = []
        start = 0
        for size in sizes:
            fronts.append(tuple(pairs[start : start + size]))
            start += size
    dense = None
    if raw[at : at + len(DENSE_MARK)] == DENSE_MARK:
        dense = raw[at + len(DENSE_MARK) :]
    return fronts, dense


def dense_section(index: Any, term: str) -> bytes | None:
    """The term's dense section in a segment's block index (None: none, or no index)."""
    raw = None if index is None else index.get(term.encode("utf-8"))
    if raw is None:
        return None
    n = int.from_bytes(raw[:4], "little")
    at = 4 + 24 * n
    if raw[at : at + len(FRONTIER_MARK)] == FRONTIER_MARK:
        at += len(FRONTIER_MARK)
        at += n + 8 * sum(raw[at : at + n])
    return raw[at + len(DENSE_MARK) :] if raw[at : at + len(DENSE_MARK)] == DENSE_MARK else None


def open_block_index(leaf: Any) -> Any:
    """The block index of one segment, None if it has none (see the module docstring)."""
    segment = leaf.segment()
    if segment is None:
        return None
    try:
        storage = leaf.storage()
        name = segment.make_filename(BLOCKS_EXT)
        if not storage.file_exists(name):
            return None
        return HashReader(storage.open_file(name), storage.file_length(name))
    except (OSError, ValueError, KeyError):
        return None


def has_impact(reader: Any) -> bool:
    """The index was created with the impact field (indexes created before have none)."""
    return IMPACT_FIELD in reader.schema


def term_blocks(leaf: Any, offset: int, term: str, index: Any = None, min_len: int = 0) -> list[Block]:
    """The blocks of ``term``'s impact postings in one segment (headers only), in docnum order.

    ``index``: the segment's block index (:func:`open_block_index`), else each block
    header is read and ``min_len`` (the segment's shortest document) bounds them all."""
    return term_postings(leaf, offset, term, index, min_len)[0]


def term_postings(leaf: Any, offset: int, term: str, index: Any = None,
                  min_len: int = 0) -> tuple[list[Block], bytes | None]:
    """:func:`term_blocks` and the term's dense section in the segment (None if it has none)."""
    raw = None if index is None else index.get(term.encode("utf-8"))
    try:
        m = leaf.postings(IMPACT_FIELD, term)
    except TermNotFound:
        return [], None
    deleted: Any = None
    if type(m) is FilterMatcher and m._exclude:
        deleted, m = m._ids, m.child
    if not m.is_active():
        return [], None
    if raw is not None and type(m) is W3LeafMatcher and not m._byteids:
        lasts, maxes, minlens, counts, places = decode_blocks(raw)
        fronts, dense = decode_extra(raw)
        blocks = []
        previous = -1
        for j, (last, top, shortest, count, place) in enumerate(zip(lasts, maxes, minlens, counts, places)):
            blocks.append(Block(offset + previous + 1, offset + last, count, top, m, place, offset, deleted,
                                min_len=shortest, pairs=fronts[j] if fronts else None))
            previous = last
        return blocks, dense
    if type(m) is not W3LeafMatcher or m._byteids:
        count = 0
        max_w = 0.0
        first = None
        last = 0
        probe = leaf.postings(IMPACT_FIELD, term)
        while probe.is_active():
            d = probe.id()
            first = d if first is None else first
            last = d
            max_w = max(max_w, probe.weight())
            count += 1
            probe.next()
        return [Block(offset + (first or 0), offset + last, count, max_w, m, None, offset, deleted,
                      min_len=min_len)], None
    blocks: list[Block] = []
    position = m._baseoffset
    previous = -1
    while True:
        m._goto(position)
        blocks.append(Block(offset + previous + 1, offset + m._maxid, m._blocklength, m._maxweight, m, position,
                            offset, deleted, min_len=min_len))
        previous = m._maxid
        if m._lastblock:
            break
        position = m._nextoffset
    return blocks, None
