"""Writing the local index: the writer thread's state, commits, and crash safety.

All writes run in ONE dedicated writer thread (a Whoosh index has one writer
at a time, and one thread keeps its state simple); :class:`WriterState` is
only ever touched there. Crash safety comes from Whoosh: a commit writes new
segment files, then atomically renames a new TOC generation into place; files
of a commit that was interrupted are never referenced and are removed by the
next commit. :func:`sync_new_files` fsyncs the new files and the directory
after each commit so "committed" also survives a power cut. Whoosh's
FileStorage write lock is an ``flock`` on a lock file; the kernel drops it
when the process dies, so a leftover lock file after ``kill -9`` does not
block reopening (a test proves it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whoosh.index import LockError
from whoosh.writing import IndexWriter

from yasearch.index.codec import FastPool, fast_codec
from yasearch.index.fastpath import document_length, fast_schema, forget_analyzed, impact_weights
from yasearch.index.schema import IMPACT_FIELD, MAX_STORED_BODY_CHARS, host_parts
from yasearch.ranking import url_text
from yasearch.records import Document


def whoosh_fields(doc: Document, impact: bool = True) -> dict[str, Any]:
    """The Whoosh field values of ``doc`` (``impact``: the index has the impact field)."""
    host = doc.host.lower()
    fields = {
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
        "length": document_length(doc),
    }
    if impact:
        fields[IMPACT_FIELD] = impact_weights(doc)
    return fields


@dataclass
class WriteOp:
    """One queued write. ``future`` is resolved on the loop with ``result``."""

    kind: str  # "add" | "delete" | "delete_host" | "flush" | "stop"
    doc: Document | None = None
    key: str = ""
    future: asyncio.Future[Any] | None = None


@dataclass
class WriteOutcome:
    """What one batch of ops did, reported back from the writer thread."""

    commits: list[list[str]] = field(default_factory=list)  # doc ids per commit
    results: list[tuple[WriteOp, Any]] = field(default_factory=list)


class WriterState:
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
                self.writer = self.ix.writer(limitmb=self.limitmb, timeout=10.0, codec=fast_codec())
            except LockError as e:
                raise RuntimeError(
                    f"Whoosh index at {self.ix.storage.folder} is locked by another live process"
                ) from e
            self.writer.schema = fast_schema(self.writer.schema)
            self.writer.pool = FastPool(self.writer._tempstorage, self.writer.newsegment, limitmb=self.limitmb)
        return self.writer

    def commit(self, out: WriteOutcome) -> None:
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

    def apply(self, ops: list[WriteOp]) -> WriteOutcome:
        out = WriteOutcome()
        for op in ops:
            if op.kind == "add":
                assert op.doc is not None
                # Whoosh's update_document only finds *committed* duplicates,
                # so a second version of a document in the same writer would
                # be a duplicate: commit the first one before replacing it.
                if op.doc.doc_id in self.added:
                    self.commit(out)
                writer = self._w()
                writer.update_document(**whoosh_fields(op.doc, IMPACT_FIELD in writer.schema))
                forget_analyzed()
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



def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_new_files(directory: Path, synced: set[str]) -> set[str]:
    """Writer thread, right after a commit: fsync the files not in ``synced``, then
    ``directory`` itself; returns the names now in it (the next call's ``synced``)."""
    names = set(os.listdir(directory))
    for name in names - synced:
        path = directory / name
        if path.is_file():
            try:
                _fsync_path(path)
            except FileNotFoundError:
                pass
    _fsync_path(directory)
    return names
