"""The peer-to-peer HTTP API under /p2p/v1: what peers say to each other.

Every body is JSON (optionally gzip-compressed with ``Content-Encoding: gzip``;
aiohttp inflates it and the app's ``client_max_size`` bounds the inflated size).
Every field is validated before anything is stored: a malformed, oversized or
type-confused request gets a JSON 4xx and leaves the shard store untouched,
because the store validates a whole batch before it writes any of it.

Peers never get admin rights over each other: nothing here starts crawls,
removes local documents or reads the admin API. See docs/protocol.md.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from yasearch.errors import ApiError
from yasearch.httpkit import route
from yasearch.records import DocRecord, Posting

if TYPE_CHECKING:
    from yasearch.peer import Peer

PROTOCOL_VERSION = 1
#: Postings in one /postings request (YaCy caps a transfer at 1,000 URLs; a
#: posting is much smaller than a URL entry, so a few thousand is still small).
MAX_POSTINGS = 5_000
MAX_DOCS = 1_000
MAX_DOC_IDS = 5_000
MAX_LOOKUP_TERMS = 16
MAX_TOP_M = 2_000
#: Inflated bytes accepted for one p2p request.
MAX_P2P_BODY = 4 * 1024 * 1024
MAX_TERM_CHARS = 64

_HEX40 = re.compile(r"[0-9a-f]{40}")

P2P_PEER: web.AppKey["Peer"] = web.AppKey("p2p_peer")


def _bad(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


async def read_body(request: web.Request) -> dict[str, Any]:
    """The JSON object in a request body, inflated if gzip, bounded in size."""
    if request.content_length is not None and request.content_length > MAX_P2P_BODY:
        raise ApiError(413, "too_large", f"the body is larger than {MAX_P2P_BODY} bytes")
    raw = await request.read()
    if raw[:2] == b"\x1f\x8b":  # gzip sent without Content-Encoding: inflate, bounded
        try:
            d = gzip.GzipFile(fileobj=io.BytesIO(raw))
            raw = d.read(MAX_P2P_BODY + 1)
        except (OSError, EOFError):
            raise _bad("the body is not valid gzip") from None
        if len(raw) > MAX_P2P_BODY:
            raise ApiError(413, "too_large", f"the inflated body is larger than {MAX_P2P_BODY} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _bad("the body is not valid JSON", "bad_json") from None
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    version = body.get("v", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        raise ApiError(400, "bad_version", f"protocol version {version!r} is not supported; this peer speaks {PROTOCOL_VERSION}")
    return body


def _list(body: dict[str, Any], name: str, limit: int, required: bool = True) -> list[Any]:
    value = body.get(name)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise _bad(f"{name} must be a list")
    if len(value) > limit:
        raise ApiError(413, "too_many", f"{name} has {len(value)} entries; at most {limit} per request")
    return value


def _origin(body: dict[str, Any]) -> str:
    origin = body.get("origin")
    if not isinstance(origin, str) or not _HEX40.fullmatch(origin):
        raise _bad("origin must be the sender's node ID as 40 lowercase hex characters")
    return origin


def _doc_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _HEX40.fullmatch(value):
        raise _bad(f"{where}: a doc id is 40 lowercase hex characters")
    return value


def _term(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TERM_CHARS:
        raise _bad(f"{where}: a term is a string of 1-{MAX_TERM_CHARS} characters")
    return value


def _int(value: Any, where: str, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise _bad(f"{where}: must be an integer between 0 and {hi}")
    return value


def posting_to_wire(p: Posting) -> list[Any]:
    return [p.doc_id, p.tf, p.flags, p.length]


def posting_from_wire(entry: Any, where: str) -> Posting:
    if not isinstance(entry, list) or len(entry) != 4:
        raise _bad(f"{where}: a posting is [doc_id, tf, flags, length]")
    return Posting(
        doc_id=_doc_id(entry[0], where),
        tf=_int(entry[1], where + " tf", 10_000_000),
        flags=_int(entry[2], where + " flags", 0xFF),
        length=_int(entry[3], where + " length", 100_000_000),
    )


def record_to_wire(r: DocRecord) -> dict[str, Any]:
    return {
        "doc_id": r.doc_id,
        "url": r.url,
        "title": r.title,
        "description": r.description,
        "language": r.language,
        "length": r.length,
        "crawled_at": r.crawled_at,
        "host": r.host,
        "origin": r.origin,
    }


def record_from_wire(d: Any, where: str, origin: str | None = None) -> DocRecord:
    if not isinstance(d, dict):
        raise _bad(f"{where}: a document record is an object")

    def s(name: str, limit: int) -> str:
        v = d.get(name, "")
        if not isinstance(v, str) or len(v) > limit:
            raise _bad(f"{where}: {name} must be a string of at most {limit} characters")
        return v

    crawled = d.get("crawled_at", 0.0)
    if isinstance(crawled, bool) or not isinstance(crawled, (int, float)) or not 0 <= crawled < 1e11:
        raise _bad(f"{where}: crawled_at must be a Unix time")
    url = s("url", 2048)
    if not url.startswith(("http://", "https://")):
        raise _bad(f"{where}: url must be an http(s) URL")
    return DocRecord(
        doc_id=_doc_id(d.get("doc_id"), where),
        url=url,
        title=s("title", 1024),
        description=s("description", 4096),
        language=s("language", 32),
        length=_int(d.get("length", 0), where + " length", 100_000_000),
        crawled_at=float(crawled),
        origin=origin if origin is not None else s("origin", 64),
        host=s("host", 255),
    )


# -- handlers ------------------------------------------------------------------


async def info(request: web.Request) -> web.Response:
    """This peer's info record: what peers cache about each other."""
    peer = request.app[P2P_PEER]
    return web.json_response(await peer.info())


