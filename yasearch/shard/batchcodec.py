"""The origin's signed batch as a holder keeps it: packed, columnar, compressed.

A holder hands postings on as their origin signed them (:mod:`yasearch.handoff`),
so it keeps every signed batch its postings came from. The signature covers the
batch's values, not its bytes on the wire (:func:`yasearch.wire.signed_bytes`
re-encodes what was decoded), so the holder may keep those values in any form
that gives them back exactly. This one stores them column by column: the
batch's distinct terms once, its distinct document ids once as 20 raw bytes
each, then per entry the term's and the document's index, tf, flags and length
(msgpack integers), all compressed with zlib. A 5,000-entry batch of 40-character
hex ids costs about a tenth of its JSON.

:func:`pack` refuses nothing: a value that does not survive the round trip as
bytes (an id that is not lowercase hex) is kept as text.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

import msgspec

from yasearch.wire import PostingEntry, PostingsRequest, WirePosting

_FORMAT = 1
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()


def hexbytes(s: str) -> bytes | str:
    """``s`` as bytes when hex round-trips it exactly, else ``s`` itself."""
    try:
        b = bytes.fromhex(s)
    except ValueError:
        return s
    return b if b.hex() == s else s


def unhex(v: bytes | str) -> str:
    return v.hex() if isinstance(v, bytes) else v


def pack(req: PostingsRequest) -> bytes:
    """The batch's signed fields (not ``docs`` nor ``only``), compressed."""
    terms: dict[str, int] = {}
    docs: dict[str, int] = {}
    ti: list[int] = []
    di: list[int] = []
    tf: list[int] = []
    flags: list[int] = []
    length: list[int] = []
    for e in req.postings:
        p = e.posting
        ti.append(terms.setdefault(e.term, len(terms)))
        di.append(docs.setdefault(p.doc_id, len(docs)))
        tf.append(p.tf)
        flags.append(p.flags)
        length.append(p.length)
    raw = [hexbytes(d) for d in docs]
    doc_col: bytes | list[Any] = b"".join(raw) if all(isinstance(b, bytes) and len(b) == 20 for b in raw) else raw  # type: ignore[arg-type]
    body = [
        _FORMAT, req.v, hexbytes(req.origin), req.signed_at, hexbytes(req.pubkey), hexbytes(req.sig),
        list(terms), doc_col, ti, di, tf, flags, length,
    ]
    return zlib.compress(_enc.encode(body), 9)


def unpack(blob: bytes) -> PostingsRequest:
    """The batch :func:`pack` was given (``docs`` and ``only`` unset)."""
    fmt, v, origin, signed_at, pubkey, sig, terms, doc_col, ti, di, tf, flags, length = _dec.decode(zlib.decompress(blob))
    if fmt != _FORMAT:
        raise ValueError(f"unknown packed batch format {fmt}")
    if isinstance(doc_col, bytes):
        docs = [doc_col[i : i + 20].hex() for i in range(0, len(doc_col), 20)]
    else:
        docs = [unhex(d) for d in doc_col]
    postings = [
        PostingEntry(terms[t], WirePosting(docs[d], a, b, n)) for t, d, a, b, n in zip(ti, di, tf, flags, length)
    ]
    return PostingsRequest(
        origin=unhex(origin), postings=postings, signed_at=signed_at, pubkey=unhex(pubkey), sig=unhex(sig), v=v
    )


def digest(blob: bytes) -> bytes:
    """What identifies a packed batch (the same batch received twice is kept once)."""
    return hashlib.sha1(blob).digest()
