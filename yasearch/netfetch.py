"""The rounds of a global query: what global search asks the replicas, and when.

Round trip 1, in parallel to one replica of every required term (hedged to the
next after ``hedge_after``): df and the term's first batch of postings in the
exact order of their BM25 contribution (the replica computes it with the N and
average length the asker scores with, :mod:`yasearch.shard.scored`), with the
bound of the postings not sent. Round trip 2, in parallel again: each term's
postings of the candidates that could still reach the top k (random access),
the excluded terms' postings of them, and the signed records of the candidates
that can reach the page. :class:`yasearch.disttopk.TopK` decides the candidates
and proves the top k; only when the proof fails does a further round read the
lists deeper (down to a floor) and check the new candidates: every round is
counted in ``Tally.rounds``. A phrase query adds the origins' phrase check to the
rounds (only the origin has the text).

A term none of whose replicas answers round trip 1 is *skipped*: the query goes
on with the others and the answer names it (``SearchResponse.skipped_terms``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from msgspec import UNSET

from yasearch.disttopk import TopK
from yasearch.network import Contact, PeerCallError, Resolver, first_answer
from yasearch.p2pclient import P2PClient
from yasearch.query import ParsedQuery, filters_admit
from yasearch.ranking import DEFAULT_WEIGHTS, contribution, idf
from yasearch.records import DocRecord, Posting
from yasearch.wire import MAX_DOC_IDS, MAX_DOCS, MAX_TOP_M, LookupReply, LookupRequest, WirePosting, present

#: Postings of each term in round trip 1 (half as many again for three terms or more).
FIRST_BATCH = 1000
#: Postings of a list read per deeper round (down to its floor).
DEEPER_BATCH = MAX_TOP_M
#: Candidates checked per round (random access).
MAX_CANDIDATES = 2000
#: Rounds after round trip 1 before the asker gives up proving and answers what it has.
MAX_ROUNDS = 6
#: How many more candidates than expected round trip 2 checks (see Rounds._guess).
GUESS_SLACK = 1.5
#: What an unknown posting is guessed to contribute, as a share of its list's bound (records only).
UNSEEN_SHARE = 0.6
#: An exhausted list this short has every document checked, so the count of matches is exact.
COUNT_ALL = 1000


@dataclass
class Tally:
    asked: set[bytes] = field(default_factory=set)
    answered: set[bytes] = field(default_factory=set)
    failed: set[bytes] = field(default_factory=set)
    #: term -> the replica whose answer was taken last
    last_answer: dict[str, bytes] = field(default_factory=dict)
    #: sequential round trips of the query (rounds of calls that wait for the one before)
    rounds: int = 0
    #: terms none of whose replicas answered
    skipped: list[str] = field(default_factory=list)
    #: the most round trips of searches run side by side within this one (a relaxed query's words)
    side_rounds: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"asked": len(self.asked), "answered": len(self.answered), "failed": len(self.failed - self.answered)}


class Replicas:
    """Asks one replica of a term, hedged to the next, and counts who answered."""

    def __init__(self, resolver: Resolver, client: P2PClient, hedge_after: float) -> None:
        self.resolver = resolver
        self.client = client
        self.hedge_after = hedge_after

    async def contacts(self, term: str) -> list[Contact]:
        """The term's replicas (the r closest peers), those not failing lately first.

        Only the replicas: a peer further away that answers in place of a dead one
        holds nothing of the term and would answer df = 0, which looks like a word
        nobody uses; asking the replicas alone, a term whose replicas are all down
        is known as such (and skipped, named in the answer)."""
        live = await self.resolver.responsible(term)
        every = await self.resolver.responsible(term, skip_failed=False)
        ids = {c.node_id for c in live}
        return [c for c in every if c.node_id in ids] + [c for c in every if c.node_id not in ids]

    async def lookup(self, tally: Tally, term: str, req: LookupRequest, skip: bytes | None = None) -> LookupReply:
        contacts = [c for c in await self.contacts(term) if c.node_id != skip]

        async def ask(c: Contact) -> LookupReply:
            tally.asked.add(c.node_id)
            try:
                reply = await self.client.lookup(c, req)
            except PeerCallError:
                tally.failed.add(c.node_id)
                raise
            tally.answered.add(c.node_id)
            return reply

        c, reply = await first_answer(contacts, ask, hedge_after=self.hedge_after, on_fail=self.resolver.mark_dead)
        tally.last_answer[term] = c.node_id
        return reply

    async def checked_df(self, tally: Tally, term: str, df: int, n: int) -> int:
        """A df larger than the network's N (which no honest replica reports) is
        checked against a second replica and the smaller taken, at most N."""
        if 0 < n < df:
            try:
                second = await self.lookup(tally, term, LookupRequest(terms=[term], m=0), skip=tally.last_answer.get(term))
                df = min(df, second.df.get(term, 0))
            except (LookupError, PeerCallError):
                pass
            df = min(df, n)
        return df


#: ``verify(ids, records)`` -> the documents among ``ids`` whose text holds every phrase, with a snippet.
PhraseCheck = Callable[[set[str], dict[str, DocRecord]], Awaitable[dict[str, str]]]


class Rounds:
    """One global query's rounds; fills ``out`` as it goes, so a timeout leaves what is complete:
    ``df``, ``postings`` (term -> postings of the proven matches), ``records``, ``phrase_ok``,
    ``local``, ``exhaustive`` (every match was counted)."""

    def __init__(
        self, replicas: Replicas, parsed: ParsedQuery, k: int, stats: tuple[int, float], tally: Tally,
        out: dict[str, Any], *, first_batch: int = FIRST_BATCH, phrase_check: PhraseCheck | None = None,
    ) -> None:
        self.replicas = replicas
        self.parsed = parsed
        self.k = k
        self.n, self.avg = stats
        self.tally = tally
        self.out = out
        self.first_batch = first_batch
        self.phrase_check = phrase_check
        self.filtered = bool(parsed.sites or parsed.excluded_sites or parsed.languages or parsed.excluded_languages)
        self.compact = self.filtered or bool(parsed.phrases)
        #: term -> doc -> posting as it arrived (turned into a Posting only for the matches)
        self.postings: dict[str, dict[str, Posting | WirePosting]] = {}
        self.records: dict[str, DocRecord] = out.setdefault("records", {})
        self.phrase_ok: dict[str, str] = out.setdefault("phrase_ok", {})
        self.phrase_checked: set[str] = set()
        self.excl_checked: set[str] = set()
        self.idf: dict[str, float] = {}
        self.topk: TopK | None = None

    # -- scoring what arrives ------------------------------------------------------

    def _contrib(self, term: str, p: Posting | WirePosting) -> float:
        wtf = p.tf + DEFAULT_WEIGHTS.boost(p.flags)
        return contribution(self.idf[term], wtf, p.length, self.avg) if wtf > 0 else 0.0

    def _take(self, term: str, reply: LookupReply) -> dict[str, float]:
        got = {p.doc_id: p for p in reply.postings.get(term, [])}
        self.postings.setdefault(term, {}).update(got)
        self._take_records(reply)
        return {d: self._contrib(term, p) for d, p in got.items()}

    def _take_records(self, reply: LookupReply) -> None:
        for d, rec in (present(reply.compact) or {}).items():
            if d not in self.records:
                self.records[d] = DocRecord(doc_id=d, url="", title="", host=rec.host, language=rec.language, origin=rec.origin)
        for d, r in (present(reply.docs) or {}).items():
            self.records[d] = r.to_record()

    def _publish(self) -> None:
        """The proven part so far, for ranking (also after a timeout)."""
        assert self.topk is not None
        ids = set(self.topk.exact())
        self.out["postings"] = {
            t: [p.to_posting() if isinstance(p, WirePosting) else p for d, p in self.postings.get(t, {}).items() if d in ids]
            for t in self.topk.terms
        }

    # -- round trip 1 ---------------------------------------------------------------

    async def _first(self, term: str, m: int, records_top: int) -> LookupReply | None:
        req = LookupRequest(terms=[term], m=m, avg=self.avg, records="compact" if self.compact else False,
                            records_top=records_top)
        try:
            reply = await self.replicas.lookup(self.tally, term, req)
        except (LookupError, PeerCallError):
            self.tally.skipped.append(term)
            return None
        reply.df[term] = await self.replicas.checked_df(self.tally, term, reply.df.get(term, 0), self.n)
        return reply

    def _sorted(self, term: str, reply: LookupReply, m: int) -> None:
        assert self.topk is not None
        contribs = self._take(term, reply)
        bounds = present(reply.bound) or {}
        tl = self.topk.lists[term]
        delivered = tl.delivered + len(contribs)
        exhausted = delivered >= self.out["df"].get(term, 0) or (bounds.get(term) == 0.0 if term in bounds else len(contribs) < m)
        bound = bounds.get(term, math.inf) * self.idf[term]
        self.topk.sorted_batch(term, contribs, bound, exhausted)

    async def run(self, local: Awaitable[dict[str, Any]]) -> None:
        terms = list(self.parsed.terms)
        single = len(terms) == 1 and not (self.filtered or self.parsed.excluded or self.parsed.phrases)
        # three or more terms: a deeper first batch, so the bounds of round trip 1 are low
        # enough that one more round trip proves the top k (docs/benchmarks.md, issue 9)
        first = self.first_batch if len(terms) < 3 else self.first_batch * 3 // 2
        m = min(MAX_TOP_M, self.k if single else max(first, 2 * self.k))
        self.tally.rounds += 1
        firsts = await asyncio.gather(*(self._first(t, m, min(self.k, MAX_DOCS) if single else 0) for t in terms))
        loc = await local
        self.out["local"] = loc
        replies = {t: r for t, r in zip(terms, firsts) if r is not None}
        terms = [t for t in terms if t in replies]
        self.out["df"] = df = {t: replies[t].df.get(t, 0) for t in terms}
        self.out["terms"] = terms
        self.idf = {t: idf(self.n, df[t]) for t in terms}  # as bm25_scores: N at least df
        checks = bool(self.parsed.excluded or self.filtered or self.parsed.phrases)
        self.topk = topk = TopK(terms, self.k, checks=checks)
        if not terms:
            self.out["postings"] = {}
            return
        for t in terms:
            self._sorted(t, replies[t], m)
        self._local(loc, terms)
        rarest = min(terms, key=lambda t: (df[t], t))
        self.out["rarest"] = rarest
        count_all: list[str] = []
        if topk.lists[rarest].exhausted and df[rarest] <= COUNT_ALL:
            count_all = list(topk.lists[rarest].known)
        self.out["exhaustive"] = bool(count_all) or df[rarest] == 0
        self._admit()
        self._publish()
        if len(terms) == 1 and not checks and (topk.lists[rarest].exhausted or topk.lists[rarest].delivered >= self.k):
            topk.confirm(topk.seen())  # one list, read in rank order (ties by doc_id too): its first k are the top k
            self.out["proven"] = self.out["single"] = True
            await self.page_records()
            self._publish()
            return
        guess = self._guess(df)
        for _ in range(MAX_ROUNDS):
            cands = topk.candidates(guess)[:MAX_CANDIDATES]
            want = topk.wanted(MAX_CANDIDATES, guess)
            g0, guess = guess, -math.inf  # a guess for round trip 2 only; later rounds take what the proof needs
            count_all = [d for d in count_all if d not in topk.excluded and d not in topk.confirmed]
            for d in count_all:  # the rarest list's documents all checked: an exact count
                for t in terms:
                    if topk.lists[t].has(d) is None and d not in want.get(t, ()):
                        want.setdefault(t, []).append(d)
            pool = list(dict.fromkeys(cands + count_all))
            excl = [d for d in pool if d not in self.excl_checked] if self.parsed.excluded else []
            phrases = [d for d in pool if self._phrase_due(d)]
            if want or excl or phrases:
                await self._check(want, excl, phrases, g0)
                continue
            if topk.proven():
                break
            await self._deeper()
        else:
            self.out["exhaustive"] = False
        self.out["proven"] = topk.proven()
        await self.page_records()
        self._publish()

    def _guess(self, df: dict[str, int]) -> float:
        """What the k-th score will likely reach (AND): the k'-th best sum of known
        contributions, k' = 1.5 k over the share of a list's documents expected to
        have every other term (terms independent). Candidates below wait a round."""
        assert self.topk is not None
        if self.n <= 0 or len(self.topk.terms) < 2:
            return -math.inf
        shares = [min(1.0, df[t] / self.n) for t in self.topk.terms]
        share = math.prod(shares) / max(shares) if max(shares) > 0 else 0.0
        if share <= 0:
            return -math.inf
        return self.topk.partial_threshold(math.ceil(GUESS_SLACK * self.k / share))

    def _local(self, loc: dict[str, Any], terms: list[str]) -> None:
        """This peer's own matches (Whoosh applied phrases, exclusions and filters): known and confirmed."""
        assert self.topk is not None
        ids = set(loc.get("hits", {}))
        if not ids:
            return
        for t in terms:
            got = {p.doc_id: p for p in loc.get("postings", {}).get(t, []) if p.doc_id in ids}
            self.postings.setdefault(t, {}).update(got)
            self.topk.random(t, ids, {d: self._contrib(t, p) for d, p in got.items()})
        self.topk.confirm(ids)
        self.excl_checked.update(ids)
        self.phrase_checked.update(ids)

    # -- checks: exclusions, filters, phrases -----------------------------------------

    def _full(self, d: str) -> bool:
        assert self.topk is not None
        return all(self.topk.lists[t].has(d) is not None for t in self.topk.terms)

    def _phrase_due(self, d: str) -> bool:
        return bool(self.parsed.phrases) and d not in self.phrase_checked and self._full(d)

    def _admit(self) -> None:
        """Confirm the fully known documents that passed every check; exclude those that failed one."""
        assert self.topk is not None
        topk, parsed = self.topk, self.parsed
        ok: list[str] = []
        out: list[str] = []
        for d in topk.seen():
            if d in topk.confirmed or not self._full(d):
                continue
            if self.filtered:
                rec = self.records.get(d)
                if rec is None or not filters_admit(parsed, rec.host, rec.language):
                    out.append(d)
                    continue
            if parsed.excluded and d not in self.excl_checked:
                continue
            if parsed.phrases:
                if d not in self.phrase_checked:
                    continue
                if d not in self.phrase_ok:
                    out.append(d)
                    continue
            ok.append(d)
        topk.exclude(out)
        topk.confirm(ok)

    async def _check(self, want: dict[str, list[str]], excl: list[str], phrases: list[str], guess: float) -> None:
        """One round trip: random access, exclusions, phrases and page records, in parallel.

        Records: those of the best k known matches, and each random access asks its
        replica for the records of its best k candidates by their score with that
        term's contribution (the replica computes it), among those reaching a
        threshold the k-th score will reach (proven, else ``guess``): ``record_at``."""
        assert self.topk is not None
        topk = self.topk
        self.tally.rounds += 1
        tau = max(topk.threshold(), guess)
        local = self.out.get("local", {}).get("hits", {})
        recs = self._record_plan([d for d, _s in topk.ranking() if d not in local][: self.k])
        asks: dict[str, list[str]] = {t: list(ids) for t, ids in want.items()}
        jobs = [self._random(t, asks.get(t, []), recs.get(t, []), tau) for t in set(asks) | set(recs)]
        jobs += [self._excluded(t, excl) for t in self.parsed.excluded] if excl else []
        if phrases and self.phrase_check is not None:
            jobs.append(self._phrases(phrases))
        elif phrases:
            self.phrase_checked.update(phrases)
        await asyncio.gather(*jobs)
        self.excl_checked.update(excl)
        self._admit()
        self._publish()

    def _partial(self, term: str, d: str) -> float:
        """What ``d`` scores without ``term``: the known contributions, and for another
        unknown term a guess (a share of its bound, weighted by how common it is); 0
        (no record wanted) when its record is here or another replica is asked for it."""
        assert self.topk is not None
        if d in self.records and self.records[d].url:
            return 0.0  # its record is here: not asked for again
        if next(t for t in self.topk.terms if self.topk.lists[t].has(d) is None) != term:
            return 0.0  # another term's replica is asked for it (the first term unknown)
        df = self.out.get("df", {})
        total = 0.0
        for t, tl in self.topk.lists.items():
            if t == term:
                continue
            has = tl.has(d)
            if has is None:
                total += UNSEEN_SHARE * tl.bound * (min(1.0, df.get(t, 0) / self.n) if self.n > 0 else 1.0)
            elif has:
                total += tl.known[d]
        return math.ceil(total * 1e6) / 1e6

    def _record_plan(self, ids: list[str]) -> dict[str, list[str]]:
        """Signed records of ``ids``, each from a replica holding a posting of it (and so its record)."""
        assert self.topk is not None
        local = self.out.get("local", {}).get("hits", {})
        plan: dict[str, list[str]] = {}
        for d in ids:
            if d in local or (d in self.records and self.records[d].url):
                continue
            holder = next((t for t in self.topk.terms if d in self.postings.get(t, {})), None)
            if holder is not None and len(plan.get(holder, [])) < MAX_DOCS:
                plan.setdefault(holder, []).append(d)
        return plan

    async def _random(self, term: str, ids: list[str], record_ids: list[str], record_at: float = -math.inf) -> None:
        assert self.topk is not None
        ids = ids[:MAX_DOC_IDS]
        req = LookupRequest(terms=[term], m=0, candidates=ids, records="compact" if self.compact else False,
                            record_ids=record_ids or UNSET)
        if ids:
            req.avg, req.idf, req.records_top = self.avg, self.idf[term], min(self.k, MAX_DOCS)
            req.record_at = math.floor(max(record_at, 0.0) * 1e6) / 1e6
            req.partial = [self._partial(term, d) for d in ids]
        try:
            reply = await self.replicas.lookup(self.tally, term, req)
        except (LookupError, PeerCallError):
            self._lost(term)
            return
        self.topk.random(term, ids, self._take(term, reply))

    def _lost(self, term: str) -> None:
        """Every replica of a required term failed after round trip 1: go on without it."""
        assert self.topk is not None
        if term in self.topk.terms and len(self.topk.terms) > 1:
            self.topk.drop_term(term)
            self.tally.skipped.append(term)
            self.out["terms"] = list(self.topk.terms)

    async def _excluded(self, term: str, ids: list[str]) -> None:
        assert self.topk is not None
        try:
            reply = await self.replicas.lookup(self.tally, term, LookupRequest(terms=[term], m=0, candidates=ids[:MAX_DOC_IDS]))
        except (LookupError, PeerCallError):
            if term not in self.tally.skipped:
                self.tally.skipped.append(term)
            return
        self.topk.exclude(p.doc_id for p in reply.postings.get(term, []))

    async def _phrases(self, ids: list[str]) -> None:
        assert self.phrase_check is not None
        self.phrase_ok.update(await self.phrase_check(set(ids), self.records))
        self.phrase_checked.update(ids)

    async def _deeper(self) -> None:
        """One round trip: each open list read on, down to its floor."""
        assert self.topk is not None
        self.tally.rounds += 1
        topk = self.topk

        async def read(term: str, floor: float) -> None:
            tl = topk.lists[term]
            req = LookupRequest(terms=[term], m=DEEPER_BATCH, avg=self.avg, skip=tl.delivered,
                                floor=min(3.0, floor / self.idf[term]) if self.idf[term] > 0 else 0.0,
                                records="compact" if self.compact else False)
            try:
                reply = await self.replicas.lookup(self.tally, term, req)
            except (LookupError, PeerCallError):
                self._lost(term)
                return
            self._sorted(term, reply, DEEPER_BATCH)

        df = self.out.get("df", {})
        remaining = {t: df.get(t, 0) - tl.delivered for t, tl in topk.lists.items()}
        await asyncio.gather(*(read(t, f) for t, f in topk.floors(remaining).items()))
        self._admit()
        self._publish()

    async def page_records(self, ids: list[str] | None = None) -> None:
        """Records of page candidates (or of ``ids``) still missing: one more round trip
        (normally none is missing: they came with round trip 2)."""
        assert self.topk is not None
        plan = self._record_plan(ids if ids is not None else [d for d, _s in self.topk.ranking()[: self.k]])
        if not plan:
            return
        self.tally.rounds += 1

        async def fetch(term: str, ids: list[str]) -> None:
            try:
                reply = await self.replicas.lookup(self.tally, term, LookupRequest(terms=[term], m=0, candidates=[], record_ids=ids))
            except (LookupError, PeerCallError):
                return
            self._take_records(reply)

        await asyncio.gather(*(fetch(t, ids) for t, ids in plan.items()))
