"""Segment files are read in place from their memory map: a reader does not hold a copy."""

from __future__ import annotations

import io
import pickle
import random
import tracemalloc
from pathlib import Path

from whoosh import index as whoosh_index

from yasearch.analysis import doc_id
from yasearch.index import LocalIndex
from yasearch.index.mapped import ViewFile
from yasearch.query import parse_query
from yasearch.records import Document
from yasearch.search import search_local


def test_a_view_file_reads_seeks_and_unpickles_like_bytes_io() -> None:
    data = pickle.dumps({"a": [1, 2, 3]}, 2) + b"line one\nline two\n" + pickle.dumps("x" * 1000, 0)
    for make in (io.BytesIO, lambda b: ViewFile(memoryview(b))):
        f = make(data)
        assert pickle.load(f) == {"a": [1, 2, 3]}
        at = f.tell()
        assert f.readline() == b"line one\n" and f.readline() == b"line two\n"
        assert pickle.load(f) == "x" * 1000
        assert f.read(5) == b"" and f.read() == b""
        f.seek(at)
        buf = bytearray(4)
        assert f.readinto(buf) == 4 and bytes(buf) == b"line"
        f.seek(-5, 2)
        assert f.read() == data[-5:]
        f.seek(2, 1)
        assert f.tell() == len(data) + 2 and f.read(1) == b""


async def test_a_reader_of_an_index_holds_no_copy_of_its_segment(tmp_path: Path) -> None:
    rng = random.Random(3)
    words = [f"w{i}" for i in range(3000)]
    index = LocalIndex(tmp_path / "ix", commit_batch=1000)
    await index.open()
    try:
        for i in range(300):
            url = f"https://m.example/{i}"
            body = " ".join(rng.choice(words) for _ in range(1500))
            await index.add(Document(doc_id=doc_id(url), url=url, host="m.example", title=f"page {i}", body=body))
        await index.flush()
        expected = [h.doc_id for h in (await search_local(index, parse_query("w7 w11"))).results]
    finally:
        await index.close()
    segment = max((p for p in (tmp_path / "ix").iterdir() if p.suffix == ".seg"), key=lambda p: p.stat().st_size)
    assert segment.stat().st_size > 4_000_000
    ix = whoosh_index.open_dir(str(tmp_path / "ix"))
    tracemalloc.start()
    try:
        reader = ix.reader()
        assert len(list(reader.postings("body", "w7").all_ids())) > 50  # postings and stored fields read
        assert reader.stored_fields(0)["title"].startswith("page")
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # Whoosh alone wrapped each file of the segment in a BytesIO: a copy of all of it
    assert held < segment.stat().st_size / 10, (held, segment.stat().st_size)
    reader.close()
    index = LocalIndex(tmp_path / "ix")
    await index.open()
    try:
        assert [h.doc_id for h in (await search_local(index, parse_query("w7 w11"))).results] == expected
    finally:
        await index.close()
