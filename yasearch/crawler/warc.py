"""A crawl's faithful copy: every fetched HTML response as a WARC (ISO 28500) record."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from .fetcher import FetchResult

#: Headers that describe the wire encoding, not the body we store (aiohttp inflated it).
_WIRE_HEADERS = frozenset({"content-encoding", "transfer-encoding", "content-length"})


class WarcFile:
    """Appends response records to ``path`` (gzip per record, so a crash keeps the rest)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")
        self._writer = WARCWriter(self._file, gzip=True)
        self._lock = threading.Lock()
        self.records = 0

    def write(self, result: FetchResult) -> None:
        headers = [(k, v) for k, v in result.headers if k.lower() not in _WIRE_HEADERS]
        headers.append(("Content-Length", str(len(result.body))))
        status = f"{result.status} {result.reason_phrase}".strip()
        http = StatusAndHeaders(status, headers, protocol=f"HTTP/{result.http_version}")
        record = self._writer.create_warc_record(
            result.final_url, "response", payload=io.BytesIO(result.body), http_headers=http
        )
        with self._lock:
            self._writer.write_record(record)
            self._file.flush()
            self.records += 1

    def close(self) -> None:
        with self._lock:
            self._file.close()
