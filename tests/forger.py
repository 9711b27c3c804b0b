"""Signed /p2p/v1 bodies as a peer with a given key sends them (or a forger with the
wrong key): for tests that post raw HTTP to a peer."""

from __future__ import annotations

import time
from typing import Any

from yasearch.analysis import doc_id
from yasearch.crawler.urls import host_of
from yasearch.identity import Identity
from yasearch.wire import (
    DocsRequest,
    PostingEntry,
    PostingsRequest,
    WirePosting,
    WireRecord,
    WithdrawRequest,
    encode,
    sign,
)


def postings(key: Identity, entries: list[tuple[str, str, int, int, int]], *, origin: str | None = None,
             docs: list[WireRecord] | None = None, signed_at: float | None = None) -> bytes:
    """``/p2p/v1/postings`` of ``(term, doc_id, tf, flags, length)`` entries, signed with
    ``key``; ``origin`` (default: the key's own id) may claim someone else."""
    req = PostingsRequest(
        origin=origin or key.hex,
        postings=[PostingEntry(t, WirePosting(d, tf, f, n)) for t, d, tf, f, n in entries],
        signed_at=time.time() if signed_at is None else signed_at,
    )
    req = sign(req, key)
    if origin is not None and origin != key.hex:
        req.origin = origin  # claimed after signing: the signature is still the forger's
    if docs is not None:
        req.docs = docs
    return encode(req)


def record(key: Identity, url: str, **fields: Any) -> WireRecord:
    """A record of ``url`` signed by ``key`` (``fields`` override what it says, after signing
    when ``forge=True`` is among them)."""
    forge = fields.pop("forge", False)
    base = {"doc_id": doc_id(url), "url": url, "title": "a page", "host": host_of(url), "origin": key.hex, "length": 10}
    if forge:
        from msgspec.structs import replace

        return replace(sign(WireRecord(**base), key), **fields)
    return sign(WireRecord(**{**base, **fields}), key)


def docs(key: Identity, records: list[WireRecord]) -> bytes:
    return encode(DocsRequest(origin=key.hex, docs=records))


def withdraw(key: Identity, doc_ids: list[str], *, origin: str | None = None) -> bytes:
    req = sign(WithdrawRequest(origin=key.hex, doc_ids=doc_ids, signed_at=time.time()), key)
    if origin is not None:
        req.origin = origin
    return encode(req)