async def postings(request: web.Request) -> web.Response:
    """Store postings a peer publishes; answer with the doc ids we lack records for.

    Body: ``{"v": 1, "origin": ID, "postings": [[term, [doc_id, tf, flags, length]], ...],
    "docs": [record, ...]?}``. ``docs`` may ride along (records of documents the
    sender knows we lack); otherwise the reply's ``missing_docs`` asks for them.
    """
    peer = request.app[P2P_PEER]
    body = await read_body(request)
    origin = _origin(body)
    entries = _list(body, "postings", MAX_POSTINGS)
    batch: list[tuple[str, Posting]] = []
    for i, e in enumerate(entries):
        if not isinstance(e, list) or len(e) != 2:
            raise _bad(f"postings[{i}]: an entry is [term, posting]")
        batch.append((_term(e[0], f"postings[{i}]"), posting_from_wire(e[1], f"postings[{i}]")))
    records = [record_from_wire(d, f"docs[{i}]", origin) for i, d in enumerate(_list(body, "docs", MAX_DOCS, required=False))]
    try:
        result = await peer.shard.upsert(origin, batch)
        if records:
            await peer.shard.put_docs(origin, records)
    except ValueError as e:
        raise _bad(str(e)) from None
    missing = await peer.shard.missing_docs(dict.fromkeys(p.doc_id for _, p in batch))
    status = 200
    if result.refused_quota and not result.accepted:
        status = 429
    return web.json_response(
        {"accepted": result.accepted, "refused_quota": result.refused_quota, "missing_docs": missing},
        status=status,
    )


async def docs(request: web.Request) -> web.Response:
    """Store document records (the ones a /postings reply said were missing)."""
    peer = request.app[P2P_PEER]
    body = await read_body(request)
    origin = _origin(body)
    records = [record_from_wire(d, f"docs[{i}]", origin) for i, d in enumerate(_list(body, "docs", MAX_DOCS))]
    try:
        stored = await peer.shard.put_docs(origin, records)
    except ValueError as e:
        raise _bad(str(e)) from None
    return web.json_response({"stored": stored})


async def withdraw(request: web.Request) -> web.Response:
    """Remove an origin's postings of documents: all of them, all but ``keep_terms``,
    or only ``terms`` (``{doc_id: [term, ...]}``)."""
    peer = request.app[P2P_PEER]
    body = await read_body(request)
    origin = _origin(body)
    doc_ids = [_doc_id(d, f"doc_ids[{i}]") for i, d in enumerate(_list(body, "doc_ids", MAX_DOC_IDS))]
    keep_raw = body.get("keep_terms")
    keep: dict[str, set[str]] | None = None
    if keep_raw is not None:
        if not isinstance(keep_raw, dict) or len(keep_raw) > MAX_DOC_IDS:
            raise _bad("keep_terms must be an object {doc_id: [term, ...]}")
        keep = {}
        total = 0
        for d, terms in keep_raw.items():
            if not isinstance(terms, list):
                raise _bad("keep_terms values must be lists of terms")
            total += len(terms)
            if total > 20 * MAX_POSTINGS:
                raise ApiError(413, "too_many", "keep_terms is too large")
            keep[_doc_id(d, "keep_terms")] = {_term(t, "keep_terms") for t in terms}
    only_raw = body.get("terms")
    only: dict[str, set[str]] | None = None
    if only_raw is not None:
        if not isinstance(only_raw, dict) or len(only_raw) > MAX_DOC_IDS:
            raise _bad("terms must be an object {doc_id: [term, ...]}")
        only = {}
        total = 0
        for d, terms in only_raw.items():
            if not isinstance(terms, list):
                raise _bad("terms values must be lists of terms")
            total += len(terms)
            if total > MAX_POSTINGS:
                raise ApiError(413, "too_many", f"at most {MAX_POSTINGS} terms per withdrawal")
            only[_doc_id(d, "terms")] = {_term(t, "terms") for t in terms}
    try:
        removed = await peer.shard.withdraw(origin, doc_ids, keep, only)
    except ValueError as e:
        raise _bad(str(e)) from None
    return web.json_response({"removed": removed})


