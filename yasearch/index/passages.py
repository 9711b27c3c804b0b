"""Stored passages: a document's stored body cut into windows, each compressed alone,
with a small filter of the terms each window holds.

Whoosh keeps every stored field of a document in one zlib record, so showing a
result (or only looking at its description for duplicate collapse) used to
decompress its whole stored body, up to :data:`~yasearch.index.schema.MAX_STORED_BODY_CHARS`
characters. New indexes keep the body out of that record: the ``passages``
column (:class:`~yasearch.index.schema.PassagesField`) holds one record per
document, and a snippet reads only the windows it needs
(:func:`yasearch.snippets.passage_snippet`).

A body of at most :data:`SINGLE_MAX_CHARS` characters (an ordinary page) is
one passage without a filter: indexing it costs what storing it in the record
cost. A longer one is cut into passages of about :data:`PASSAGE_CHARS`
characters, right after a character no token can hold (so a token never spans
two passages and the passages joined are the body again), and each passage
gets the sorted 16-bit hashes of its analyzed terms: a snippet skips passages
that cannot hold a query term (a false positive, ~1% per term, costs one read;
there are no false negatives).

Record layout (little-endian), empty for an empty body::

    version (1 byte) | n (uint16) | n x char length (uint32) | n x compressed length (uint32)
    | n x filter entries (uint16, 0 = no filter) | filters (uint16 each) | compressed passages
"""

from __future__ import annotations

import re
import struct
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from typing import Any

from yasearch.analysis import _TERM_CACHE, TOKEN_RE, parts_of, term_of

VERSION = 1
#: The schema's column of passage records (:class:`yasearch.index.schema.PassagesField`).
FIELD = "passages"
#: Target size of one passage, in characters.
PASSAGE_CHARS = 8_000
#: Bodies up to this long are stored as one passage without a term filter.
SINGLE_MAX_CHARS = 24_000
#: How far past a passage's target end a cut point is looked for.
_CUT_SEARCH = 1_000
#: zlib level (Whoosh compresses stored records at 3).
_LEVEL = 3
#: A character no token holds (tokens are ``[\w*]+(\.?[\w*]+)*``): a safe place to cut.
_SEPARATOR = re.compile(r"[^\w*.]")
_HEAD = struct.Struct("<BH")
_LITTLE = array("H", [1]).tobytes() == b"\x01\x00"


#: term -> :func:`term_hash` (bounded memo: the same words recur on every page)
_HASHES: dict[str, int] = {}
_HASHES_MAX = 200_000


def term_hash(term: str) -> int:
    """The 16-bit hash of an analyzed term kept in passage filters (stable across processes)."""
    h = _HASHES.get(term)
    if h is None:
        if len(_HASHES) >= _HASHES_MAX:
            _HASHES.clear()
        h = _HASHES[term] = zlib.crc32(term.encode("utf-8")) & 0xFFFF
    return h


def term_filter(text: str) -> array:
    """The sorted distinct :func:`term_hash` of the terms :func:`yasearch.analysis.analyze`
    finds in ``text`` (computed over its distinct tokens, with both memos read inline:
    this runs over every stored passage of a long page)."""
    term_get = _TERM_CACHE.get
    hash_get = _HASHES.get
    hashes: set[int] = set()
    add = hashes.add
    for tok in set(TOKEN_RE.findall(text)):
        term = term_get(tok)
        if term is None:
            term = term_of(tok)
        if term:
            h = hash_get(term)
            add(term_hash(term) if h is None else h)
            if "." in tok or "_" in tok:
                hashes.update(term_hash(part) for part in parts_of(tok))
    return array("H", sorted(hashes))


def cut(text: str) -> list[str]:
    """``text`` as passages: one if short, else pieces of about :data:`PASSAGE_CHARS`
    cut after a separator character; ``"".join(cut(text)) == text``."""
    if len(text) <= SINGLE_MAX_CHARS:
        return [text] if text else []
    out: list[str] = []
    start = 0
    search = _SEPARATOR.search
    while len(text) - start > PASSAGE_CHARS + PASSAGE_CHARS // 2:
        target = start + PASSAGE_CHARS
        m = search(text, target, target + _CUT_SEARCH)
        end = m.end() if m is not None else target  # a run without separators: cut hard
        out.append(text[start:end])
        start = end
    out.append(text[start:])
    return out


def _array(kind: str, data: bytes | memoryview) -> array:
    a = array(kind)
    a.frombytes(data)
    if not _LITTLE:
        a.byteswap()
    return a


