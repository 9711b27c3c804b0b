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

from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

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

PROTOCOL_VERSION = 1
#: Postings in one /postings request (YaCy caps a transfer at 1,000 URLs; a
#: posting is much smaller than a URL entry, so a few thousand is still small).
MAX_POSTINGS = 5_000
MAX_DOCS = 1_000
MAX_DOC_IDS = 5_000
MAX_LOOKUP_TERMS = 16
MAX_TOP_M = 2_000
#: Documents one /verify asks about.
MAX_VERIFY_DOCS = 200
MAX_PHRASES = 8
MAX_PHRASE_WORDS = 16
#: Terms one withdrawal names in ``terms`` (summed over its documents) ...
MAX_WITHDRAW_TERMS = MAX_POSTINGS
#: ... and in ``keep_terms`` (a re-crawled page keeps all its current terms).
MAX_KEEP_TERMS = 20 * MAX_POSTINGS
#: Inflated bytes accepted for one p2p request.
MAX_P2P_BODY = 4 * 1024 * 1024
#: A snippet in a /verify reply (the asker shows at most 1,000 characters of it).
MAX_SNIPPET_CHARS = 10_000
#: Counts in replies (accepted, df, ...): far above any real figure, within a double.
MAX_COUNT = 2**53

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
TermsOfDocs = Annotated[dict[DocId, list[Term]], Meta(max_length=MAX_DOC_IDS)]

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
    """A document record: what a result row shows about a document."""

    doc_id: DocId
    url: Url
    title: Title = ""
    description: Description = ""
    language: Language = ""
    length: DocLength = 0
    crawled_at: UnixTime = 0.0
    host: Host = ""
    origin: Origin = ""

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
    """Store postings of the sender's documents; ``docs`` may ride along."""

    origin: NodeId
    postings: Annotated[list[PostingEntry], Meta(max_length=MAX_POSTINGS)]
    docs: Annotated[list[WireRecord], Meta(max_length=MAX_DOCS)] | None | UnsetType = UNSET
    v: int = PROTOCOL_VERSION


class PostingsReply(Struct):
    """``missing_docs``: the documents whose records the holder lacks (send only those)."""

    accepted: Count
    refused_quota: Count
    missing_docs: Annotated[list[DocId], Meta(max_length=MAX_POSTINGS)] = []


class DocsRequest(Struct):
    """Document records, the ones a /postings reply said were missing."""

    origin: NodeId
    docs: Annotated[list[WireRecord], Meta(max_length=MAX_DOCS)]
    v: int = PROTOCOL_VERSION


class DocsReply(Struct):
    stored: Count


class WithdrawRequest(Struct):
    """Remove the origin's postings of documents: all, only ``terms``, or all but ``keep_terms``."""

    origin: NodeId
    doc_ids: Annotated[list[DocId], Meta(max_length=MAX_DOC_IDS)]
    terms: TermsOfDocs | None | UnsetType = UNSET
    keep_terms: TermsOfDocs | None | UnsetType = UNSET
    v: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        # raised while decoding, this becomes a ValidationError (a 413, see decode())
        if self.terms and sum(map(len, self.terms.values())) > MAX_WITHDRAW_TERMS:
            raise ValueError(f"{TOO_MANY}: at most {MAX_WITHDRAW_TERMS} terms per withdrawal")
        if self.keep_terms and sum(map(len, self.keep_terms.values())) > MAX_KEEP_TERMS:
            raise ValueError(f"{TOO_MANY}: at most {MAX_KEEP_TERMS} keep_terms per withdrawal")


class WithdrawReply(Struct):
    removed: Count


class LookupRequest(Struct):
    """df of ``terms``, then their top ``m`` postings by impact, or exactly those of ``candidates``."""

    terms: Annotated[list[Term], Meta(max_length=MAX_LOOKUP_TERMS)]
    m: Annotated[int, Meta(ge=0, le=MAX_TOP_M)] = 1000
    candidates: Annotated[list[DocId], Meta(max_length=MAX_DOC_IDS)] | None | UnsetType = UNSET
    records: bool | Literal["compact"] = False
    v: int = PROTOCOL_VERSION


class LookupReply(Struct):
    df: Annotated[dict[Term, Count], Meta(max_length=MAX_LOOKUP_TERMS)]
    postings: Annotated[
        dict[Term, Annotated[list[WirePosting], Meta(max_length=MAX_DOC_IDS)]], Meta(max_length=MAX_LOOKUP_TERMS)
    ]
    docs: dict[DocId, WireRecord] | UnsetType = UNSET
    compact: dict[DocId, CompactRecord] | UnsetType = UNSET
    v: int = PROTOCOL_VERSION


class VerifyRequest(Struct):
    """Ask the origin of documents which of them contain every phrase, with snippets."""

    doc_ids: Annotated[list[DocId], Meta(max_length=MAX_VERIFY_DOCS)]
    terms: Annotated[list[Term], Meta(max_length=MAX_LOOKUP_TERMS)] | None | UnsetType = UNSET
    phrases: (
        Annotated[
            list[Annotated[list[Term], Meta(min_length=1, max_length=MAX_PHRASE_WORDS)]],
            Meta(max_length=MAX_PHRASES),
        ]
        | None
        | UnsetType
    ) = UNSET
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
    ``bad_version`` or ``too_many`` (a list or object over its limit: 413).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return 413 if self.code == "too_many" else 400


class _Versioned(Struct):
    v: Any = PROTOCOL_VERSION


@lru_cache(maxsize=None)
def _decoder(model: type[T]) -> msgspec.json.Decoder[T]:
    return msgspec.json.Decoder(model)


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
    if "".join(_hex_ids(msg)).translate(_NOT_HEX):
        bad = next(i for i in _hex_ids(msg) if i.translate(_NOT_HEX))
        raise BadMessage("bad_request", f"id {bad!r} is not 40 lowercase hex characters")
    return msg


def _hex_ids(msg: object) -> Iterator[str]:
    """Every node and document id of a message (see NodeId and DocId)."""
    if isinstance(msg, PostingsRequest):
        yield msg.origin
        yield from (e.posting.doc_id for e in msg.postings)
        yield from (d.doc_id for d in present(msg.docs) or ())
    elif isinstance(msg, DocsRequest):
        yield msg.origin
        yield from (d.doc_id for d in msg.docs)
    elif isinstance(msg, WithdrawRequest):
        yield msg.origin
        yield from msg.doc_ids
        yield from present(msg.terms) or ()
        yield from present(msg.keep_terms) or ()
    elif isinstance(msg, LookupRequest):
        yield from present(msg.candidates) or ()
    elif isinstance(msg, LookupReply):
        for plist in msg.postings.values():
            yield from (p.doc_id for p in plist)
        for docs in (present(msg.docs) or {}, present(msg.compact) or {}):
            yield from docs
        yield from (d.doc_id for d in (present(msg.docs) or {}).values())
    elif isinstance(msg, PostingsReply):
        yield from msg.missing_docs
    elif isinstance(msg, (VerifyRequest, VerifyReply)):
        yield from (msg.doc_ids if isinstance(msg, VerifyRequest) else msg.matches)
    elif isinstance(msg, InfoReply):
        yield msg.peer_id


def encode(msg: Struct) -> bytes:
    """Compact JSON of a message (absent optional fields left out)."""
    return _encoder.encode(msg)


def present(value: T | None | UnsetType) -> T | None:
    """An optional field's value, or None when it was not sent (or sent as ``null``)."""
    return None if isinstance(value, UnsetType) else value
