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

from yasearch.ranking import DEFAULT_WEIGHTS, contribution
from yasearch.shard import ShardStore
from yasearch.shard.scored import scored_top
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

#: The largest bound a reply may state (the wire's limit on a tf-part).
MAX_BOUND = 3.0
#: ``(doc_ids, terms, phrases) -> {doc_id: {"snippet": text}}`` over the local index.
VerifyDocuments = Callable[[list[str], list[str], list[list[str]]], Awaitable[dict[str, dict[str, str]]]]


def reaching(req: LookupRequest, out: dict[str, list[WirePosting]]) -> list[str]:
    """The candidates whose ``partial`` score plus this term's BM25 contribution (``idf``,
    the asker's ``avg``) reaches ``record_at``, best first, at most ``records_top`` of
    them: the ones the asker will want records of."""
    at, partial, candidates = present(req.record_at), present(req.partial), present(req.candidates)
    if at is None or partial is None or not candidates or not req.terms:
        return []
    base = dict(zip(candidates, partial))
    avg = present(req.avg) or 0.0
    scored = sorted(
        (-(base[p.doc_id] + contribution(req.idf, p.tf + DEFAULT_WEIGHTS.boost(p.flags), p.length, avg)), p.doc_id)
        for p in out.get(req.terms[0], []) if p.doc_id in base
    )
    return [d for s, d in scored[: req.records_top or None] if -s >= at]


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
        """df, then impact-ordered top-m, or the top-m by exact BM25 tf-part at the
        asker's average length (``avg``, with the bound of the rest), or exactly the
        candidates' postings; and records."""
        df = await self.shard.df(req.terms)
        candidates = present(req.candidates)
        avg = present(req.avg)
        out: dict[str, list[WirePosting]] = {}
        bounds: dict[str, float] = {}
        seen: dict[str, None] = {}
        top: dict[str, None] = {}
        for t in dict.fromkeys(req.terms):
            if candidates is not None:
                plist = await self.shard.postings_for(t, candidates) if candidates else []
            elif avg is not None:
                plist, bounds[t] = await scored_top(self.shard, t, avg, req.m, skip=req.skip, floor=req.floor)
            else:
                plist = await self.shard.top(t, req.m)
            out[t] = [WirePosting.of(p) for p in plist]
            seen.update(dict.fromkeys(p.doc_id for p in plist))
            if candidates is None:
                top.update(dict.fromkeys(p.doc_id for p in plist[: req.records_top]))
        reply = LookupReply(df=df, postings=out)
        if avg is not None and candidates is None:
            reply.bound = {t: min(b, MAX_BOUND) for t, b in bounds.items()}
        full = list(seen) if req.records is True else [*top, *(present(req.record_ids) or ()), *reaching(req, out)]
        if full:  # with the origins' signatures: the asker checks them
            reply.docs = await self.shard.signed_docs(full)
        if req.records == "compact":
            recs = await self.shard.docs(list(seen))
            reply.compact = {d: CompactRecord(r.host, r.language, r.origin) for d, r in recs.items()}
        return reply

    async def verify(self, req: VerifyRequest) -> VerifyReply:
        """Which of our own pages contain every phrase, with a plain-text snippet each."""
        matches = await self.verify_documents(req.doc_ids, present(req.terms) or [], present(req.phrases) or [])
        return VerifyReply(matches={d: VerifyMatch(snippet=m.get("snippet", "")) for d, m in matches.items()})
