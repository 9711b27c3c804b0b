"""What this peer answers to /p2p/v1 calls, on typed messages.

One implementation for both ways a call arrives: the p2p server
(:mod:`yasearch.p2p`) decodes a request from another peer and calls it, and the
p2p client (:mod:`yasearch.p2pclient`) calls it directly when the peer a call is
addressed to is this one (a peer is often one of the r replicas of a term it
publishes or looks up), so no HTTP request goes to itself and both paths behave
the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from yasearch.shard import ShardStore
from yasearch.wire import (
    CompactRecord,
    DocsReply,
    DocsRequest,
    LookupReply,
    LookupRequest,
    PostingsReply,
    PostingsRequest,
    VerifyMatch,
    VerifyReply,
    VerifyRequest,
    WirePosting,
    WithdrawReply,
    WithdrawRequest,
    present,
)

#: ``(doc_ids, terms, phrases) -> {doc_id: {"snippet": text}}`` over the local index.
VerifyDocuments = Callable[[list[str], list[str], list[list[str]]], Awaitable[dict[str, dict[str, str]]]]


class LocalPeer:
    """This peer's side of the protocol: its shard store, and its own pages for /verify."""

    def __init__(self, shard: ShardStore, verify_documents: VerifyDocuments) -> None:
        self.shard = shard
        self.verify_documents = verify_documents

    async def postings(self, req: PostingsRequest, source: str | None = None) -> PostingsReply:
        """Store an origin's signed batch (or the entries ``only`` names of one handed
        on) and the records riding along; name the records we lack.

        The batch itself is kept with the postings, so this peer can hand them on
        as the origin signed them. Signatures were checked where the request was
        decoded (:func:`yasearch.wire.decode`); a call from this peer itself
        carries its own signed batch. ``source``: the sender's IP address (per-source
        quota), None for this peer."""
        batch = [(e.term, e.posting) for e in req.postings]
        only = present(req.only)
        if only is not None:
            batch = [batch[i] for i in dict.fromkeys(only)]
        result = await self.shard.upsert(req.origin, batch, signed_at=req.signed_at, batch=req, source=source)
        if req.docs:
            await self.shard.put_docs(req.docs)
        missing = await self.shard.missing_docs(dict.fromkeys(p.doc_id for _, p in batch))
        return PostingsReply(
            accepted=result.accepted, refused_quota=result.refused_quota,
            missing_docs=missing, refused_owner=result.refused_owner,
        )

    async def docs(self, req: DocsRequest) -> DocsReply:
        return DocsReply(stored=await self.shard.put_docs(req.docs))

    async def withdraw(self, req: WithdrawRequest) -> WithdrawReply:
        removed = await self.shard.withdraw(
            req.origin, req.doc_ids, present(req.keep_terms), present(req.terms), signed_at=req.signed_at
        )
        return WithdrawReply(removed=removed)

    async def lookup(self, req: LookupRequest) -> LookupReply:
        """df, then impact-ordered top-m or exactly the candidates' postings, and records."""
        df = await self.shard.df(req.terms)
        candidates = present(req.candidates)
        out: dict[str, list[WirePosting]] = {}
        seen: dict[str, None] = {}
        for t in dict.fromkeys(req.terms):
            plist = await (self.shard.postings_for(t, candidates) if candidates is not None else self.shard.top(t, req.m))
            out[t] = [WirePosting.of(p) for p in plist]
            seen.update(dict.fromkeys(p.doc_id for p in plist))
        reply = LookupReply(df=df, postings=out)
        if req.records is True:  # with the origins' signatures: the asker checks them
            reply.docs = await self.shard.signed_docs(list(seen))
        elif req.records == "compact":
            recs = await self.shard.docs(list(seen))
            reply.compact = {d: CompactRecord(r.host, r.language, r.origin) for d, r in recs.items()}
        return reply

    async def verify(self, req: VerifyRequest) -> VerifyReply:
        """Which of our own pages contain every phrase, with a plain-text snippet each."""
        matches = await self.verify_documents(req.doc_ids, present(req.terms) or [], present(req.phrases) or [])
        return VerifyReply(matches={d: VerifyMatch(snippet=m.get("snippet", "")) for d, m in matches.items()})
