"""Documents in and out of files: JSON Lines (export/import) and WARC (import).

``read_documents(path)`` sniffs the format and yields, per record, either a
:class:`~yasearch.records.Document` or the short reason it was skipped
(``bad_json``, ``no_url``, ``not_response``, ``http_<status>``, ``not_html``,
``noindex``, ``bad_record``). HTML in WARC responses is extracted by the
crawler's own extractor, so an archived page is indexed like a crawled one.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from warcio.archiveiterator import ArchiveIterator

from yasearch.analysis import doc_id
from yasearch.crawler.extract import extract
from yasearch.crawler.fetcher import HTML_TYPES
from yasearch.crawler.urls import canonicalize, host_of
from yasearch.records import Document

#: The JSON Lines fields of one exported document.
FIELDS = ("url", "title", "text", "description", "language", "crawled_at")
#: Records larger than this (bytes of payload) are skipped, not read into memory.
MAX_RECORD_BYTES = 20 * 1024 * 1024


def sniff(path: str | Path) -> str:
    """``warc`` or ``jsonl``, from the first bytes (gzip looked into)."""
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    with opener(path, "rb") as f:  # type: ignore[operator]
        start = f.read(8)
    return "warc" if start.startswith(b"WARC/") else "jsonl"


def read_documents(path: str | Path) -> Iterator[Document | str]:
    if sniff(path) == "warc":
        with open(path, "rb") as f:
            yield from read_warc(f)
    else:
        yield from read_jsonl(path)


async def in_thread(items: Iterator[Any], *, batch: int = 64, finally_: Callable[[], None] | None = None) -> AsyncIterator[Any]:
    """Iterate a blocking iterator (file reading, extraction) on a worker thread, in batches."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            chunk = await loop.run_in_executor(None, lambda: list(itertools.islice(items, batch)))
            if not chunk:
                return
            for item in chunk:
                yield item
    finally:
        if finally_ is not None:
            finally_()


def document_line(stored: dict[str, Any]) -> bytes:
    """One JSON Lines record of an indexed document (its stored fields)."""
    row = {
        "url": stored.get("url", ""),
        "title": stored.get("title", ""),
        "text": stored.get("body", ""),
        "description": stored.get("description", ""),
        "language": stored.get("language", ""),
        "crawled_at": stored.get("crawled_at", 0.0),
    }
    return json.dumps(row, ensure_ascii=False).encode() + b"\n"


def _document(url: str, **fields: Any) -> Document | str:
    canon = canonicalize(url) if isinstance(url, str) else None
    if canon is None:
        return "no_url"
    return Document(doc_id=doc_id(canon), url=canon, host=host_of(canon), **fields)


def read_jsonl(path: str | Path) -> Iterator[Document | str]:
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:  # type: ignore[operator]
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError
                yield _document(
                    row.get("url"),
                    title=str(row.get("title") or ""),
                    body=str(row.get("text") or ""),
                    description=str(row.get("description") or ""),
                    language=str(row.get("language") or ""),
                    crawled_at=float(row.get("crawled_at") or 0.0),
                )
            except (ValueError, TypeError):
                yield "bad_json"


def _warc_time(value: str | None) -> float:
    try:
        return datetime.fromisoformat((value or "").replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def read_warc(stream: IO[bytes]) -> Iterator[Document | str]:
    try:
        for record in ArchiveIterator(stream):
            if record.rec_type != "response" or record.http_headers is None:
                yield "not_response"
                continue
            status = record.http_headers.get_statuscode()
            if status != "200":
                yield f"http_{status}"
                continue
            raw_type = record.http_headers.get_header("Content-Type") or "text/html"
            ctype = raw_type.split(";")[0].strip().lower()
            if ctype not in HTML_TYPES:
                yield "not_html"
                continue
            body = record.content_stream().read(MAX_RECORD_BYTES)
            charset = None
            if "charset=" in raw_type:
                charset = raw_type.split("charset=", 1)[1].split(";")[0].strip().strip('"') or None
            url = record.rec_headers.get_header("WARC-Target-URI") or ""
            ex = extract(body, url, ctype, charset)
            if ex.noindex:
                yield "noindex"
                continue
            yield _document(
                url, title=ex.title, headings=ex.headings, body=ex.body, description=ex.description,
                language=ex.language, crawled_at=_warc_time(record.rec_headers.get_header("WARC-Date")),
            )
    except Exception:  # a damaged archive: what was read so far stays imported
        yield "bad_record"
