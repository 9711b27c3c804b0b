"""The calls this peer makes to other peers under /p2p/v1, typed by :mod:`yasearch.wire`.

Every reply is decoded into its typed model, so a hostile or broken reply (a
list where an object belongs, a posting with a negative tf, JSON nested a
million deep) is a failed call (:class:`PeerCallError`) like a peer that is
down, never an error further in.

A call addressed to this peer itself is answered by :class:`LocalPeer` directly,
the same code the p2p server runs for a request from elsewhere: a peer is often
one of the r replicas of the terms it publishes and looks up, and an HTTP request
to itself would only cost a round trip, a socket and two encodings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from msgspec import Struct

from yasearch.network import Contact, PeerCallError, Transport
from yasearch.shard.service import LocalPeer
from yasearch.wire import (
    MAX_DOCS,
    BadMessage,
    DocsReply,
    DocsRequest,
    LookupReply,
    LookupRequest,
    PostingsReply,
    PostingsRequest,
    VerifyReply,
    VerifyRequest,
    WireRecord,
    WithdrawReply,
    WithdrawRequest,
    decode,
    encode,
)

#: Seconds a holder may take to store one batch: a loaded peer is slow, not gone,
#: and a timed-out batch is sent again, which only adds to its load.
PUBLISH_TIMEOUT = 30.0

Req = TypeVar("Req", bound=Struct)
Rep = TypeVar("Rep", bound=Struct)

#: The records of the given doc ids that we can send (those we have).
RecordSource = Callable[[list[str]], Awaitable[Sequence[WireRecord]]]


class P2PClient:
    """Typed p2p calls: over HTTP to other peers, in-process to this one."""

    def __init__(self, node_id: bytes, transport: Transport, local: LocalPeer) -> None:
        self.node_id = node_id
        self.transport = transport
        self.local = local
        #: Calls addressed to this peer, answered without HTTP.
        self.local_calls = 0

    async def _call(
        self,
        contact: Contact,
        path: str,
        req: Req,
        reply_type: type[Rep],
        local: Callable[[Req], Awaitable[Rep]],
        timeout: float | None,
    ) -> Rep:
        if contact.node_id == self.node_id:
            self.local_calls += 1
            return await local(req)
        raw = await self.transport.call(contact, path, encode(req), timeout=timeout)
        try:
            return decode(raw, reply_type)
        except BadMessage as e:
            self.transport.failures += 1
            raise PeerCallError(contact, f"invalid reply to {path}: {e.message[:200]}") from None

    async def postings(self, contact: Contact, req: PostingsRequest, *, timeout: float | None = PUBLISH_TIMEOUT) -> PostingsReply:
        return await self._call(contact, "/p2p/v1/postings", req, PostingsReply, self.local.postings, timeout)

    async def docs(self, contact: Contact, req: DocsRequest, *, timeout: float | None = PUBLISH_TIMEOUT) -> DocsReply:
        return await self._call(contact, "/p2p/v1/docs", req, DocsReply, self.local.docs, timeout)

    async def withdraw(self, contact: Contact, req: WithdrawRequest, *, timeout: float | None = None) -> WithdrawReply:
        return await self._call(contact, "/p2p/v1/withdraw", req, WithdrawReply, self.local.withdraw, timeout)

    async def lookup(self, contact: Contact, req: LookupRequest, *, timeout: float | None = None) -> LookupReply:
        return await self._call(contact, "/p2p/v1/lookup", req, LookupReply, self.local.lookup, timeout)

    async def verify(self, contact: Contact, req: VerifyRequest, *, timeout: float | None = None) -> VerifyReply:
        return await self._call(contact, "/p2p/v1/verify", req, VerifyReply, self.local.verify, timeout)

    async def place(
        self, contact: Contact, batches: Iterable[PostingsRequest], records: RecordSource
    ) -> AsyncIterator[int]:
        """Signed posting batches to a holder, each followed by the (signed) records
        the holder says it lacks (the YaCy exchange: a record travels once, not with
        every posting). Yields the postings accepted per batch; a failure raises
        :class:`PeerCallError` after the batches already yielded."""
        for req in batches:
            reply = await self.postings(contact, req)
            missing = list(await records(reply.missing_docs))
            for j in range(0, len(missing), MAX_DOCS):
                await self.docs(contact, DocsRequest(origin=self.node_id.hex(), docs=missing[j : j + MAX_DOCS]))
            yield reply.accepted
