"""LocalIndex: writes, replacement, deletes, commits, reopening, kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from yasearch.analysis import doc_id
from yasearch.index import LocalIndex, host_parts
from yasearch.query import parse_query
from yasearch.ranking import postings_for_document
from yasearch.records import Document
from yasearch.search import search_local

ROOT = Path(__file__).resolve().parents[1]


def make_doc(url: str, title: str = "", body: str = "", **kw: str) -> Document:
    host = url.split("/")[2]
    return Document(doc_id=doc_id(url), url=url, host=host, title=title, body=body, **kw)


@pytest.fixture
async def index(make_index) -> LocalIndex:
    return await make_index(commit_interval=0.05, commit_batch=50)


def test_host_parts() -> None:
    assert host_parts("a.b.Example.com") == ["a.b.example.com", "b.example.com", "example.com", "com"]
    assert host_parts("") == []


async def test_add_get_and_count(index: LocalIndex) -> None:
    d = make_doc("https://example.com/a", "Alpha", "alpha body text", description="desc", language="en")
    await index.add(d)
    await index.flush()
    assert index.doc_count() == 1
    rec = await index.get(d.doc_id)
    assert rec is not None and rec.url == d.url and rec.title == "Alpha" and rec.language == "en"
    assert rec.host == "example.com" and rec.length == 5
    assert (await index.get_url(d.url)) == rec
    assert await index.has(d.doc_id)
    assert not await index.has("nope")
    assert await index.get("nope") is None


async def test_readding_replaces(index: LocalIndex) -> None:
    d1 = make_doc("https://example.com/a", "Old title", "zebra")
    d2 = make_doc("https://example.com/a", "New title", "giraffe")
    await index.add(d1)
    await index.flush()
    await index.add(d2)
    await index.add(d2)  # twice in one uncommitted batch: still one document
    await index.flush()
    assert index.doc_count() == 1
    assert (await index.get(d1.doc_id)).title == "New title"  # type: ignore[union-attr]
    assert (await index.postings(["zebra"]))["zebra"] == []
    assert len((await index.postings(["giraff"]))["giraff"]) == 1  # analyzed (stemmed) term


async def test_delete_and_delete_host(index: LocalIndex) -> None:
    docs = [make_doc(f"https://{h}/{i}", "t", "word") for h in ("a.com", "b.com", "sub.b.com") for i in range(3)]
    for d in docs:
        await index.add(d)
    await index.flush()
    assert index.doc_count() == 9
    await index.delete(docs[0].doc_id)
    await index.flush()
    assert index.doc_count() == 8 and not await index.has(docs[0].doc_id)
    assert await index.delete_host("B.com") == 3  # exact host only, not sub.b.com
    assert index.doc_count() == 5
    assert await index.documents_by_host() == [("sub.b.com", 3), ("a.com", 2)]
    assert await index.delete_host("nowhere.org") == 0


async def test_delete_of_uncommitted_doc(index: LocalIndex) -> None:
    d = make_doc("https://a.com/x", "t", "word")
    await index.add(d)
    await index.delete(d.doc_id)
    await index.flush()
    assert index.doc_count() == 0


async def test_on_commit_callback_batches(tmp_path: Path) -> None:
    ix = LocalIndex(tmp_path / "ix", commit_interval=30.0, commit_batch=4)
    committed: list[list[str]] = []
    ix.on_commit.append(committed.append)
    await ix.open()
    docs = [make_doc(f"https://a.com/{i}", "t", "w") for i in range(10)]
    for d in docs:
        await ix.add(d)
    await ix.flush()
    assert [len(batch) for batch in committed] == [4, 4, 2]
    assert [x for batch in committed for x in batch] == [d.doc_id for d in docs]
    await ix.close()


async def test_commit_interval_commits_without_flush(tmp_path: Path) -> None:
    ix = LocalIndex(tmp_path / "ix", commit_interval=0.05, commit_batch=1000)
    seen = asyncio.Event()
    ix.on_commit.append(lambda ids: seen.set())
    await ix.open()
    await ix.add(make_doc("https://a.com/1", "t", "w"))
    await asyncio.wait_for(seen.wait(), 5)
    assert ix.doc_count() == 1
    await ix.close()


async def test_reopen_after_close_keeps_docs(tmp_path: Path) -> None:
    ix = LocalIndex(tmp_path / "ix", commit_interval=30.0)
    await ix.open()
    for i in range(5):
        await ix.add(make_doc(f"https://a.com/{i}", "kept", "persistent words"))
    await ix.close()  # close commits pending documents
    ix2 = LocalIndex(tmp_path / "ix")
    await ix2.open()
    assert ix2.doc_count() == 5
    res = await search_local(ix2, parse_query("persistent"))
    assert res.total == 5
    await ix2.close()


async def test_postings_agree_with_postings_for_document(index: LocalIndex) -> None:
    d = make_doc(
        "https://docs.example.org/guide/cats-and-dogs.html",
        "Cats and dogs",
        "Cats sleep all day. Dogs bark at cats. " * 3 + "Running runners run.",
        headings="Caring for cats",
        description="A guide to cats",
    )
    other = make_doc("https://other.org/cats", "Cats", "cats elsewhere")
    await index.add(d)
    await index.add(other)
    await index.flush()
    expected = postings_for_document(d)
    got = await index.postings(list(expected), restrict={d.doc_id})
    assert {t: ps for t, ps in got.items()} == {t: [p] for t, p in expected.items()}
    stats = await index.collection_stats(["cat", "dog"])
    assert stats.n_docs == 2 and stats.df == {"cat": 2, "dog": 1}
    assert stats.avg_length == (await index.total_length()) / 2
    unrestricted = await index.postings(["cat"])
    assert [p.doc_id for p in unrestricted["cat"]] == sorted([d.doc_id, other.doc_id])


async def test_stored_body_is_capped_but_fully_indexed(index: LocalIndex) -> None:
    d = make_doc("https://a.com/big", "big", "filler " * 20_000 + "needle")
    await index.add(d)
    await index.flush()
    res = await search_local(index, parse_query("needle"))
    assert res.total == 1


async def test_closed_index_refuses_work(tmp_path: Path) -> None:
    ix = LocalIndex(tmp_path / "ix")
    with pytest.raises(RuntimeError):
        await ix.add(make_doc("https://a.com/1"))


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from yasearch.index import LocalIndex
    from yasearch.records import Document

    async def main(path, start):
        ix = LocalIndex(path, commit_interval=0.01, commit_batch=25)
        await ix.open()
        total = [0]
        def report(ids):
            total[0] += len(ids)
            sys.stdout.write(f"{total[0]}\\n")
            sys.stdout.flush()
        ix.on_commit.append(report)
        i = start
        while True:
            url = f"https://crash.example/{i}"
            body = " ".join(f"word{j % 500} crash text number{i}" for j in range(400))
            await ix.add(Document(doc_id=f"{i:08d}", url=url, host="crash.example",
                                  title=f"crash page {i}", body=body))
            i += 1

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def _run_and_kill(path: Path, start: int, min_commits: int, extra_delay: float) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    committed = 0
    deadline = time.monotonic() + 60
    try:
        assert proc.stdout is not None
        while committed < min_commits and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed = int(line)
        assert committed >= min_commits, proc.stderr.read() if proc.stderr else ""
        time.sleep(extra_delay)  # land somewhere inside the next batch or commit
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return committed


async def test_kill_9_mid_write_then_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ix"
    start = 0
    before = 0  # documents in the index before this round
    for round_no, delay in enumerate((0.0, 0.013, 0.037)):
        committed = await asyncio.to_thread(_run_and_kill, path, start, 50, delay)
        ix = LocalIndex(path, commit_interval=0.05)
        await ix.open()  # a leftover lock file must not block this
        n = ix.doc_count()
        assert n >= before + committed, (round_no, n, before, committed)
        res = await search_local(ix, parse_query("crash"), limit=5)
        assert res.total == n and len(res.results) == 5
        # Still writable after the crash.
        await ix.add(make_doc(f"https://after.example/{round_no}", "after crash", "recovered"))
        await ix.flush()
        assert (await search_local(ix, parse_query("recovered"))).total == round_no + 1
        ix_count = ix.doc_count()
        await ix.close()
        before = ix_count
        start = n + 1000