def _bytes(a: array) -> bytes:
    if not _LITTLE:
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def encode(body: str) -> bytes:
    """The passage record of ``body`` (``b""`` for an empty body)."""
    pieces = cut(body)
    if not pieces:
        return b""
    packed = [zlib.compress(p.encode("utf-8"), _LEVEL) for p in pieces]
    filters: list[array] = []
    if len(pieces) > 1:
        filters = [term_filter(p) for p in pieces]
    else:
        filters.append(array("H"))
    return b"".join(
        [_HEAD.pack(VERSION, len(pieces)), _bytes(array("I", [len(p) for p in pieces])),
         _bytes(array("I", [len(b) for b in packed])), _bytes(array("H", [len(f) for f in filters]))]
        + [_bytes(f) for f in filters] + packed
    )


class Passages:
    """The passages of one document, read from its record; each passage is
    decompressed when first asked for."""

    __slots__ = ("_data", "_starts", "_offsets", "_filters", "_texts")

    def __init__(self, record: bytes) -> None:
        version, n = _HEAD.unpack_from(record, 0)
        if version != VERSION:
            raise ValueError(f"unknown passage record version {version}")
        view = memoryview(record)
        pos = _HEAD.size
        chars = _array("I", view[pos : pos + 4 * n])
        pos += 4 * n
        sizes = _array("I", view[pos : pos + 4 * n])
        pos += 4 * n
        counts = _array("H", view[pos : pos + 2 * n])
        pos += 2 * n
        filters: list[array | None] = []
        for c in counts:
            filters.append(_array("H", view[pos : pos + 2 * c]) if c else None)
            pos += 2 * c
        self._data = view
        self._starts = [0]
        for c in chars:
            self._starts.append(self._starts[-1] + c)
        self._offsets = [pos]
        for s in sizes:
            self._offsets.append(self._offsets[-1] + s)
        self._filters = filters
        self._texts: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._filters)

    @property
    def total_chars(self) -> int:
        return self._starts[-1]

    def start(self, i: int) -> int:
        """Offset in the body of passage ``i``'s first character."""
        return self._starts[i]

    def index_of(self, offset: int) -> int:
        """The passage holding the body's character at ``offset`` (clamped to the passages)."""
        return min(len(self) - 1, max(0, bisect_right(self._starts, offset) - 1))

    def text(self, i: int) -> str:
        t = self._texts.get(i)
        if t is None:
            raw = self._data[self._offsets[i] : self._offsets[i + 1]]
            t = self._texts[i] = zlib.decompress(raw).decode("utf-8")
        return t

    def join(self, first: int = 0, last: int | None = None) -> str:
        """Passages ``first`` to ``last`` (inclusive; default: to the end) as one text."""
        last = len(self) - 1 if last is None else last
        return "".join(self.text(i) for i in range(first, last + 1))

    def may_hold(self, i: int, terms: Iterable[str]) -> frozenset[str]:
        """Those of the analyzed ``terms`` passage ``i`` may hold (all of them when it has no filter)."""
        f = self._filters[i]
        if f is None:
            return frozenset(terms)
        n = len(f)
        out = []
        for t in terms:
            h = term_hash(t)
            j = bisect_left(f, h)
            if j < n and f[j] == h:
                out.append(t)
        return frozenset(out)

    @property
    def decompressed(self) -> int:
        """How many passages were decompressed so far (for tests and benchmarks)."""
        return len(self._texts)


def open_record(record: bytes | None) -> Passages | None:
    """The :class:`Passages` of a column value, None for a document without a record."""
    return Passages(record) if record else None


class PassageColumns:
    """The passage column of every segment of one reader, opened when first read."""

    def __init__(self, leaves: list[tuple[Any, int]]) -> None:
        self._leaves = leaves
        self._starts = [offset for _leaf, offset in leaves]
        self._columns: dict[int, Any] = {}

    def of(self, docnum: int) -> Passages | None:
        """The passages of a document, None if it has none (its segment or itself predates them)."""
        i = bisect_right(self._starts, docnum) - 1
        if i < 0:
            return None
        column = self._columns.get(i, False)
        if column is False:
            leaf = self._leaves[i][0]
            has = FIELD in leaf.schema and leaf.has_column(FIELD)
            column = self._columns[i] = leaf.column_reader(FIELD, translate=False) if has else None
        return None if column is None else open_record(column[docnum - self._starts[i]])
