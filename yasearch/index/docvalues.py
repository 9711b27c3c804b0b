"""Per-document host and language without reading stored fields.

Facets count matches by host and by language. Reading them from the stored
fields loads each document's whole stored record (its body, up to 100 KB):
~40 us per document, 40 ms for 1,000 matches. Both are also indexed as
untokenized ID fields, so one pass over each field's posting lists gives
every document's value; segments never change apart from deletions, so the
arrays are built once per segment (on the first query that wants facets) and
shared by every reader thread until the segment is merged away.

Document lengths (BM25's |d|) are kept the same way for top-k evaluation, which
reads one per scored match: an array lookup instead of a column read.
"""

from __future__ import annotations

import threading
from array import array
from typing import Any

#: Segments whose arrays are kept (older ones are dropped first).
_MAX_SEGMENTS = 64


class DocValues:
    """segment id -> (hosts, languages): value of each segment-local docnum ("" when none)."""

    def __init__(self) -> None:
        self._by_segment: dict[str, tuple[list[str], list[str]]] = {}
        self._lengths: dict[str, array] = {}
        self._lock = threading.Lock()

    def lengths(self, leaf: Any) -> array:
        """The ``length`` of each segment-local docnum (deleted documents included)."""
        segment = leaf.segment()
        key = segment.segment_id() if segment is not None else ""
        with self._lock:
            hit = self._lengths.get(key)
        if hit is not None and len(hit) == leaf.doc_count_all():
            return hit
        n = leaf.doc_count_all()
        built = array("Q", (int(v) for v in leaf.column_reader("length"))) if n else array("Q")
        with self._lock:
            if len(self._lengths) >= _MAX_SEGMENTS:
                self._lengths.pop(next(iter(self._lengths)))
            self._lengths[key] = built
        return built

    def of_leaf(self, leaf: Any) -> tuple[list[str], list[str]]:
        segment = leaf.segment()
        key = segment.segment_id() if segment is not None else ""
        with self._lock:
            hit = self._by_segment.get(key)
        if hit is not None:
            return hit
        built = (_values(leaf, "host"), _values(leaf, "language"))
        with self._lock:
            if len(self._by_segment) >= _MAX_SEGMENTS:
                self._by_segment.pop(next(iter(self._by_segment)))
            self._by_segment[key] = built
        return built


def _values(leaf: Any, fieldname: str) -> list[str]:
    """The single term each document has in ID field ``fieldname`` (deleted documents included)."""
    out = [""] * leaf.doc_count_all()
    if fieldname not in leaf.schema or not out:
        return out
    for raw in leaf.lexicon(fieldname):
        value = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        for d in leaf.postings(fieldname, raw).all_ids():
            out[d] = value
    return out
