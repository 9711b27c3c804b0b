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
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whoosh.index import TOC, LockError

from yasearch.index.codec import fast_codec
from yasearch.index.fastpath import document_length, fast_schema, forget_analyzed, impact_weights
from yasearch.index.schema import IMPACT_FIELD, MAX_STORED_BODY_CHARS, host_parts
from yasearch.index.segwriter import FastSegmentWriter
from yasearch.ranking import prior_class, url_text
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
        # the stored body as passages (schema.PassagesField caps it), kept out of the stored record
        "passages": doc.body or "",
        "description": doc.description or "",
        "anchor": doc.anchor or "",
        "prior": str(prior_class(doc.inlinks)),
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


class WriterFault(Exception):
    """An I/O error (a full disk, say) in the writer thread. Nothing is lost but
    what Whoosh held: ``outcome`` is what got done before it, and ``unsettled``
    are the ops to apply again (those in the writer that was thrown away, then
    the rest of the batch), oldest first."""

    def __init__(self, error: OSError, outcome: WriteOutcome, unsettled: list[WriteOp]) -> None:
        super().__init__(str(error))
        self.error = error
        self.outcome = outcome
        self.unsettled = unsettled


class WriterState:
    """Whoosh writer state; touched only by the single writer thread."""

    def __init__(self, ix: Any, limitmb: int, commit_batch: int, on_durable: Callable[[], None]) -> None:
        self.ix = ix
        self.limitmb = limitmb
        self.commit_batch = commit_batch
        self.on_durable = on_durable
        self.writer: FastSegmentWriter | None = None
        self.added: dict[str, None] = {}  # doc ids updated in the open writer
        self.dirty = False  # the open writer has changes (adds or deletes)
        self.pending: list[WriteOp] = []  # adds and deletes in the open writer, to redo after a fault

    def _w(self) -> FastSegmentWriter:
        if self.writer is None:
            try:
                self.writer = FastSegmentWriter(self.ix, limitmb=self.limitmb, timeout=10.0, codec=fast_codec())
            except LockError as e:
                raise RuntimeError(
                    f"Whoosh index at {self.ix.storage.folder} is locked by another live process"
                ) from e
            self.writer.schema = fast_schema(self.writer.schema)
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
        self.pending = []

    def apply(self, ops: list[WriteOp]) -> WriteOutcome:
        """Apply ``ops`` in order; an OSError becomes a :class:`WriterFault` after the
        open writer is thrown away and the files of the failed commit are removed."""
        out = WriteOutcome()
        for i, op in enumerate(ops):
            try:
                self._apply(op, out)
            except OSError as e:
                pending, self.pending = self.pending, []
                seen = {id(p) for p in pending}
                self.abort()
                discard_unreferenced(self.ix)
                raise WriterFault(e, out, pending + [o for o in ops[i:] if id(o) not in seen]) from e
        return out

    def _apply(self, op: WriteOp, out: WriteOutcome) -> None:
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
            self.pending.append(op)
            self.added[op.doc.doc_id] = None
            self.dirty = True
            # the open writer holds its postings in memory until it commits
            if len(self.added) >= self.commit_batch or writer.pool_bytes > self.limitmb * 1024 * 1024:
                self.commit(out)
        elif op.kind == "delete":
            if op.key in self.added:
                self.commit(out)
            if self._w().delete_by_term("doc_id", op.key):
                self.dirty = True
            self.pending.append(op)
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

    def abort(self) -> None:
        writer, self.writer = self.writer, None
        self.added = {}
        self.dirty = False
        self.pending = []
        if writer is not None:
            try:
                writer.cancel()
            except Exception:  # noqa: BLE001 - a writer broken by an I/O error: free what it held
                lock = getattr(writer, "writelock", None)
                for release in (getattr(lock, "release", None), getattr(writer._tempstorage, "destroy", None)):
                    try:
                        if release is not None:
                            release()
                    except Exception:  # noqa: BLE001 - the leftover files are removed by discard_unreferenced
                        pass


def discard_unreferenced(ix: Any) -> None:
    """Remove what a failed commit left in the index directory (segment files no
    TOC names, temporary TOCs and pool directories), which would keep a full disk
    full. The live TOC and its segments are never touched."""
    storage = ix.storage
    folder = Path(storage.folder)
    try:
        toc = TOC.read(storage, ix.indexname)
    except Exception:  # noqa: BLE001 - no readable TOC: touch nothing
        return
    live_toc = TOC._filename(ix.indexname, toc.generation)
    live = {s.segment_id() for s in toc.segments}
    segment = TOC._segment_pattern(ix.indexname)
    for name in os.listdir(folder):
        path = folder / name
        m = segment.match(name)
        try:
            if path.is_dir() and name.endswith(".tmp"):
                shutil.rmtree(path, ignore_errors=True)
            elif name.startswith(f"_{ix.indexname}_") and name != live_toc:
                path.unlink()
            elif m is not None and m.group(1) not in live:
                path.unlink()
        except OSError:
            pass


def segments_without_toc(directory: Path, indexname: str = "MAIN") -> list[str]:
    """Segment files in ``directory`` when it has no TOC (else []). Whoosh would
    open such a directory as a new empty index and delete them at its first commit."""
    if not directory.is_dir():
        return []
    names = os.listdir(directory)
    toc = TOC._pattern(indexname)
    if any(toc.match(n) for n in names):
        return []
    segment = TOC._segment_pattern(indexname)
    return sorted(n for n in names if segment.match(n) and (directory / n).is_file())


def probe_writable(directory: Path, size: int = 64 * 1024) -> None:
    """Write, sync and remove a small file: raises OSError while the disk is full."""
    path = directory / ".yasearch-probe"
    try:
        with open(path, "wb") as f:
            f.write(b"\0" * size)
            f.flush()
            os.fsync(f.fileno())
    finally:
        try:
            path.unlink()
        except FileNotFoundError:
            pass



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
