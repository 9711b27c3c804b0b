"""Global search: ask the peers responsible for each term, rank like one big index.

The path of a query (all within ``budget`` seconds; what has not answered by then
is counted as failed and the answer is partial):

1. The rounds of :mod:`yasearch.netfetch`: round trip 1 asks every required
   term's replica for df and its first postings in exact BM25 order; round trip 2
   asks for the candidates' other postings, the excluded terms' postings of them
   and the records of the candidates that can reach the page; an exact top-k
   (:mod:`yasearch.disttopk`) proves the best ``offset + limit`` (and the ranks
   beyond that the page arrangement looks at), reading deeper only when the
   proof fails. A term none of whose replicas answers is skipped and named.
2. Candidates from the local index (pages crawled here, published or not) join
   with postings from the local index; phrases are checked locally for them.
3. BM25 from :mod:`yasearch.ranking` with network-wide N and average length
   (summed from the peer info records) and df from the responsible peers: the
   same function and inputs as one peer holding every document, so the order
   is the same.
4. Facets (hosts, languages) are counted over the ranked matches whose records
   arrived (the proven ones, at most :data:`yasearch.search.FACET_CANDIDATES`).
5. Lead proximity, duplicates and host diversity arrange the page as in local
   search; too few AND matches relax the query (both in :mod:`yasearch.netrelax`).

Snippets come from the records (description, else title), marked here; the
origins are asked only for phrase checks (with their snippets), never in an
extra round after the ranking.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import math
import time
from collections.abc import Callable
from typing import Any

from yasearch.analysis import analyze
from yasearch.facets import FACET_CANDIDATES, count_facets
from yasearch.index import LocalIndex
from yasearch.netfetch import FIRST_BATCH, Replicas, Rounds, Tally
from yasearch.dedupe import mark_more_from_host
from yasearch.netrelax import LOOK_BEYOND, Info, Postings, arrange_page, info_of, relaxed_search, relaxed_words, suggestion
from yasearch.network import Contact, PeerCallError, Resolver
from yasearch.p2pclient import P2PClient
from yasearch.query import ParsedQuery, filters_admit
from yasearch.ranking import CollectionStats, bm25_scores, rank
from yasearch.records import DocRecord, Posting, SearchHit, SearchResponse
from yasearch.relax import should_relax
from yasearch.resultcheck import ResultChecker
from yasearch.search import build_query, search_local, stored_snippet
from yasearch.snippets import make_snippet
from yasearch.wire import MAX_LOOKUP_TERMS, MAX_VERIFY_DOCS, LookupRequest, VerifyRequest

#: Local candidates considered (the local index's own best matches).
LOCAL_CANDIDATES = 1000
#: Terms of one query that go to the network (required first, then excluded); the
#: rest are ignored, as web search engines ignore words past a limit. Each term
#: costs requests to its replicas, so a 170-word query must not cost 170 of them.
MAX_QUERY_TERMS = MAX_LOOKUP_TERMS
#: The tally of one query (kept under its old name for callers and tests).
_Tally = Tally


def capped(parsed: ParsedQuery, limit: int = MAX_QUERY_TERMS) -> ParsedQuery:
    """``parsed`` with at most ``limit`` distinct terms, required and excluded together."""
    terms = list(dict.fromkeys(parsed.terms))[:limit]
    excluded = [t for t in dict.fromkeys(parsed.excluded) if t not in terms][: limit - len(terms)]
    if len(terms) == len(parsed.terms) and len(excluded) == len(parsed.excluded):
        return parsed
    kept = set(terms)
    phrases = [p for p in parsed.phrases if set(p) <= kept]
    return dataclasses.replace(parsed, terms=terms, excluded=excluded, phrases=phrases)


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
        first_batch: int = FIRST_BATCH,
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
        self.first_batch = first_batch
        self.verify = verify
        self.checker = checker

    # -- talking to replicas ----------------------------------------------------

    @property
    def replicas(self) -> Replicas:
        return Replicas(self.resolver, self.client, self.hedge_after)

    async def _df(self, tally: _Tally, terms: list[str]) -> dict[str, int]:
        """df of each term from one replica (a df above N checked against a second replica)."""
        n, _avg = self._network_stats()
        replicas = self.replicas

        async def one(t: str) -> tuple[str, int]:
            reply = await replicas.lookup(tally, t, LookupRequest(terms=[t], m=0))
            return t, await replicas.checked_df(tally, t, reply.df.get(t, 0), n)

        return dict(await asyncio.gather(*(one(t) for t in terms)))

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
        task = asyncio.ensure_future(self._collect(parsed, tally, result, offset + limit + LOOK_BEYOND))
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
        estimated = bool(parsed.terms) and not (result.get("exhaustive") or result.get("single"))
        if _variant:
            return SearchResponse(query=parsed.raw, total=total, took_ms=0.0, results=hits, scope="global",
                                  total_estimated=estimated, round_trips=tally.rounds)
        relaxed, terms = False, list(parsed.terms)
        if parsed.terms and should_relax(parsed, total):  # AND, or relaxed (yasearch.relax)
            answer = await relaxed_search(
                parsed, limit, offset, total, index=self.index, network_stats=self._network_stats,
                variant=lambda v, depth, info: self._word_search(tally, v, depth, info),
                word_postings=lambda ts, ids: self._word_postings(tally, ts, ids),
            )
            if answer is not None:
                (hits, total), relaxed, terms = answer, True, relaxed_words(parsed)
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
            total_estimated=estimated and not relaxed,
            skipped_terms=list(tally.skipped),
            round_trips=tally.rounds + tally.side_rounds,
        )

    async def _word_search(self, tally: _Tally, v: ParsedQuery, depth: int, info: dict[str, Info | None]) -> SearchResponse:
        """One word of a relaxed query (they run side by side: the longest counts in ``tally``)."""
        resp = await self.search(v, limit=depth, _variant=True, _info=info)
        tally.side_rounds = max(tally.side_rounds, resp.round_trips)
        return resp

    async def _word_postings(self, tally: _Tally, terms: list[str], ids: list[str]) -> tuple[dict[str, int], Postings]:
        """df of ``terms`` and each one's postings of the documents ``ids`` (relaxed rescoring), one round trip."""
        n, _avg = self._network_stats()
        replicas = self.replicas
        tally.rounds += 1

        async def one(t: str) -> tuple[str, int, list[Posting]]:
            reply = await replicas.lookup(tally, t, LookupRequest(terms=[t], candidates=ids))
            df = await replicas.checked_df(tally, t, reply.df.get(t, 0), n)
            return t, df, [p.to_posting() for p in reply.postings.get(t, [])]

        got = await asyncio.gather(*(one(t) for t in terms))
        return {t: df for t, df, _p in got}, {t: pl for t, _df, pl in got}

    async def _collect(self, parsed: ParsedQuery, tally: _Tally, out: dict[str, Any], k: int) -> None:
        """Fill ``out`` round by round (:class:`yasearch.netfetch.Rounds`), so a timeout leaves whatever is complete."""
        local = asyncio.ensure_future(self._local_candidates(parsed))
        if not parsed.terms:
            out["local"] = await local
            return
        out["n"], out["avg"] = stats = self._network_stats()
        rounds = Rounds(
            self.replicas, parsed, k, stats, tally, out, first_batch=self.first_batch,
            phrase_check=lambda ids, records: self._verify(tally, ids, records, list(parsed.terms), parsed.phrases),
        )
        out["rounds"] = rounds
        await rounds.run(local)

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
                f = view.display(d)
                info[f["doc_id"]] = (f["url"], f.get("host", ""), f.get("description", ""), int(f.get("length", 0)))
                plain, marked = stored_snippet(view, d, f, terms)
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

        terms = list(result.get("terms", terms))  # without the skipped ones
        # AND over remote postings (those of the proven matches): a candidate must have every term.
        by_term: dict[str, dict[str, Posting]] = {t: {p.doc_id: p for p in remote.get(t, [])} for t in terms}
        remote_ids = set(by_term[terms[0]]) if terms else set()
        for t in terms[1:]:
            remote_ids &= set(by_term[t])
        if parsed.sites or parsed.excluded_sites or parsed.languages or parsed.excluded_languages:
            # site: and lang: need the record's host and language (checked in the rounds too)
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
        n, avg = result.get("n"), result.get("avg")
        if n is None or avg is None:
            n, avg = self._network_stats()
        df = dict(result.get("df", {}))
        for t in terms:
            df[t] = max(df.get(t, 0), len(scored[t]))
        ranked = rank(bm25_scores(scored, CollectionStats(n_docs=max(n, len(ids)), avg_length=avg, df=df)))
        ranked = [(d, s) for d, s in ranked if d in ids]
        if result.get("exhaustive") or not terms:
            total = len(ranked)
        else:  # one term: its df (exact); more: an estimate
            total = max(len(ranked), _estimate(result, terms, df, n))

        def facet_pair(d: str) -> tuple[str, str] | None:
            if d in local_hits:
                return local_hits[d].host, local_hits[d].language
            rec = records.get(d)
            return (rec.host, rec.language) if rec is not None else None

        facets = count_facets(p for p in (facet_pair(d) for d, _s in ranked[:FACET_CANDIDATES]) if p is not None)
        # duplicates and host crowding (yasearch.dedupe) need the records of the ranks looked at
        window = [d for d, _s in ranked[: offset + limit + LOOK_BEYOND] if d not in local_hits]
        missing = [d for d in window if not (d in records and records[d].url)]
        if missing and result.get("rounds") is not None:
            try:
                await asyncio.wait_for(result["rounds"].page_records(missing), timeout=max(0.2, self.budget / 2))
            except asyncio.TimeoutError:
                pass
        info = info_of(local.get("info", {}), records)
        folded: dict[str, list[str]] = {}
        ranked = arrange_page(ranked, info, terms, offset + limit, folded)
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
        mark_more_from_host(hits, folded)
        return hits, total, facets

    @staticmethod
    def _phrase_in_record(phrases: list[list[str]], rec: DocRecord | None) -> bool:
        if rec is None:
            return False
        text = " " + " ".join(analyze(f"{rec.title} {rec.description}")) + " "
        return all((" " + " ".join(p) + " ") in text for p in phrases)


def _estimate(result: dict[str, Any], terms: list[str], df: dict[str, int], n: int) -> int:
    """The number of matches when not every one was counted: df for one term with no
    checks (exact), else what independent terms would give (N times the product of df / N)."""
    if result.get("single"):
        return df.get(terms[0], 0)
    if n <= 0:
        return 0
    return round(n * math.prod(min(1.0, df.get(t, 0) / n) for t in terms))
