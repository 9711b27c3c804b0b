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
and is bounded by the segment's shortest document). A
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


def encode_blocks(lasts: array, maxes: array, minlens: array, counts: array, places: array) -> bytes:
    """One term's block index record: the number of blocks, then each array whole
    (last docnum 'I', max wtf 'f', shortest document 'I', count 'I', place 'Q'; native order)."""
    return len(lasts).to_bytes(4, "little") + b"".join(a.tobytes() for a in (lasts, maxes, minlens, counts, places))


def decode_blocks(raw: bytes) -> tuple[array, array, array, array, array]:
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
    raw = None if index is None else index.get(term.encode("utf-8"))
    try:
        m = leaf.postings(IMPACT_FIELD, term)
    except TermNotFound:
        return []
    deleted: Any = None
    if type(m) is FilterMatcher and m._exclude:
        deleted, m = m._ids, m.child
    if not m.is_active():
        return []
    if raw is not None and type(m) is W3LeafMatcher and not m._byteids:
        lasts, maxes, minlens, counts, places = decode_blocks(raw)
        blocks = []
        previous = -1
        for last, top, shortest, count, place in zip(lasts, maxes, minlens, counts, places):
            blocks.append(Block(offset + previous + 1, offset + last, count, top, m, place, offset, deleted,
                                min_len=shortest))
            previous = last
        return blocks
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
        return [Block(offset + (first or 0), offset + last, count, max_w, m, None, offset, deleted, min_len=min_len)]
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
    return blocks