async def lookup(request: web.Request) -> web.Response:
    """Postings of terms this peer holds: df, then impact-ordered top-M or exact candidates.

    Body: ``{"v": 1, "terms": [...], "m": 1000, "candidates": [doc_id, ...]?,
    "records": true?}``. With ``candidates`` the reply holds exactly the postings of
    those documents (AND evaluation without shipping whole lists); without, the
    top ``m`` by impact. ``records`` adds the document records of what is returned.
    """
    peer = request.app[P2P_PEER]
    body = await read_body(request)
    terms = [_term(t, f"terms[{i}]") for i, t in enumerate(_list(body, "terms", MAX_LOOKUP_TERMS))]
    m = _int(body.get("m", 1000), "m", MAX_TOP_M)
    cand_raw = body.get("candidates")
    candidates = None
    if cand_raw is not None:
        candidates = [_doc_id(d, f"candidates[{i}]") for i, d in enumerate(_list(body, "candidates", MAX_DOC_IDS))]
    records_mode = body.get("records", False)
    if records_mode not in (True, False, "compact"):
        raise _bad('records must be true, false or "compact"')
    df = await peer.shard.df(terms)
    out: dict[str, list[list[Any]]] = {}
    seen: dict[str, None] = {}
    for t in dict.fromkeys(terms):
        plist = await (peer.shard.postings_for(t, candidates) if candidates is not None else peer.shard.top(t, m))
        out[t] = [posting_to_wire(p) for p in plist]
        seen.update(dict.fromkeys(p.doc_id for p in plist))
    reply: dict[str, Any] = {"v": PROTOCOL_VERSION, "df": df, "postings": out}
    if records_mode is True:
        recs = await peer.shard.docs(list(seen))
        reply["docs"] = {d: record_to_wire(r) for d, r in recs.items()}
    elif records_mode == "compact":
        recs = await peer.shard.docs(list(seen))
        reply["compact"] = {d: [r.host, r.language, r.origin] for d, r in recs.items()}
    return json_reply(request, reply)


def json_reply(request: web.Request, data: dict[str, Any]) -> web.Response:
    """JSON, gzip-compressed when large and the client accepts it (bytes per query count)."""
    raw = json.dumps(data, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if len(raw) > 1024 and "gzip" in request.headers.get("Accept-Encoding", ""):
        raw = gzip.compress(raw, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=raw, headers=headers)


MAX_PHRASES = 8
MAX_PHRASE_WORDS = 16


async def verify(request: web.Request) -> web.Response:
    """The origin of documents checks them against a query and returns snippets.

    Body: ``{"v": 1, "doc_ids": [...], "terms": [...], "phrases": [[term, ...], ...]}``.
    Only this peer holds the text of the pages it crawled, so phrase matching
    (which needs positions) and real snippets for remote results come from here.
    Reply: ``{"matches": {doc_id: {"snippet": plain text}}}`` for the documents this
    peer has that contain every phrase.
    """
    peer = request.app[P2P_PEER]
    body = await read_body(request)
    doc_ids = [_doc_id(d, f"doc_ids[{i}]") for i, d in enumerate(_list(body, "doc_ids", 200))]
    terms = [_term(t, f"terms[{i}]") for i, t in enumerate(_list(body, "terms", MAX_LOOKUP_TERMS, required=False))]
    phrases: list[list[str]] = []
    for i, ph in enumerate(_list(body, "phrases", MAX_PHRASES, required=False)):
        if not isinstance(ph, list) or not 1 <= len(ph) <= MAX_PHRASE_WORDS:
            raise _bad(f"phrases[{i}] must be a list of 1-{MAX_PHRASE_WORDS} terms")
        phrases.append([_term(t, f"phrases[{i}]") for t in ph])
    matches = await peer.verify_documents(doc_ids, terms, phrases)
    return web.json_response({"v": PROTOCOL_VERSION, "matches": matches})


def setup(app: web.Application, peer: "Peer") -> None:
    app[P2P_PEER] = peer
    route(app, "GET", "/p2p/v1/info", info, tag="p2p", summary="This peer's identity and protocol version")
    route(app, "POST", "/p2p/v1/postings", postings, tag="p2p", summary="Store postings this peer is responsible for", errors=(400, 413))
    route(app, "POST", "/p2p/v1/docs", docs, tag="p2p", summary="Store document records for postings held here", errors=(400, 413))
    route(app, "POST", "/p2p/v1/withdraw", withdraw, tag="p2p", summary="Withdraw postings of removed documents", errors=(400, 413))
    route(app, "POST", "/p2p/v1/lookup", lookup, tag="p2p", summary="The best postings of terms held here", errors=(400, 413))
    route(app, "POST", "/p2p/v1/verify", verify, tag="p2p", summary="Check documents of this peer's index against a query", errors=(400, 413))
