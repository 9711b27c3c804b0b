"""Segment files read in place from their memory map, not copied into memory.

Whoosh keeps each segment in one compound file, memory-maps it, and opens each
file inside it (postings, term dictionary, columns) as a ``BufferFile`` over a
slice of the map. ``BufferFile`` also wraps that slice in ``io.BytesIO``, which
copies it: every reader that opened a segment held a private copy of the
segment's files, so a peer's memory grew with its index (a 60,000-page index of
3.6 GB took the building process past 14 GB during a merge, which opens every
segment it merges), and opening a freshly merged segment copied all of it.

:func:`install` gives ``BufferFile`` a file object that reads from the mapped
slice directly (:class:`ViewFile`): a read copies only the bytes asked for, and
the operating system's page cache holds the rest once, for every reader. The
on-disk format and every Whoosh code path are unchanged (``BufferFile.get``
already sliced the map without the copy). Installed when :mod:`yasearch.index`
is imported, in the peer and in the writer process alike.
"""

from __future__ import annotations

from typing import Any

from whoosh.filedb import structfile

_original_init = structfile.BufferFile.__init__


class ViewFile:
    """A read-only, seekable file over a buffer (a ``memoryview`` of a map) that copies
    only what each read returns."""

    __slots__ = ("_buf", "_pos", "_size", "closed")

    def __init__(self, buf: Any) -> None:
        self._buf = memoryview(buf).cast("B")
        self._pos = 0
        self._size = len(self._buf)
        self.closed = False

    def read(self, n: int | None = -1) -> bytes:
        start = self._pos
        end = self._size if n is None or n < 0 else min(self._size, start + n)
        self._pos = max(start, end)
        return self._buf[start:end].tobytes()

    def readinto(self, b: Any) -> int:
        start = self._pos
        end = min(self._size, start + len(b))
        n = max(0, end - start)
        memoryview(b).cast("B")[:n] = self._buf[start:end]
        self._pos = start + n
        return n

    def readline(self, limit: int | None = -1) -> bytes:
        start = self._pos
        stop = self._size if limit is None or limit < 0 else min(self._size, start + limit)
        end = start
        while end < stop:  # lines only occur in pickles of protocol 0, never long here
            end += 1
            if self._buf[end - 1] == 10:
                break
        self._pos = end
        return self._buf[start:end].tobytes()

    def peek(self, n: int = 1) -> bytes:
        return self._buf[self._pos : self._pos + max(1, n)].tobytes()

    def seek(self, pos: int, whence: int = 0) -> int:
        base = (0, self._pos, self._size)[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
        self._buf = memoryview(b"")  # release the map's export so the map can close


def _buffer_file_init(self: Any, buf: Any, name: str | None = None, onclose: Any = None) -> None:
    _original_init(self, b"", name=name, onclose=onclose)  # Whoosh's setup, without the copy
    self._buf = buf
    self.file = ViewFile(buf)


def install() -> None:
    """Make Whoosh's ``BufferFile`` read in place (idempotent)."""
    structfile.BufferFile.__init__ = _buffer_file_init  # type: ignore[method-assign]


install()
