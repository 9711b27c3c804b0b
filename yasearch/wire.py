"""The /p2p/v1 messages as typed values: one msgspec Struct per request and reply.

Every limit of the protocol is declared here, once, as a ``msgspec.Meta``
constraint (lengths, hex-id patterns, numeric ranges) or a constant. A message
is validated exactly once, where it enters this peer: the p2p server decodes
request bodies with :func:`decode`, and the p2p client decodes other peers'
replies with it too. Everything behind that boundary (the shard store, the
publisher, global search) trusts the typed values it is given.

The JSON on the wire is what docs/protocol.md describes: the same field names,
a posting as the compact array ``[doc_id, tf, flags, length]``, a compact
record as ``[host, language, origin]``. Optional request fields that are absent
are not sent (``UNSET``); ``null`` is accepted for them, as "absent".
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType
from msgspec.structs import replace

from yasearch.crawler.urls import host_of
from yasearch.identity import Identity, node_id_of, verify
from yasearch.limits import (
    MAX_DESCRIPTION_CHARS,
    MAX_DOC_LENGTH,
    MAX_FLAGS,
    MAX_HOST_CHARS,
    MAX_LANGUAGE_CHARS,
    MAX_ORIGIN_CHARS,
    MAX_TERM_CHARS,
    MAX_TF,
    MAX_TITLE_CHARS,
    MAX_UNIX_TIME,
    MAX_URL_CHARS,
)
from yasearch.records import DocRecord, Posting

#: 2: posting batches, withdrawals and document records are signed by their origin.
PROTOCOL_VERSION = 2
#: Postings in one /postings request (YaCy caps a transfer at 1,000 URLs; a
#: posting is much smaller than a URL entry, so a few thousand is still small).
MAX_POSTINGS = 5_000
MAX_DOCS = 1_000
MAX_DOC_IDS = 5_000
MAX_LOOKUP_TERMS = 16
MAX_TOP_M = 2_000
MAX_SKIP = 1_000_000  # where a deeper scored batch starts
MAX_VERIFY_DOCS = 200  # documents one /verify asks about
MAX_PHRASES = 8
MAX_PHRASE_WORDS = 16
#: Terms one withdrawal names in ``terms`` (summed over its documents) ...
MAX_WITHDRAW_TERMS = MAX_POSTINGS
#: ... and in ``keep_terms`` (a re-crawled page keeps all its current terms).
MAX_KEEP_TERMS = 20 * MAX_POSTINGS
MAX_P2P_BODY = 4 * 1024 * 1024  # inflated bytes accepted for one p2p request
#: A snippet in a /verify reply (the asker shows at most 1,000 characters of it).
MAX_SNIPPET_CHARS = 10_000
#: Counts in replies (accepted, df, ...): far above any real figure, within a double.
MAX_COUNT = 2**53
#: A signed message's ``signed_at`` may be this far in the future (clock skew) ...
MAX_CLOCK_SKEW = 600.0
#: ... and this old (a holder hands on batches as long as it holds their postings).
MAX_SIGNATURE_AGE = 30 * 24 * 3600.0

# Ids are declared as 40-character strings; that they are lowercase hex is checked
# once per message over all its ids together (decode(), _hex_ids()): a regex per id
# was two thirds of the decoding time of a 5,000-posting batch (docs/benchmarks.md).
_HEX40 = {"pattern": "^[0-9a-f]{40}$"}
_NOT_HEX = str.maketrans("", "", "0123456789abcdef")

NodeId = Annotated[str, Meta(min_length=40, max_length=40, extra_json_schema=_HEX40,
                             description="a node ID: 40 lowercase hex characters")]
DocId = Annotated[str, Meta(min_length=40, max_length=40, extra_json_schema=_HEX40,
                            description="SHA-1 hex of the canonical URL")]
Term = Annotated[str, Meta(min_length=1, max_length=MAX_TERM_CHARS)]
Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
DocLength = Annotated[int, Meta(ge=0, le=MAX_DOC_LENGTH)]
Url = Annotated[str, Meta(max_length=MAX_URL_CHARS, pattern="^https?://", description="an http(s) URL")]
Title = Annotated[str, Meta(max_length=MAX_TITLE_CHARS)]
Description = Annotated[str, Meta(max_length=MAX_DESCRIPTION_CHARS)]
Language = Annotated[str, Meta(max_length=MAX_LANGUAGE_CHARS)]
Host = Annotated[str, Meta(max_length=MAX_HOST_CHARS)]
Origin = Annotated[str, Meta(max_length=MAX_ORIGIN_CHARS)]
UnixTime = Annotated[float, Meta(ge=0, lt=MAX_UNIX_TIME)]
TfPart = Annotated[float, Meta(ge=0, le=3.0, description="BM25 tf-part, below K1 + 1 = 2.2")]
TermsOfDocs = Annotated[dict[DocId, list[Term]], Meta(max_length=MAX_DOC_IDS)]
PubKey = Annotated[str, Meta(max_length=64, description="the origin's Ed25519 public key: 64 lowercase hex characters")]
Signature = Annotated[str, Meta(max_length=128, description="Ed25519 signature: 128 lowercase hex characters")]
Phrases = Annotated[list[Annotated[list[Term], Meta(min_length=1, max_length=MAX_PHRASE_WORDS)]], Meta(max_length=MAX_PHRASES)]

T = TypeVar("T")


# -- parts ------------------------------------------------------------------------


class WirePosting(Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    """``[doc_id, tf, flags, length]``: one term in one document."""

    doc_id: DocId
    tf: Annotated[int, Meta(ge=0, le=MAX_TF)]
    flags: Annotated[int, Meta(ge=0, le=MAX_FLAGS)]
    length: DocLength

    @classmethod
    def of(cls, p: Posting) -> WirePosting:
        return cls(p.doc_id, p.tf, p.flags, p.length)

    def to_posting(self) -> Posting:
        return Posting(doc_id=self.doc_id, tf=self.tf, flags=self.flags, length=self.length)


class PostingEntry(Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    """``[term, [doc_id, tf, flags, length]]``."""

    term: Term
    posting: WirePosting


class WireRecord(Struct, frozen=True):
    """A document record: what a result row shows about a document, signed by its
    ``origin`` (``sig`` over :func:`signed_bytes`; ``pubkey`` hashes to ``origin``)."""

    doc_id: DocId
    url: Url
    title: Title = ""
    description: Description = ""
    language: Language = ""
    length: DocLength = 0
    crawled_at: UnixTime = 0.0
    host: Host = ""
    origin: Origin = ""
    pubkey: PubKey = ""
    sig: Signature = ""

    @classmethod
    def of(cls, r: DocRecord) -> WireRecord:
        return cls(
            doc_id=r.doc_id, url=r.url, title=r.title, description=r.description, language=r.language,
            length=r.length, crawled_at=float(r.crawled_at), host=r.host, origin=r.origin,
        )

    def to_record(self) -> DocRecord:
        return DocRecord(
            doc_id=self.doc_id, url=self.url, title=self.title, description=self.description,
            language=self.language, length=self.length, crawled_at=self.crawled_at,
            origin=self.origin, host=self.host,
        )


class CompactRecord(Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    """``[host, language, origin]``: enough for site:/lang: filters, facets and phrase checks."""

    host: Host
    language: Language
    origin: Origin


# -- requests and replies -------------------------------------------------------------


class InfoReply(Struct):
    """``GET /p2p/v1/info``: what peers cache about each other."""

    peer_id: NodeId
    name: Annotated[str, Meta(max_length=64)]
    version: Annotated[str, Meta(max_length=32)]
    http_url: Annotated[str, Meta(max_length=300)]
    documents: Count
    total_length: Count
    v: int = PROTOCOL_VERSION


class PostingsRequest(Struct):
    """Store a batch of postings of ``origin``'s documents, signed by it; ``docs`` may ride along.
    A holder handing postings on forwards the origin's batch unchanged (it cannot sign for the
    origin) and names in ``only`` the entries to store. ``docs`` and ``only`` are not signed."""

    origin: NodeId
    postings: Annotated[list[PostingEntry], Meta(max_length=MAX_POSTINGS)]
    signed_at: UnixTime = 0.0
    pubkey: PubKey = ""
    sig: Signature = ""
    docs: Annotated[list[WireRecord], Meta(max_length=MAX_DOCS)] | None | UnsetType = UNSET
    only: Annotated[list[Annotated[int, Meta(ge=0, lt=MAX_POSTINGS)]], Meta(max_length=MAX_POSTINGS)] | None | UnsetType = UNSET
    v: int = PROTOCOL_VERSION


class PostingsReply(Struct):
    """``missing_docs``: the documents whose records the holder lacks (send only those)."""

    accepted: Count
    refused_quota: Count
    missing_docs: Annotated[list[DocId], Meta(max_length=MAX_POSTINGS)] = []
    #: Postings of the same (term, document) held for another origin (never overwritten).
    refused_owner: Count = 0


class DocsRequest(Struct):
    """Records a /postings reply said were missing, each signed by its own origin."""

    origin: NodeId
    docs: Annotated[list[WireRecord], Meta(max_length=MAX_DOCS)]
    v: int = PROTOCOL_VERSION


class DocsReply(Struct):
    stored: Count


class WithdrawRequest(Struct):
    """Remove the origin's postings of documents: all, only ``terms``, or all but ``keep_terms``
    (signed by the origin; only postings it signed before ``signed_at``)."""

    origin: NodeId
    doc_ids: Annotated[list[DocId], Meta(max_length=MAX_DOC_IDS)]
    terms: TermsOfDocs | None | UnsetType = UNSET
    keep_terms: TermsOfDocs | None | UnsetType = UNSET
    signed_at: UnixTime = 0.0
    pubkey: PubKey = ""
    sig: Signature = ""
    v: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:  # raised while decoding: a ValidationError (a 413, see decode())
        if self.terms and sum(map(len, self.terms.values())) > MAX_WITHDRAW_TERMS:
            raise ValueError(f"{TOO_MANY}: at most {MAX_WITHDRAW_TERMS} terms per withdrawal")
        if self.keep_terms and sum(map(len, self.keep_terms.values())) > MAX_KEEP_TERMS:
            raise ValueError(f"{TOO_MANY}: at most {MAX_KEEP_TERMS} keep_terms per withdrawal")


class WithdrawReply(Struct):
    removed: Count


class LookupRequest(Struct):
    """df of ``terms``, then their top ``m`` postings by impact, or exactly those of ``candidates``.
    With ``avg``: the top ``m`` by exact BM25 tf-part at that average length, after ``skip``,
    none below ``floor`` (the reply's ``bound``: the best tf-part not sent). ``record_ids``,
    ``records_top``: signed records of these documents, of the first that many postings sent;
    ``record_at``: of the best ``records_top`` candidates whose ``partial`` + ``idf`` x tf-part reaches it."""

    terms: Annotated[list[Term], Meta(max_length=MAX_LOOKUP_TERMS)]
    m: Annotated[int, Meta(ge=0, le=MAX_TOP_M)] = 1000
    candidates: Annotated[list[DocId], Meta(max_length=MAX_DOC_IDS)] | None | UnsetType = UNSET
    records: bool | Literal["compact"] = False
    avg: Annotated[float, Meta(ge=0, le=MAX_DOC_LENGTH)] | UnsetType = UNSET
    skip: Annotated[int, Meta(ge=0, le=MAX_SKIP)] = 0
    floor: TfPart = 0.0
    record_ids: Annotated[list[DocId], Meta(max_length=MAX_DOCS)] | UnsetType = UNSET
    records_top: Annotated[int, Meta(ge=0, le=MAX_DOCS)] = 0
    idf: Annotated[float, Meta(ge=0, le=100)] = 0.0
    partial: Annotated[list[Annotated[float, Meta(ge=0, le=1e6)]], Meta(max_length=MAX_DOC_IDS)] | UnsetType = UNSET
    record_at: Annotated[float, Meta(ge=0, le=1e6)] | UnsetType = UNSET
    v: int = PROTOCOL_VERSION


class LookupReply(Struct):
    df: Annotated[dict[Term, Count], Meta(max_length=MAX_LOOKUP_TERMS)]
    postings: Annotated[dict[Term, Annotated[list[WirePosting], Meta(max_length=MAX_DOC_IDS)]], Meta(max_length=MAX_LOOKUP_TERMS)]
    docs: dict[DocId, WireRecord] | UnsetType = UNSET
    compact: dict[DocId, CompactRecord] | UnsetType = UNSET
    bound: Annotated[dict[Term, TfPart], Meta(max_length=MAX_LOOKUP_TERMS)] | UnsetType = UNSET
    v: int = PROTOCOL_VERSION


class VerifyRequest(Struct):
    """Ask the origin of documents which of them contain every phrase, with snippets."""

    doc_ids: Annotated[list[DocId], Meta(max_length=MAX_VERIFY_DOCS)]
    terms: Annotated[list[Term], Meta(max_length=MAX_LOOKUP_TERMS)] | None | UnsetType = UNSET
    phrases: Phrases | None | UnsetType = UNSET
    v: int = PROTOCOL_VERSION


class VerifyMatch(Struct):
    snippet: Annotated[str, Meta(max_length=MAX_SNIPPET_CHARS)] = ""


class VerifyReply(Struct):
    matches: Annotated[dict[DocId, VerifyMatch], Meta(max_length=MAX_VERIFY_DOCS)]
    v: int = PROTOCOL_VERSION


# -- decoding and encoding ---------------------------------------------------------------

#: The start of a message that means "over a count limit" (413, not 400).
TOO_MANY = "too many"


class BadMessage(ValueError):
    """A body that is not a valid message of the expected type.

    ``code`` is the error code a server answers with: ``bad_json``, ``bad_request``,
    ``bad_version``, ``too_many`` (a list or object over its limit: 413) or
    ``bad_signature`` (not signed by the origin it names: 403).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return {"too_many": 413, "bad_signature": 403}.get(self.code, 400)


class _Versioned(Struct):
    v: Any = PROTOCOL_VERSION


_decoder = lru_cache(maxsize=None)(msgspec.json.Decoder)
_encoder = msgspec.json.Encoder()


def _check_version(v: object) -> None:
    if v != PROTOCOL_VERSION:
        raise BadMessage("bad_version", f"protocol version {v!r:.40} is not supported; this peer speaks {PROTOCOL_VERSION}")


def decode(raw: bytes, model: type[T]) -> T:
    """``raw`` JSON as a ``model``, fully validated, or :class:`BadMessage`.

    Nesting too deep for the decoder and numbers out of range are bad messages
    like any other, never an internal error.
    """
    try:
        msg = _decoder(model).decode(raw)
    except msgspec.ValidationError as e:
        text = str(e)
        try:  # a message of another protocol version is reported as that
            _check_version(_decoder(_Versioned).decode(raw).v)
        except (msgspec.MsgspecError, RecursionError):
            pass
        too_many = text.startswith(TOO_MANY) or any(f"`{kind}` of length <=" in text for kind in ("array", "object"))
        raise BadMessage("too_many" if too_many else "bad_request", text) from None
    except msgspec.DecodeError as e:
        raise BadMessage("bad_json", f"the body is not valid JSON: {e}") from None
    except RecursionError:
        raise BadMessage("bad_request", "the JSON is nested too deeply") from None
    _check_version(getattr(msg, "v", PROTOCOL_VERSION))
    check_ids(msg)
    _check_signed(msg)
    return msg


def check_ids(msg: object) -> None:
    """Every node and document id of ``msg`` is lowercase hex, checked in one pass over
    all of them joined (a ``pattern`` per id, checked by Python's ``re``, cost two
    thirds of decoding a 5,000-posting batch)."""
    if "".join(_hex_ids(msg)).translate(_NOT_HEX):
        bad = next(i for i in _hex_ids(msg) if i.translate(_NOT_HEX))
        raise BadMessage("bad_request", f"id {bad!r} is not lowercase hex")


def _hex_ids(msg: object) -> Iterator[str]:
    """Every node and document id of a message (see NodeId and DocId)."""
    if isinstance(msg, PostingsRequest):
        yield msg.origin
        yield from (e.posting.doc_id for e in msg.postings)
        yield from _record_ids(present(msg.docs) or ())
        yield msg.pubkey
        yield msg.sig
    elif isinstance(msg, DocsRequest):
        yield msg.origin
        yield from _record_ids(msg.docs)
    elif isinstance(msg, WithdrawRequest):
        yield msg.origin
        yield msg.pubkey
        yield msg.sig
        yield from msg.doc_ids
        yield from present(msg.terms) or ()
        yield from present(msg.keep_terms) or ()
    elif isinstance(msg, LookupRequest):
        yield from present(msg.candidates) or ()
        yield from present(msg.record_ids) or ()
    elif isinstance(msg, LookupReply):
        for plist in msg.postings.values():
            yield from (p.doc_id for p in plist)
        for docs in (present(msg.docs) or {}, present(msg.compact) or {}):
            yield from docs
        yield from _record_ids((present(msg.docs) or {}).values())
    elif isinstance(msg, PostingsReply):
        yield from msg.missing_docs
    elif isinstance(msg, (VerifyRequest, VerifyReply)):
        yield from (msg.doc_ids if isinstance(msg, VerifyRequest) else msg.matches)
    elif isinstance(msg, InfoReply):
        yield msg.peer_id


def _record_ids(records: Any) -> Iterator[str]:
    for r in records:
        yield r.doc_id
        yield r.pubkey
        yield r.sig


def encode(msg: Struct) -> bytes:
    """Compact JSON of a message (absent optional fields left out)."""
    return _encoder.encode(msg)


def present(value: T | None | UnsetType) -> T | None:
    """An optional field's value, or None when it was not sent (or sent as ``null``)."""
    return None if isinstance(value, UnsetType) else value


# -- signatures ---------------------------------------------------------------------

#: Signed messages and records, each with its own domain tag (a signature of one
#: kind can never pass for another).
_TAGS: dict[type, bytes] = {
    PostingsRequest: b"yasearch-postings-v2\0",
    WithdrawRequest: b"yasearch-withdraw-v2\0",
    WireRecord: b"yasearch-record-v2\0",
}
Signed = TypeVar("Signed", PostingsRequest, WithdrawRequest, WireRecord)


def signed_bytes(msg: PostingsRequest | WithdrawRequest | WireRecord) -> bytes:
    """What the origin signs: a tag and the message's compact JSON with ``sig`` empty
    (and, for a batch, without ``docs`` and ``only``). The receiver re-encodes the
    values it decoded, so it checks exactly what it will act on."""
    if isinstance(msg, PostingsRequest):
        body: Struct = replace(msg, sig="", docs=UNSET, only=UNSET)
    else:
        body = replace(msg, sig="")
    return _TAGS[type(msg)] + _encoder.encode(body)


def sign(msg: Signed, identity: Identity) -> Signed:
    """``msg`` with this peer's public key and its signature (``origin`` must be ours)."""
    msg = replace(msg, pubkey=identity.public_key.hex(), sig="")
    return replace(msg, sig=identity.sign(signed_bytes(msg)).hex())


def signature_ok(msg: PostingsRequest | WithdrawRequest | WireRecord, origin: str) -> bool:
    """Whether ``msg`` is signed by the key whose node ID is ``origin``."""
    try:
        pubkey, sig = bytes.fromhex(msg.pubkey), bytes.fromhex(msg.sig)
    except ValueError:
        return False
    return node_id_of(pubkey).hex() == origin and verify(pubkey, sig, signed_bytes(msg))


def batch_body(req: PostingsRequest) -> bytes:
    """A signed batch as a holder keeps it to hand on later: the origin's fields and signature."""
    return _encoder.encode(replace(req, docs=UNSET, only=UNSET))


def record_problem(r: WireRecord) -> str | None:
    """Why a record cannot be stored or shown, or None: it must be signed by its
    origin, its id must be the hash of its URL and its host the URL's host."""
    if not signature_ok(r, r.origin):
        return f"record {r.doc_id} is not signed by its origin"
    if hashlib.sha1(r.url.encode("utf-8")).hexdigest() != r.doc_id:
        return f"record {r.doc_id}: the id is not the hash of its URL"
    if host_of(r.url) != r.host:
        return f"record {r.doc_id}: the host is not the URL's host"
    return None


def _fresh(signed_at: float) -> bool:
    now = time.time()
    return now - MAX_SIGNATURE_AGE <= signed_at <= now + MAX_CLOCK_SKEW


def _check_signed(msg: object) -> None:
    """The checks a message's fields cannot express: signatures bound to the origin,
    ids bound to URLs, tf <= length. Raises :class:`BadMessage`."""
    records: Any = ()
    if isinstance(msg, (PostingsRequest, WithdrawRequest)):
        if not signature_ok(msg, msg.origin):
            raise BadMessage("bad_signature", f"the message is not signed by its origin {msg.origin}")
        if not _fresh(msg.signed_at):
            raise BadMessage("bad_request", f"signed_at {msg.signed_at} is too old or in the future")
    if isinstance(msg, PostingsRequest):
        if any(e.posting.tf > e.posting.length for e in msg.postings):
            raise BadMessage("bad_request", "a posting's tf exceeds its document's length")
        if any(i >= len(msg.postings) for i in present(msg.only) or ()):
            raise BadMessage("bad_request", "an index in only is past the end of postings")
        records = present(msg.docs) or ()
    elif isinstance(msg, DocsRequest):
        records = msg.docs
    elif isinstance(msg, LookupReply):
        docs = present(msg.docs) or {}
        if any(d != r.doc_id for d, r in docs.items()):
            raise BadMessage("bad_request", "a record is filed under another document's id")
        records = docs.values()
    for r in records:
        problem = record_problem(r)
        if problem is not None:
            raise BadMessage("bad_signature", problem)
