"""The index writer in a process of its own, out of the event loop's GIL.

Whoosh's writer is pure Python: ~4-5 ms of CPU per 20 KB page, in a thread that
shares the GIL with the event loop (fetching, the crawl loop, SQLite, aiohttp),
so indexing and crawling took turns on one core. :class:`ProcessWriter` runs
the same :class:`~yasearch.index.writer.WriterState` in a child process and
gives the writer thread a blocking ``apply(ops)`` that sends the operations
over a pipe and returns the child's :class:`~yasearch.index.writer.WriteOutcome`.

Nothing else changes: one writer at a time (Whoosh's lock, now held by the
child), the same batching and commits, the same one-document-per-doc_id rule
(``update_document`` on the unique ``doc_id``), and the same crash safety (a
commit is an atomic TOC rename, fsynced by the child before it reports the
commit). Readers stay in the parent: Whoosh opens the newest TOC on disk for
every new searcher. An I/O fault in the child (a full disk) comes back as the
same :class:`~yasearch.index.writer.WriterFault` the writer thread raises (what
got done, and the ops to apply again, named by the numbers the parent gave
them), so the index degrades and retries alike. If the child dies, ``apply``
raises and the index reports its writer failed, as when the writer thread
raises.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

from yasearch.index.writer import WriteOp, WriteOutcome, WriterFault, WriterState, sync_new_files


def _serve(conn: Any, directory: str, limitmb: int, commit_batch: int, fsync: bool) -> None:
    """The child: apply batches of (kind, doc, key) until told to stop."""
    from whoosh import index as whoosh_index

    ix = whoosh_index.open_dir(directory)
    path = Path(directory)
    synced = set(os.listdir(path))

    def durable() -> None:
        nonlocal synced
        if fsync:
            synced = sync_new_files(path, synced)

    state = WriterState(ix, limitmb, commit_batch, durable)
    #: id of each op in the open writer -> the parent's number for it (to name unsettled ops)
    seq_of: dict[int, int] = {}
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                break
            if msg is None:  # abort
                state.abort()
                break
            ops = [WriteOp(kind, doc=doc, key=key) for _seq, kind, doc, key in msg]
            seq_of.update((id(op), seq) for op, (seq, *_rest) in zip(ops, msg))
            index_of = {id(op): i for i, op in enumerate(ops)}
            try:
                out = state.apply(ops)
            except WriterFault as f:  # a full disk: the open writer is gone, the parent retries
                results = [(index_of[id(op)], r) for op, r in f.outcome.results]
                err = f.error
                conn.send(("fault", err.errno, err.strerror or str(err), f.outcome.commits, results,
                           [seq_of[id(op)] for op in f.unsettled]))
                seq_of.clear()
                continue
            except Exception as e:  # noqa: BLE001 - reported to the parent, which fails the index
                conn.send(("error", repr(e)))
                state.abort()
                break
            pending = state.writer is not None and state.dirty
            if not state.pending:
                seq_of.clear()  # nothing of earlier batches can be unsettled any more
            conn.send(("ok", out.commits, [(index_of[id(op)], r) for op, r in out.results], ix.doc_count(), pending))
    finally:
        ix.close()
        conn.close()


class WriterProcessError(RuntimeError):
    """The writer process failed or died."""


class ProcessWriter:
    """A :class:`WriterState` look-alike (``apply``, ``abort``, ``writer``, ``dirty``)
    whose work runs in a child process. Used only from the index's writer thread."""

    def __init__(self, directory: Path, limitmb: int, commit_batch: int, fsync: bool) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, str(directory), limitmb, commit_batch, fsync),
                                 name="yasearch-index-writer", daemon=True)
        self._proc.start()
        child.close()
        self.doc_count: int | None = None
        #: Mirrors of WriterState's: an uncommitted change is pending in the child.
        self.writer: Any = None
        self.dirty = False
        #: ops sent since the child's writer was last empty, by number: the child names
        #: those a fault leaves unsettled (they may be of earlier batches)
        self._sent: dict[int, WriteOp] = {}
        self._seq = 0

    def apply(self, ops: list[WriteOp]) -> WriteOutcome:
        """The child applies ``ops``; an I/O fault there is raised here as the same
        :class:`WriterFault` (what got done, the ops to apply again), and the child
        goes on with a fresh writer, as the writer thread does."""
        batch = []
        for op in ops:
            self._seq += 1
            self._sent[self._seq] = op
            batch.append((self._seq, op.kind, op.doc, op.key))
        try:
            self._conn.send(batch)
            reply = self._conn.recv()
        except (EOFError, OSError) as e:
            raise WriterProcessError(f"the index writer process exited (code {self._proc.exitcode})") from e
        if reply[0] == "fault":
            _fault, errno, strerror, commits, results, unsettled = reply
            sent, self._sent = self._sent, {}
            self.writer, self.dirty = None, False
            outcome = WriteOutcome(commits=commits, results=[(ops[i], r) for i, r in results])
            raise WriterFault(OSError(errno, strerror), outcome, [sent[s] for s in unsettled])
        if reply[0] != "ok":
            raise WriterProcessError(f"the index writer process failed: {reply[1]}")
        _ok, commits, results, self.doc_count, pending = reply
        self.dirty = pending
        self.writer = True if pending else None
        if not pending:
            self._sent.clear()
        return WriteOutcome(commits=commits, results=[(ops[i], r) for i, r in results])

    def abort(self) -> None:
        """Drop uncommitted changes and end the child."""
        if self._proc.is_alive():
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._conn.close()
