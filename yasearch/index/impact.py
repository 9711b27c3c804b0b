"""Block-level access to the impact postings, for top-k evaluation.

Each term has one posting list in the impact field (see
:class:`yasearch.index.schema.ImpactField`): docnum and ``wtf``. Whoosh writes
it in blocks of up to 128 postings, each with a small header holding the
block's last docnum and its maximum weight. :func:`term_blocks` reads only the
headers; a block's postings are decoded on demand (:meth:`Block.load`), so a
search can bound a block's best possible score and skip blocks that cannot
reach the top k.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from whoosh.codec.whoosh3 import W3LeafMatcher
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


def has_impact(reader: Any) -> bool:
    """The index was created with the impact field (indexes created before have none)."""
    return IMPACT_FIELD in reader.schema


def term_blocks(leaf: Any, offset: int, term: str) -> list[Block]:
    """The blocks of ``term``'s impact postings in one segment (headers only), in docnum order."""
    try:
        m = leaf.postings(IMPACT_FIELD, term)
    except TermNotFound:
        return []
    deleted: Any = None
    if type(m) is FilterMatcher and m._exclude:
        deleted, m = m._ids, m.child
    if not m.is_active():
        return []
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
        return [Block(offset + (first or 0), offset + last, count, max_w, m, None, offset, deleted)]
    blocks: list[Block] = []
    position = m._baseoffset
    previous = -1
    while True:
        m._goto(position)
        blocks.append(Block(offset + previous + 1, offset + m._maxid, m._blocklength, m._maxweight, m, position,
                            offset, deleted))
        previous = m._maxid
        if m._lastblock:
            break
        position = m._nextoffset
    return blocks
