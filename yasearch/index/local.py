"""The :class:`LocalIndex` facade: Whoosh on disk, written by one thread, read by a pool.

Why it is shaped like this:

* Whoosh is synchronous and CPU-bound. Every Whoosh call runs off the event
  loop: all writes in ONE dedicated writer thread (:mod:`.writer`), reads in a
  small thread pool where each thread keeps its own cached searcher
  (:mod:`.reader`), refreshed only after a commit.
* Writes are batched: :meth:`LocalIndex.add` only enqueues (and waits when the
  queue is full, which is the crawler's backpressure); the writer task commits
  every ``commit_interval`` seconds or ``commit_batch`` documents, then tells
  the ``on_commit`` callbacks which documents became durable.
* A full disk does not kill the writer: the index turns *degraded*
  (:attr:`LocalIndex.fault`, shown by the status), keeps the documents the
  failed commit held, removes the failed commit's files, and retries with a
  growing delay; when a retry commits, it is healthy again. Meanwhile the crawler
  waits on the full queue, and calls that need a commit (delete, flush) fail at
  once with :class:`IndexDegradedError` instead of hanging.
* An index directory with segment files but no TOC is refused
  (:class:`IndexDirectoryError`): Whoosh would open it as a new empty index and
  delete the segments at the first commit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from whoosh import index as whoosh_index
from whoosh.query import Term

from yasearch.index.docvalues import DocValues
from yasearch.index.reader import ReadView
from yasearch.index.schema import make_schema, missing_fields, retire_stored_body
from yasearch.index.writer import (
    WriteOp,
    WriteOutcome,
    WriterFault,
    WriterState,
    probe_writable,
    segments_without_toc,
    sync_new_files,
)
from yasearch.index.writerproc import ProcessWriter
from yasearch.ranking import CollectionStats
from yasearch.records import DocRecord, Document, Posting

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Seconds between retries of a degraded writer: doubling from the first to the last.
RETRY_DELAYS = (0.5, 30.0)


class IndexClosedError(RuntimeError):
    """The index is not open (never opened, or already closed)."""


class IndexDegradedError(RuntimeError):
    """The index cannot commit now (the disk is full, say); it retries by itself."""


class IndexDirectoryError(OSError):
    """The index directory is in a state this peer refuses to open (one line to show)."""


class LocalIndex:
    """This peer's inverted index of the pages it crawled.

    Construct, ``await open()``, use, ``await close()``. See the module
    docstring for the threading model, :mod:`yasearch.index.writer` for durability.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        commit_interval: float = 1.0,
        commit_batch: int = 500,
        limitmb: int = 256,
        queue_size: int | None = None,
        reader_threads: int = 2,
        fsync: bool = True,
        writer_process: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.commit_interval = commit_interval
        self.commit_batch = max(1, commit_batch)
        self.limitmb = limitmb
        self.queue_size = queue_size or max(64, 2 * self.commit_batch)
        self.reader_threads = max(1, reader_threads)
        self.fsync = fsync
        #: Run the Whoosh writer in a child process (:mod:`.writerproc`) instead of a thread.
        self.writer_process = writer_process
        #: Called on the event loop after each commit with the committed doc ids.
        self.on_commit: list[Callable[[list[str]], None]] = []
        self._ix: Any = None
        self._queue: asyncio.Queue[WriteOp] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._write_pool: ThreadPoolExecutor | None = None
        self._read_pool: ThreadPoolExecutor | None = None
        self._state: WriterState | ProcessWriter | None = None
        self._generation = 0
        self._doc_count = 0
        self._local = threading.local()
        self._views: list[ReadView] = []
        self._views_lock = threading.Lock()
        self._length_cache: dict[tuple[str, int], int] = {}
        self._docvalues = DocValues()
        self._synced: set[str] = set()
        self._error: BaseException | None = None
        #: Why the writer cannot commit now ("OSError: [Errno 28] ..."), None when healthy.
        self.fault: str | None = None
        self.fault_since: float | None = None
        #: Faults seen and recoveries made since open (status figures).
        self.faults = 0
        self.recoveries = 0

    # ---- lifecycle

    async def open(self) -> None:
        """Open the index on disk, creating it if it does not exist yet."""
        if self._ix is not None:
            return
        self._write_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-writer")
        self._read_pool = ThreadPoolExecutor(max_workers=self.reader_threads, thread_name_prefix="index-reader")
        loop = asyncio.get_running_loop()
        try:
            self._ix = await loop.run_in_executor(self._write_pool, self._open_sync)
            if self.writer_process:
                self._state = await loop.run_in_executor(
                    self._write_pool, ProcessWriter, self.directory, self.limitmb, self.commit_batch, self.fsync)
            else:
                self._state = WriterState(self._ix, self.limitmb, self.commit_batch, self._after_commit_sync)
        except BaseException:
            self._write_pool.shutdown(wait=False)
            self._read_pool.shutdown(wait=False)
            raise
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._error = None
        self._writer_task = asyncio.create_task(self._writer_loop(), name="index-writer")

    def _open_sync(self) -> Any:
        self.directory.mkdir(parents=True, exist_ok=True)
        orphans = segments_without_toc(self.directory)
        if orphans:
            raise IndexDirectoryError(
                f"index {self.directory} has {len(orphans)} segment file(s) but no table of contents "
                "(_MAIN_<n>.toc): refusing to start, which would delete them; restore the .toc file "
                "or move the directory away to start with an empty index"
            )
        try:
            ix = whoosh_index.open_dir(str(self.directory)) if whoosh_index.exists_in(str(self.directory)) else None
        except Exception as e:  # a damaged table of contents or segment: never start empty over it
            raise IndexDirectoryError(
                f"index {self.directory} cannot be read ({type(e).__name__}: {e}); restore it from a "
                "backup, or move the directory away to start with an empty index (then recrawl)"
            ) from e
        if ix is None:
            ix = whoosh_index.create_in(str(self.directory), make_schema())
        elif missing_fields(ix.schema):  # an index written before these fields existed
            writer = ix.writer(timeout=10.0)
            for name, fieldtype in missing_fields(ix.schema).items():
                writer.add_field(name, fieldtype)
            retire_stored_body(writer.schema)
            writer.commit()
            ix = whoosh_index.open_dir(str(self.directory))
        self._synced = set(os.listdir(self.directory))
        self._doc_count = ix.doc_count()
        return ix

    async def close(self) -> None:
        """Commit what is pending, stop the writer, release files and threads."""
        if self._ix is None:
            return
        if self.fault is not None:
            log.warning("index %s closed while degraded (%s): uncommitted documents are lost", self.directory, self.fault)
        elif self._writer_task is not None and not self._writer_task.done() and self._error is None:
            await self._submit(WriteOp("stop"))
        if self._writer_task is not None:
            self._writer_task.cancel()
            try:
                await self._writer_task
            except (asyncio.CancelledError, Exception):
                pass
        loop = asyncio.get_running_loop()
        assert self._write_pool is not None and self._read_pool is not None
        if self._state is not None:
            await loop.run_in_executor(self._write_pool, self._state.abort)
        self._read_pool.shutdown(wait=True)
        self._write_pool.shutdown(wait=True)
        with self._views_lock:
            for view in self._views:
                view.close()
            self._views.clear()
        self._ix.close()
        self._ix = None
        self._writer_task = None
        self._state = None
        self._local = threading.local()

    async def __aenter__(self) -> "LocalIndex":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- writes

    def _check_open(self) -> asyncio.Queue[WriteOp]:
        if self._ix is None or self._queue is None:
            raise IndexClosedError("index is not open")
        if self._error is not None:
            raise RuntimeError("index writer failed") from self._error
        return self._queue

    async def _submit(self, op: WriteOp) -> Any:
        queue = self._check_open()
        if self.fault is not None:
            raise IndexDegradedError(f"the index cannot commit now ({self.fault}); it retries by itself")
        op.future = asyncio.get_running_loop().create_future()
        await queue.put(op)
        return await op.future

    async def add(self, doc: Document) -> None:
        """Queue a document for indexing (replacing any with the same doc_id).

        Returns once queued, not once committed: ``on_commit`` says when it is
        durable. Waits while the queue is full, which throttles the crawler to
        the indexing speed.
        """
        await self._check_open().put(WriteOp("add", doc=doc))

    async def delete(self, doc_id: str) -> None:
        """Delete a document; durable at the next commit."""
        await self._submit(WriteOp("delete", key=doc_id))

    async def delete_host(self, host: str) -> int:
        """Delete every document of ``host`` (exact host); returns how many."""
        return int(await self._submit(WriteOp("delete_host", key=host)))

    async def flush(self) -> None:
        """Commit everything queued so far; returns when it is on disk."""
        await self._submit(WriteOp("flush"))

    async def _writer_loop(self) -> None:
        """Drain the queue into the writer thread; commit on size or time; retry after a fault."""
        assert self._queue is not None and self._state is not None
        queue, state = self._queue, self._state
        getter: asyncio.Task[WriteOp] | None = None
        dirty_since: float | None = None
        backlog: list[WriteOp] = []  # ops to apply again after a fault, oldest first
        delay = RETRY_DELAYS[0]
        try:
            while True:
                if self.fault is not None:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_DELAYS[1])
                    ops, backlog = backlog + [WriteOp("flush")], []
                else:
                    if getter is None:
                        getter = asyncio.ensure_future(queue.get())
                    timeout = None
                    if dirty_since is not None:
                        timeout = max(0.0, dirty_since + self.commit_interval - time.monotonic())
                    done, _ = await asyncio.wait({getter}, timeout=timeout)
                    ops = []
                    if done:
                        ops.append(getter.result())
                        getter = None
                        while len(ops) < 256 and not queue.empty():
                            ops.append(queue.get_nowait())
                    else:
                        ops.append(WriteOp("flush"))  # interval elapsed: time-based commit
                try:
                    outcome = await self._apply(ops, probe=self.fault is not None)
                except WriterFault as f:
                    backlog = self._faulted(f)
                    dirty_since = None
                    if any(op.kind == "stop" for op in f.unsettled):
                        return
                    continue
                if isinstance(state, ProcessWriter) and state.doc_count is not None:
                    self._doc_count = state.doc_count
                self._deliver(outcome)
                if self.fault is not None:
                    log.warning("index %s recovered: committing again", self.directory)
                    self.fault = self.fault_since = None
                    self.recoveries += 1
                    delay = RETRY_DELAYS[0]
                if state.writer is not None and state.dirty:
                    if dirty_since is None:
                        dirty_since = time.monotonic()
                else:
                    dirty_since = None
                if any(op.kind == "stop" for op in ops):
                    return
        finally:
            if getter is not None:
                getter.cancel()

    async def _apply(self, ops: list[WriteOp], *, probe: bool) -> WriteOutcome:
        """``ops`` in the writer thread (after a write probe while degraded); any
        error but an I/O fault stops the writer for good, as before."""
        assert self._state is not None
        state = self._state

        def run() -> WriteOutcome:
            if probe:
                try:
                    probe_writable(self.directory)
                except OSError as e:
                    raise WriterFault(e, WriteOutcome(), ops) from e
            return state.apply(ops)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._write_pool, run)
        except WriterFault:
            raise
        except Exception as e:
            self._error = e
            self.fault = f"index writer failed: {type(e).__name__}: {e}"
            for op in ops:
                if op.future is not None and not op.future.done():
                    op.future.set_exception(e)
            raise

    def _faulted(self, f: WriterFault) -> list[WriteOp]:
        """On the loop, after an I/O fault: deliver what got done, fail the calls
        that wait for a commit, and return the ops to apply again."""
        self._deliver(f.outcome)
        if self.fault is None:
            log.warning("index %s degraded: %s; retrying until it commits", self.directory, f.error)
            self.faults += 1
            self.fault_since = time.time()
        self.fault = f"{type(f.error).__name__}: {f.error}"
        retry: list[WriteOp] = []
        for op in f.unsettled:
            if op.future is not None and not op.future.done():
                op.future.set_exception(IndexDegradedError(f"the index cannot commit now ({self.fault})"))
            elif op.kind in ("add", "delete"):
                retry.append(op)
        return retry

    def _deliver(self, outcome: WriteOutcome) -> None:
        """On the loop: tell callbacks what got committed, then wake waiters."""
        for doc_ids in outcome.commits:
            self._generation += 1
            for callback in list(self.on_commit):
                callback(doc_ids)
        for op, result in outcome.results:
            if op.future is not None and not op.future.done():
                op.future.set_result(result)

    def _after_commit_sync(self) -> None:
        """Writer thread, right after a Whoosh commit: make it durable, count."""
        if self.fsync:
            self._synced = sync_new_files(self.directory, self._synced)
        self._doc_count = self._ix.doc_count()

    # ---- reads

    def _view(self) -> ReadView:
        """This reader thread's view, refreshed if a commit happened since."""
        view: ReadView | None = getattr(self._local, "view", None)
        generation = self._generation
        if view is None:
            view = ReadView(self._ix.searcher(), generation, self._length_cache, self._docvalues)
            self._local.view = view
            with self._views_lock:
                self._views.append(view)
        else:
            view.refreshed(self._ix, generation)
        return view

    async def run_read(self, fn: Callable[[ReadView], T]) -> T:
        """Run ``fn(view)`` in the reader pool against the latest commit."""
        self._check_open()
        assert self._read_pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._read_pool, lambda: fn(self._view()))

    def doc_count(self) -> int:
        """Committed live documents (cached after each commit; no I/O)."""
        return self._doc_count

    async def total_length(self) -> int:
        return await self.run_read(lambda v: v.total_length())

    async def collection_stats(self, terms: Iterable[str]) -> CollectionStats:
        """N, average length and df of ``terms`` over this whole index."""
        terms = list(terms)
        return await self.run_read(lambda v: v.collection_stats(terms))

    async def postings(self, terms: list[str], restrict: set[str] | None = None) -> dict[str, list[Posting]]:
        """Postings of ``terms`` (each list sorted by doc_id), optionally only for some docs."""
        terms = list(terms)

        def run(view: ReadView) -> dict[str, list[Posting]]:
            docnums: set[int] | None = None
            if restrict is not None:
                docnums = set()
                for doc in restrict:
                    d = view.docnum_of(doc)
                    if d is not None:
                        docnums.add(d)
            return view.postings(terms, docnums)

        return await self.run_read(run)

    async def get(self, doc_id: str) -> DocRecord | None:
        def run(view: ReadView) -> DocRecord | None:
            d = view.docnum_of(doc_id)
            return None if d is None else view.record(d)

        return await self.run_read(run)

    async def get_url(self, url: str) -> DocRecord | None:
        def run(view: ReadView) -> DocRecord | None:
            d = view.searcher.document_number(url=url)
            return None if d is None else view.record(d)

        return await self.run_read(run)

    async def has(self, doc_id: str) -> bool:
        return await self.run_read(lambda v: v.docnum_of(doc_id) is not None)

    async def documents_by_host(self) -> list[tuple[str, int]]:
        """(host, live document count), most documents first."""

        def run(view: ReadView) -> list[tuple[str, int]]:
            counts: list[tuple[str, int]] = []
            for raw in view.reader.lexicon("host"):
                host = raw.decode("utf-8") if isinstance(raw, bytes) else raw
                n = len(view.docnums(Term("host", host)))
                if n:
                    counts.append((host, n))
            counts.sort(key=lambda hc: (-hc[1], hc[0]))
            return counts

        return await self.run_read(run)

    async def doc_ids_of_host(self, host: str) -> list[str]:
        """Doc ids of every live document of ``host`` (exact host, as stored: lowercase)."""

        def run(view: ReadView) -> list[str]:
            return sorted(view.doc_id_of(d) for d in view.docnums(Term("host", host.lower())))

        return await self.run_read(run)

    async def stored_fields(self, doc_ids: list[str]) -> list[dict[str, Any]]:
        """The stored fields of those of these documents that are live (export)."""

        def run(view: ReadView) -> list[dict[str, Any]]:
            nums = (view.docnum_of(d) for d in doc_ids)
            return [view.stored(n) for n in nums if n is not None]

        return await self.run_read(run)

    async def documents_of_host(self, host: str, offset: int = 0, limit: int = 50) -> tuple[int, list[DocRecord]]:
        """(number of live documents of ``host``, one page of their records ordered by URL)."""

        def run(view: ReadView) -> tuple[int, list[DocRecord]]:
            docnums = sorted(view.docnums(Term("host", host.lower())), key=view.url_of)
            page = docnums[max(0, offset) : max(0, offset) + max(0, limit)]
            return len(docnums), [view.record(d) for d in page]

        return await self.run_read(run)
