"""The peer-to-peer HTTP API under /p2p/v1: what peers say to each other (the server side).

Every body is JSON (optionally gzip-compressed with ``Content-Encoding: gzip``;
aiohttp inflates it and the app's ``client_max_size`` bounds the inflated size).
A body is decoded once, here, into its typed message (:mod:`yasearch.wire`), which
validates every field: a malformed, oversized or type-confused request gets a
JSON 4xx before anything reaches the shard store, so it changes nothing. The
answers come from :class:`yasearch.shard.service.LocalPeer`, the same code that
answers this peer's calls to itself (:mod:`yasearch.p2pclient`).

Peers never get admin rights over each other: nothing here starts crawls,
removes local documents or reads the admin API. See docs/protocol.md.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Awaitable, Callable
from typing import NamedTuple, TypeVar

from aiohttp import web
from msgspec import Struct

from yasearch.errors import ApiError
from yasearch.httpkit import PEER_KEY, route
from yasearch.reachability import ProbeReply, ProbeRequest, ReachReply, ReachRequest
from yasearch.shard.service import LocalPeer
from yasearch.wire import (
    MAX_P2P_BODY,
    BadMessage,
    DocsReply,
    DocsRequest,
    InfoReply,
    LookupReply,
    LookupRequest,
    PostingsReply,
    PostingsRequest,
    VerifyReply,
    VerifyRequest,
    WithdrawReply,
    WithdrawRequest,
    decode,
    encode,
)

M = TypeVar("M", bound=Struct)
#: Requests refused with 403 when not signed by their origin (records: by theirs).
SIGNED = (PostingsRequest, DocsRequest, WithdrawRequest)




async def read_message(request: web.Request, model: type[M]) -> M:
    """The request body as a ``model``: inflated if gzip, bounded in size, validated."""
    if request.content_length is not None and request.content_length > MAX_P2P_BODY:
        raise ApiError(413, "too_large", f"the body is larger than {MAX_P2P_BODY} bytes")
    raw = await request.read()
    if raw[:2] == b"\x1f\x8b":  # gzip sent without Content-Encoding: inflate, bounded
        try:
            raw = gzip.GzipFile(fileobj=io.BytesIO(raw)).read(MAX_P2P_BODY + 1)
        except (OSError, EOFError):
            raise ApiError(400, "bad_request", "the body is not valid gzip") from None
        if len(raw) > MAX_P2P_BODY:
            raise ApiError(413, "too_large", f"the inflated body is larger than {MAX_P2P_BODY} bytes")
    try:
        return decode(raw, model)
    except BadMessage as e:
        raise ApiError(e.status, e.code, e.message) from None


def json_reply(request: web.Request, msg: Struct, status: int = 200) -> web.Response:
    """JSON, gzip-compressed when large and the client accepts it (bytes per query count)."""
    raw = encode(msg)
    headers = {"Content-Type": "application/json"}
    if len(raw) > 1024 and "gzip" in request.headers.get("Accept-Encoding", ""):
        raw = gzip.compress(raw, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=raw, headers=headers, status=status)


def _local(request: web.Request) -> LocalPeer:
    return request.app[PEER_KEY].local


# -- handlers ------------------------------------------------------------------


async def info(request: web.Request) -> web.Response:
    """This peer's info record: what peers cache about each other."""
    return json_reply(request, InfoReply(**await request.app[PEER_KEY].info()))


async def postings(request: web.Request) -> web.Response:
    """Store postings a peer publishes; answer with the doc ids we lack records for.

    ``docs`` may ride along (records of documents the sender knows we lack);
    otherwise the reply's ``missing_docs`` asks for them. 429 when the quotas (the
    origin's, the sender address's, the store's cap) refused every posting.
    """
    reply = await _local(request).postings(await read_message(request, PostingsRequest), request.remote)
    return json_reply(request, reply, 429 if reply.refused_quota and not reply.accepted else 200)


async def docs(request: web.Request) -> web.Response:
    """Store document records (the ones a /postings reply said were missing)."""
    return json_reply(request, await _local(request).docs(await read_message(request, DocsRequest)))


async def withdraw(request: web.Request) -> web.Response:
    """Remove an origin's postings of documents: all of them, all but ``keep_terms``,
    or only ``terms`` (``{doc_id: [term, ...]}``)."""
    return json_reply(request, await _local(request).withdraw(await read_message(request, WithdrawRequest)))


async def lookup(request: web.Request) -> web.Response:
    """Postings of terms this peer holds: df, then impact-ordered top-M or exact candidates.

    With ``candidates`` the reply holds exactly the postings of those documents
    (AND evaluation without shipping whole lists); without, the top ``m`` by
    impact. ``records`` adds the document records of what is returned.
    """
    return json_reply(request, await _local(request).lookup(await read_message(request, LookupRequest)))


async def verify(request: web.Request) -> web.Response:
    """The origin of documents checks them against a query and returns snippets.

    Only this peer holds the text of the pages it crawled, so phrase matching
    (which needs positions) and real snippets for remote results come from here.
    """
    return json_reply(request, await _local(request).verify(await read_message(request, VerifyRequest)))


async def reach(request: web.Request) -> web.Response:
    """Dial the asking peer back at its own address (the TCP source of this request,
    never one named in the body) and say where it was seen (yasearch.reachability)."""
    msg = await read_message(request, ReachRequest)
    return json_reply(request, await request.app[PEER_KEY].dial_back(request.remote, msg))


async def reach_probe(request: web.Request) -> web.Response:
    """A peer dials us back for one of our reachability checks."""
    msg = await read_message(request, ProbeRequest)
    return json_reply(request, request.app[PEER_KEY].reach_probed(msg.nonce, request.host))


class Route(NamedTuple):
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    request: type[Struct] | None
    response: type[Struct]
    summary: str


#: Every /p2p/v1 route, with its typed request and reply (the OpenAPI document is made from these).
ROUTES: tuple[Route, ...] = (
    Route("GET", "/p2p/v1/info", info, None, InfoReply, "This peer's info record"),
    Route("POST", "/p2p/v1/postings", postings, PostingsRequest, PostingsReply, "Store postings of the sender's documents"),
    Route("POST", "/p2p/v1/docs", docs, DocsRequest, DocsReply, "Store the document records a holder lacks"),
    Route("POST", "/p2p/v1/withdraw", withdraw, WithdrawRequest, WithdrawReply, "Remove the sender's postings of documents"),
    Route("POST", "/p2p/v1/lookup", lookup, LookupRequest, LookupReply, "df and postings of terms this peer holds"),
    Route("POST", "/p2p/v1/verify", verify, VerifyRequest, VerifyReply, "Check the origin's documents for phrases; snippets"),
    Route("POST", "/p2p/v1/reach", reach, ReachRequest, ReachReply, "Dial the asker back; the address it was seen at"),
    Route("POST", "/p2p/v1/reach/probe", reach_probe, ProbeRequest, ProbeReply, "A dial-back of a reachability check"),
)


def setup(app: web.Application) -> None:
    """Register the /p2p/v1 routes on an app whose PEER_KEY holds the peer."""
    for r in ROUTES:
        route(
            app, r.method, r.path, r.handler, tag="p2p", summary=r.summary, body=r.request, response=r.response,
            errors=() if r.method == "GET" else (400, 403, 413, 503) if r.request in SIGNED else (400, 413),
        )
