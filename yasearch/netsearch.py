"""Global search: ask the peers responsible for each term, rank like one big index.

The path of a query (all within ``budget`` seconds; what has not answered by then
is counted as failed and the answer is partial):

1. ``df`` of every required and excluded term from one replica each (hedged to
   the next replica after ``hedge_after``), in parallel.
2. The rarest required term's postings, impact-ordered top ``m`` (all of them
   when its df <= m), with their document records: these are the candidates.
3. The other required terms' postings for exactly those candidates, and the
   excluded terms' postings for them (to drop matches). Long posting lists of
   frequent terms never travel; only candidate ids and their postings do.
4. Candidates from the local index (pages crawled here, published or not) are
   added with postings from the local index; phrases are checked locally for
   them.
5. BM25 from :mod:`yasearch.ranking` with network-wide N and average length
   (summed from the peer info records) and df from the responsible peers: the
   same function and inputs as one peer holding every document, so the order
   is the same.
6. Facets (hosts, languages) are counted over the best
   :data:`yasearch.search.FACET_CANDIDATES` (1,000) ranked candidates, from the
   local hits and the remote document records.
7. Lead proximity, duplicates and host diversity arrange the page as in local
   search; too few AND matches relax the query (both in :mod:`yasearch.netrelax`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from yasearch.analysis import analyze
from yasearch.facets import FACET_CANDIDATES, count_facets
from yasearch.index import LocalIndex
from yasearch.netrelax import LOOK_BEYOND, Info, Postings, arrange_page, info_of, relaxed_search, relaxed_words, suggestion
from yasearch.network import Contact, PeerCallError, Resolver, first_answer
from yasearch.p2pclient import P2PClient
from yasearch.query import ParsedQuery, filters_admit
from yasearch.ranking import CollectionStats, bm25_scores, rank
from yasearch.records import DocRecord, Posting, SearchHit, SearchResponse
from yasearch.relax import should_relax
from yasearch.resultcheck import ResultChecker
from yasearch.search import build_query, search_local
from yasearch.snippets import make_snippet
from yasearch.wire import MAX_LOOKUP_TERMS, MAX_VERIFY_DOCS, LookupReply, LookupRequest, VerifyRequest, present

#: Candidates taken from the rarest term. When its df is at most this, the
#: result is exact; above, the candidates are its highest-impact postings.
TOP_M = 1000
#: Local candidates considered (the local index's own best matches).
LOCAL_CANDIDATES = 1000
#: Terms of one query that go to the network (required first, then excluded); the
#: rest are ignored, as web search engines ignore words past a limit. Each term
#: costs requests to its replicas, so a 170-word query must not cost 170 of them.
MAX_QUERY_TERMS = MAX_LOOKUP_TERMS


def capped(parsed: ParsedQuery, limit: int = MAX_QUERY_TERMS) -> ParsedQuery:
    """``parsed`` with at most ``limit`` distinct terms, required and excluded together."""
    terms = list(dict.fromkeys(parsed.terms))[:limit]
    excluded = [t for t in dict.fromkeys(parsed.excluded) if t not in terms][: limit - len(terms)]
    if len(terms) == len(parsed.terms) and len(excluded) == len(parsed.excluded):
        return parsed
    kept = set(terms)
    phrases = [p for p in parsed.phrases if set(p) <= kept]
    return dataclasses.replace(parsed, terms=terms, excluded=excluded, phrases=phrases)


@dataclass
class _Tally:
    asked: set[bytes] = field(default_factory=set)
    answered: set[bytes] = field(default_factory=set)
    failed: set[bytes] = field(default_factory=set)
    #: term -> the replica whose answer was taken last
    last_answer: dict[str, bytes] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {"asked": len(self.asked), "answered": len(self.answered), "failed": len(self.failed - self.answered)}


class GlobalSearch:
    """Queries the network as ``node_id`` (hex): ``resolver`` finds a term's replicas,
    ``client`` asks them, ``index`` adds this peer's own pages, ``url_of`` finds an
    origin's HTTP URL by node ID (hex), ``network_totals`` gives (documents, total
    length) over the network for BM25. ``verify`` (config ``verify``): "origin"
    asks the origins for phrases and snippets, "off" asks nobody (records only),
    "fetch" also has ``checker`` re-fetch the top remote results
    (:mod:`yasearch.resultcheck`) and drops those that fail."""

    def __init__(
        self,
        node_id: str,
        resolver: Resolver,
        client: P2PClient,
        index: LocalIndex,
        *,
        url_of: Callable[[str], str | None],
        network_totals: Callable[[], tuple[int, int]],
        hedge_after: float = 0.3,
        budget: float = 2.0,
        top_m: int = TOP_M,
        verify: str = "origin",
        checker: ResultChecker | None = None,
    ) -> None:
        self.node_id = node_id
        self.resolver = resolver
        self.client = client
        self.index = index
        self.url_of = url_of
        self.network_totals = network_totals
        self.hedge_after = hedge_after
        self.budget = budget
        self.top_m = top_m
        self.verify = verify
        self.checker = checker

    # -- talking to replicas ----------------------------------------------------

    async def _lookup(self, tally: _Tally, term: str, req: LookupRequest, skip: bytes | None = None) -> LookupReply:
        contacts = [c for c in await self.resolver.responsible(term) if c.node_id != skip]

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

    async def _df(self, tally: _Tally, terms: list[str]) -> dict[str, int]:
        """df of each term from one replica; a df larger than the network's N (which
        no honest replica reports) is checked against a second replica and the
        smaller taken, at most N."""
        n, _avg = self._network_stats()

        async def one(t: str) -> tuple[str, int]:
            reply = await self._lookup(tally, t, LookupRequest(terms=[t], m=0))
            df = reply.df.get(t, 0)
            if 0 < n < df:
                try:
                    second = await self._lookup(tally, t, LookupRequest(terms=[t], m=0), skip=tally.last_answer.get(t))
                    df = min(df, second.df.get(t, 0))
                except (LookupError, PeerCallError):
                    pass
                df = min(df, n)
            return t, df

        pairs = await asyncio.gather(*(one(t) for t in terms))
        return dict(pairs)

    @staticmethod
    def _postings(reply: LookupReply, term: str) -> list[Posting]:
        return [p.to_posting() for p in reply.postings.get(term, [])]

    # -- the query ----------------------------------------------------------------

    async def search(
        self, parsed: ParsedQuery, *, limit: int = 10, offset: int = 0, _variant: bool = False,
        _info: dict[str, Info | None] | None = None,
    ) -> SearchResponse:
        """``_variant``: one word of a relaxed search (no relaxing, snippets or checks; hit info into ``_info``)."""
        if parsed.stopword_phrase:  # stopwords are not indexed: only stored text (this peer's) can answer
            resp = await search_local(self.index, parsed, limit=limit, offset=offset)
            return dataclasses.replace(resp, scope="global")
        started = time.perf_counter()
        parsed = capped(parsed)
        tally = _Tally()
        result: dict[str, Any] = {"postings": {}, "records": {}, "df": {}, "tally": tally}
        task = asyncio.ensure_future(self._collect(parsed, tally, result))
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=self.budget)
        except (asyncio.TimeoutError, LookupError, PeerCallError):
            pass  # partial: rank whatever arrived
        finally:
            if not task.done():
                task.cancel()
            elif not task.cancelled() and task.exception() is not None:
                pass
        hits, total, facets = await self._rank(parsed, result, limit, offset, _info)
        if _variant:
            return SearchResponse(query=parsed.raw, total=total, took_ms=0.0, results=hits, scope="global")
        relaxed, terms = False, list(parsed.terms)
        if parsed.terms and should_relax(parsed, total):  # AND, or relaxed (yasearch.relax)
            answer = await relaxed_search(
                parsed, limit, offset, total, index=self.index, network_stats=self._network_stats,
                variant=lambda v, depth, info: self.search(v, limit=depth, _variant=True, _info=info),
                word_postings=lambda ts, ids: self._word_postings(tally, ts, ids),
            )
            if answer is not None:
                (hits, total), relaxed, terms = answer, True, relaxed_words(parsed)
        remaining = self.budget - (time.perf_counter() - started)
        await self.remote_snippets(hits, terms, min(remaining, 0.5))
        if self.checker is not None and self.verify == "fetch" and parsed.terms:
            kept = await self.checker.keep(hits, terms, local=("local", self.node_id), any_term=relaxed)
            total -= len(hits) - len(kept)
            hits = kept
        return SearchResponse(
            relaxed=relaxed,
            did_you_mean=await suggestion(self.index, parsed, relaxed, total),
            query=parsed.raw,
            total=total,
            took_ms=(time.perf_counter() - started) * 1000.0,
            results=hits,
            offset=offset,
            limit=limit,
            scope="global",
            peers=tally.as_dict(),
            facets=facets,
        )

    async def _word_postings(self, tally: _Tally, terms: list[str], ids: list[str]) -> tuple[dict[str, int], Postings]:
        """df of ``terms`` and each one's postings of the documents ``ids`` (relaxed rescoring)."""
        df = await self._df(tally, terms)
        replies = await asyncio.gather(*(self._lookup(tally, t, LookupRequest(terms=[t], candidates=ids)) for t in terms))
        return df, {t: self._postings(r, t) for t, r in zip(terms, replies)}

    async def _collect(self, parsed: ParsedQuery, tally: _Tally, out: dict[str, Any]) -> None:
        """Fill ``out`` step by step, so a timeout leaves whatever is complete."""
        local = asyncio.ensure_future(self._local_candidates(parsed))
        terms = list(parsed.terms)
        if not terms:
            out["local"] = await local
            return
        df = await self._df(tally, terms + [t for t in parsed.excluded if t not in terms])
        out["df"] = df
        rarest = min(terms, key=lambda t: (df.get(t, 0), t))
        cand: dict[str, list[Posting]] = {}
        records: dict[str, DocRecord] = {}
        if df.get(rarest, 0) > 0:
            # compact records (host, language, origin) for filters, facets and phrase
            # checks; full records travel only for the page shown (see _page_records)
            reply = await self._lookup(tally, rarest, LookupRequest(terms=[rarest], m=self.top_m, records="compact"))
            cand[rarest] = self._postings(reply, rarest)
            for d, rec in (present(reply.compact) or {}).items():
                records[d] = DocRecord(doc_id=d, url="", title="", host=rec.host, language=rec.language, origin=rec.origin)
        out["rarest"] = rarest
        ids = [p.doc_id for p in cand.get(rarest, [])]
        postings: dict[str, list[Posting]] = {rarest: cand.get(rarest, [])}
        others = [t for t in terms if t != rarest]
        if ids:

            async def exact(t: str) -> tuple[str, list[Posting]]:
                reply = await self._lookup(tally, t, LookupRequest(terms=[t], candidates=ids))
                return t, self._postings(reply, t)

            excluded = [t for t in parsed.excluded if df.get(t, 0) > 0]
            pairs = await asyncio.gather(*(exact(t) for t in others + excluded))
            got = dict(pairs)
            for t in others:
                postings[t] = got[t]
            drop: set[str] = set()
            for t in excluded:
                drop.update(p.doc_id for p in got[t])
            if drop:
                postings = {t: [p for p in pl if p.doc_id not in drop] for t, pl in postings.items()}
        else:
            for t in others:
                postings[t] = []
        out["postings"] = postings
        out["records"] = records
        out["local"] = await local
        if parsed.phrases:
            remote = set.intersection(*(set(p.doc_id for p in pl) for pl in postings.values())) if postings else set()
            remote -= set(out["local"]["hits"])
            out["phrase_ok"] = await self._verify(tally, remote, records, list(parsed.terms), parsed.phrases)

    async def _verify(
        self, tally: _Tally, ids: set[str], records: dict[str, DocRecord], terms: list[str], phrases: list[list[str]]
    ) -> dict[str, str]:
        """Ask the origin of each remote document whether it contains the phrases
        (only the origin has the text); returns matching doc id -> snippet.

        An origin that cannot be asked gets its documents checked against their
        title and description instead."""
        by_origin: dict[str, list[str]] = {}
        for d in ids:
            rec = records.get(d)
            if rec is not None:
                by_origin.setdefault(rec.origin, []).append(d)
        ok: dict[str, str] = {}

        async def ask(origin: str, docs: list[str]) -> None:
            url = self.url_of(origin) if self.verify != "off" else None
            answered = False
            if url is not None:
                contact = Contact(bytes.fromhex(origin), url)
                tally.asked.add(contact.node_id)
                try:
                    for i in range(0, len(docs), MAX_VERIFY_DOCS):
                        req = VerifyRequest(doc_ids=docs[i : i + MAX_VERIFY_DOCS], terms=terms, phrases=phrases)
                        reply = await self.client.verify(contact, req)
                        for d, m in reply.matches.items():
                            if d in records:
                                ok[d] = m.snippet[:1000]
                    answered = True
                    tally.answered.add(contact.node_id)
                except PeerCallError:
                    tally.failed.add(contact.node_id)
            if not answered:
                for d in docs:
                    if self._phrase_in_record(phrases, records.get(d)):
                        ok[d] = ""

        await asyncio.gather(*(ask(o, ds) for o, ds in by_origin.items()))
        return ok

    async def _local_candidates(self, parsed: ParsedQuery) -> dict[str, Any]:
        """Matches in the local index: postings (for the same BM25) and snippets."""
        q = build_query(parsed)
        if q is None:
            return {"postings": {}, "hits": {}}
        terms = list(parsed.terms)

        def run(view: Any) -> dict[str, Any]:
            docnums = view.docnums(q)
            if len(docnums) > LOCAL_CANDIDATES:
                docnums = set(sorted(docnums)[:LOCAL_CANDIDATES])
            postings = view.postings(terms, docnums) if terms else {}
            hits: dict[str, SearchHit] = {}
            info: dict[str, Info] = {}
            for d in docnums:
                f = view.stored(d)
                info[f["doc_id"]] = (f["url"], f.get("host", ""), f.get("description", ""), int(f.get("length", 0)))
                plain, marked = make_snippet(f.get("body", ""), terms, fallback=f.get("description", ""))
                hits[f["doc_id"]] = SearchHit(
                    url=f["url"],
                    title=f.get("title") or f["url"],
                    snippet=plain,
                    snippet_html=marked,
                    score=0.0,
                    origin="local",
                    doc_id=f["doc_id"],
                    host=f.get("host", ""),
                    language=f.get("language", ""),
                    crawled_at=float(f.get("crawled_at", 0.0)),
                )
            return {"postings": postings, "hits": hits, "info": info}

        return await self.index.run_read(run)

    # -- ranking ------------------------------------------------------------------

    def _network_stats(self) -> tuple[int, float]:
        """N and average length over every known peer (each reports its own index)."""
        n, total = self.network_totals()
        return n, (total / n if n else 0.0)

    async def _rank(
        self, parsed: ParsedQuery, result: dict[str, Any], limit: int, offset: int,
        info_out: dict[str, Info | None] | None = None,
    ) -> tuple[list[SearchHit], int, dict[str, list[list[Any]]]]:
        """The page of hits, the number of matches and the facets.

        Facets count the best :data:`FACET_CANDIDATES` ranked matches (local hits
        and remote records), not every match of a very common term.
        """
        terms = list(parsed.terms)
        local = result.get("local") or {"postings": {}, "hits": {}}
        local_hits: dict[str, SearchHit] = local["hits"]
        remote: dict[str, list[Posting]] = result.get("postings", {})
        records: dict[str, DocRecord] = result.get("records", {})
        if not terms:
            listing = sorted(local_hits.values(), key=lambda h: h.url)
            facets = count_facets((h.host, h.language) for h in listing[:FACET_CANDIDATES])
            return listing[offset : offset + limit], len(listing), facets

        # AND over remote postings: a candidate must have every term.
        by_term: dict[str, dict[str, Posting]] = {t: {p.doc_id: p for p in remote.get(t, [])} for t in terms}
        remote_ids = set(by_term[terms[0]]) if terms else set()
        for t in terms[1:]:
            remote_ids &= set(by_term[t])
        # site: and lang: need the record's host and language; a candidate without a record cannot be shown
        remote_ids = {d for d in remote_ids if (r := records.get(d)) and filters_admit(parsed, r.host, r.language)}
        # Phrases: verified by the documents' origins (local matches were checked by Whoosh).
        phrase_ok: dict[str, str] = result.get("phrase_ok", {})
        if parsed.phrases:
            remote_ids = {d for d in remote_ids if d in local_hits or d in phrase_ok}
        # Local candidates (already filtered by Whoosh for phrases/exclusions/site).
        local_post: dict[str, list[Posting]] = local["postings"]
        for t in terms:
            for p in local_post.get(t, []):
                by_term[t].setdefault(p.doc_id, p)
        ids = remote_ids | set(local_hits)
        scored = {t: [by_term[t][d] for d in ids if d in by_term[t]] for t in terms}
        n, avg = self._network_stats()
        df = dict(result.get("df", {}))
        for t in terms:
            df[t] = max(df.get(t, 0), len(scored[t]))
        n = max(n, len(ids))
        ranked = rank(bm25_scores(scored, CollectionStats(n_docs=n, avg_length=avg, df=df)))
        ranked = [(d, s) for d, s in ranked if d in ids]

        def facet_pair(d: str) -> tuple[str, str] | None:
            if d in local_hits:
                return local_hits[d].host, local_hits[d].language
            rec = records.get(d)
            return (rec.host, rec.language) if rec is not None else None

        facets = count_facets(p for p in (facet_pair(d) for d, _s in ranked[:FACET_CANDIDATES]) if p is not None)
        # duplicates and host crowding (yasearch.dedupe) need the records of the ranks looked at
        window = [d for d, _s in ranked[: offset + limit + LOOK_BEYOND] if d not in local_hits]
        await self._page_records(result, [d for d in window if not (d in records and records[d].url)], records)
        info = info_of(local.get("info", {}), records)
        ranked = arrange_page(ranked, info, terms, offset + limit)
        page = ranked[offset : offset + limit]
        if info_out is not None:
            info_out.update((d, info(d)) for d, _s in page)
        hits: list[SearchHit] = []
        for d, score in page:
            if d in local_hits:
                h = local_hits[d]
                h.score = score
                hits.append(h)
                continue
            rec = records.get(d)
            if rec is None or not rec.url:
                continue
            plain, marked = make_snippet(phrase_ok.get(d) or rec.description or rec.title, terms, fallback="")
            hits.append(
                SearchHit(
                    url=rec.url,
                    title=rec.title or rec.url,
                    snippet=plain,
                    snippet_html=marked or html.escape(plain),
                    score=score,
                    origin=rec.origin,
                    doc_id=d,
                    host=rec.host,
                    language=rec.language,
                    crawled_at=rec.crawled_at,
                )
            )
        return hits, len(ranked), facets

    async def _page_records(self, result: dict[str, Any], ids: list[str], records: dict[str, DocRecord]) -> None:
        """Full records (URL, title, description) of the remote hits on the page,
        from the rarest term's holder, which holds the record of every document it
        has postings for. One small request instead of records for every candidate."""
        rarest = result.get("rarest")
        if not ids or rarest is None:
            return
        tally: _Tally = result["tally"]
        try:
            reply = await asyncio.wait_for(
                self._lookup(tally, rarest, LookupRequest(terms=[rarest], m=0, candidates=ids, records=True)),
                timeout=max(0.2, self.budget / 2),
            )
        except (asyncio.TimeoutError, LookupError, PeerCallError):
            return
        for d, rec in (present(reply.docs) or {}).items():
            if d in ids:
                records[d] = rec.to_record()

    @staticmethod
    def _phrase_in_record(phrases: list[list[str]], rec: DocRecord | None) -> bool:
        if rec is None:
            return False
        text = " " + " ".join(analyze(f"{rec.title} {rec.description}")) + " "
        return all((" " + " ".join(p) + " ") in text for p in phrases)

    async def remote_snippets(self, hits: list[SearchHit], terms: list[str], timeout: float) -> None:
        """Real snippets for remote results, from their origins, within ``timeout``."""
        want: dict[str, list[SearchHit]] = {}
        for h in hits if self.verify != "off" else []:
            if h.origin != "local" and h.origin != self.node_id:
                want.setdefault(h.origin, []).append(h)
        if not want or timeout <= 0:
            return

        async def ask(origin: str, group: list[SearchHit]) -> None:
            url = self.url_of(origin)
            if url is None:
                return
            try:
                req = VerifyRequest(doc_ids=[h.doc_id for h in group], terms=terms)
                reply = await self.client.verify(Contact(bytes.fromhex(origin), url), req, timeout=timeout)
            except PeerCallError:
                return
            for h in group:
                m = reply.matches.get(h.doc_id)
                if m is not None and m.snippet:
                    # the origin's text is re-marked here: HTML from another peer is never trusted
                    h.snippet, h.snippet_html = make_snippet(m.snippet[:1000], terms, fallback="")

        try:
            await asyncio.wait_for(asyncio.gather(*(ask(o, g) for o, g in want.items())), timeout)
        except asyncio.TimeoutError:
            pass
