"""Local query execution: the best matches by BM25, their snippets, facets if asked.

A word query's top k come from :func:`yasearch.topk.top_k_blocks` over the
impact postings (block-max pruning: the cost depends on k and the query more
than on how many documents match). Queries with phrases, exclusions, ``site:``
or ``lang:`` let Whoosh compute the candidate set (it is good at boolean and
positional matching) and :func:`yasearch.topk.top_k` ranks it. Both score with
:func:`yasearch.ranking.contribution`, the BM25 that ranks remote postings
too, with index-wide N, df and average length, and return exactly the top k
that scoring every match would. Everything CPU-heavy runs in the index's reader
pool, against a searcher cached until the next commit.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from whoosh.query import And, AndNot, Or, Phrase, Prefix, Query, Term

from yasearch.facets import (  # noqa: F401 - FACET_* and count_facets are part of this module's API
    FACET_CANDIDATES,
    FACET_TOP,
    Facets,
    cached_facets,
    count_facets,
    facet_host,
    facet_language,
    no_facets,
    view_facets,
)
from yasearch.index import PHRASE_FIELDS, POSTING_FIELDS, LocalIndex, ReadView
from yasearch.query import ParsedQuery
from yasearch.ranking import PROXIMITY_WINDOW, boost_lead_proximity
from yasearch.records import SearchHit, SearchResponse
from yasearch.dedupe import WINDOW, arrange, mark_more_from_host
from yasearch.didyoumean import did_you_mean
from yasearch.relax import RELAX_BELOW, relaxed_terms, relaxed_view, should_relax, stopword_view
from yasearch.snippets import make_snippet, passage_snippet
from yasearch.topk import top_k, top_k_blocks

_TERM_FIELDS = tuple(name for name, _ in POSTING_FIELDS)


def _any_field(term: str) -> Query:
    return Or([Term(f, term) for f in _TERM_FIELDS])


def phrase_anywhere(words: list[str]) -> Query:
    """Documents with the analyzed ``words`` as a phrase in any text field."""
    return Or([Phrase(f, words) for f in PHRASE_FIELDS])


def site_query(sites: list[str]) -> Query:
    """Documents of any of ``sites`` or their subdomains, on any port.

    Indexed hosts are ``host[:port]`` (the port only when not the default), so
    ``host_parts`` of ``a.example.com:8080`` holds ``example.com:8080``, not
    ``example.com``: the prefix ``example.com:`` finds those.
    """
    parts: list[Query] = []
    for s in sites:
        s = s.lower()
        parts += [Term("host_parts", s), Prefix("host_parts", s + ":")]
    return Or(parts)


def language_query(languages: list[str]) -> Query:
    """Documents in any of ``languages`` (``en`` also matches ``en-gb`` and ``en_GB``).

    The ``language`` field is an untokenized ID holding what the page declared
    (lowercased by the crawler), so the regional variants are prefix matches.
    """
    parts: list[Query] = []
    for lang in languages:
        for variant in {lang, lang.replace("-", "_")}:
            parts += [Term("language", variant), Prefix("language", variant + "-"), Prefix("language", variant + "_")]
    return Or(parts)


def build_query(parsed: ParsedQuery) -> Query | None:
    """The Whoosh query selecting candidates; None if nothing positive to match."""
    required: list[Query] = [_any_field(t) for t in parsed.terms]
    required += [phrase_anywhere(p) for p in parsed.phrases]
    if parsed.sites:
        required.append(site_query(parsed.sites))
    if not required:
        return None
    if parsed.languages:
        required.append(language_query(parsed.languages))
    q: Query = required[0] if len(required) == 1 else And(required)
    negative = _negative_query(parsed)
    if negative is not None:
        q = AndNot(q, negative)
    return q


def _negative_query(parsed: ParsedQuery) -> Query | None:
    """Documents the query's exclusions drop, None if it has none."""
    negative: list[Query] = [_any_field(t) for t in parsed.excluded]
    negative += [phrase_anywhere(p) for p in parsed.excluded_phrases]
    if parsed.excluded_sites:
        negative.append(site_query(parsed.excluded_sites))
    if parsed.excluded_languages:
        negative.append(language_query(parsed.excluded_languages))
    return Or(negative) if negative else None


def _filter_docnums(view: ReadView, parsed: ParsedQuery) -> tuple[set[int] | None, set[int]]:
    """(docnums site:/lang: admit, None for all; docnums the exclusions drop)."""
    required = ([site_query(parsed.sites)] if parsed.sites else []) + (
        [language_query(parsed.languages)] if parsed.languages else []
    )
    allowed = view.docnums(And(required) if len(required) > 1 else required[0]) if required else None
    negative = _negative_query(parsed)
    return allowed, (view.docnums(negative) if negative is not None else set())


def stored_snippet(view: ReadView, docnum: int, fields: dict[str, Any], terms: list[str]) -> tuple[str, str]:
    """(plain, html) snippet of a document: from its stored passages (only those it
    needs), else from the body in its stored record (documents written before
    passages), else from its description."""
    passages = view.passages(docnum)
    if passages is not None:
        return passage_snippet(passages, terms, fallback=fields.get("description", ""))
    return make_snippet(fields.get("body", ""), terms, fallback=fields.get("description", ""))


def _hit(view: ReadView, docnum: int, score: float, terms: list[str], display: Any = None) -> SearchHit:
    f: dict[str, Any] = (display or view.display)(docnum)
    plain, marked = stored_snippet(view, docnum, f, terms)
    return SearchHit(
        url=f["url"],
        title=f.get("title") or f["url"],
        snippet=plain,
        snippet_html=marked,
        score=score,
        origin="local",
        doc_id=f["doc_id"],
        host=f.get("host", ""),
        language=f.get("language", ""),
        crawled_at=float(f.get("crawled_at", 0.0)),
    )


def _facet_key(parsed: ParsedQuery) -> tuple[Any, ...]:
    return (tuple(parsed.terms), tuple(map(tuple, parsed.phrases)), tuple(parsed.excluded),
            tuple(map(tuple, parsed.excluded_phrases)), tuple(parsed.sites), tuple(parsed.excluded_sites),
            tuple(parsed.languages), tuple(parsed.excluded_languages))


def _search_view(
    view: ReadView, parsed: ParsedQuery, limit: int, offset: int, facets: bool = False
) -> tuple[int, list[SearchHit], Facets, bool, bool]:
    """Runs in a reader thread: candidates, BM25, page, snippets, facets (if asked for);
    then whether the total is an estimate and whether AND was relaxed (:mod:`yasearch.relax`)."""
    if parsed.stopword_phrase:
        ranked, by_id = stopword_view(view, parsed.stopword_phrase)
        return _page(view, parsed, ranked, by_id, [], limit, offset, facets) + (False, False)
    q = build_query(parsed)
    if q is None:
        return 0, [], no_facets(), False, False
    if not parsed.terms:
        # Bare site: listing. No terms to score, so order by URL.
        listing = sorted((view.url_of(d), d) for d in view.docnums(q))
        page = listing[offset : offset + limit]
        counted = no_facets()
        if facets:
            counted = cached_facets(view, _facet_key(parsed),
                                    lambda: view_facets(view, (d for _url, d in listing[:FACET_CANDIDATES])))
        return len(listing), [_hit(view, d, 0.0, []) for _url, d in page], counted, False, False
    total, estimated, best = top_matches(view, parsed, q, offset + limit + max(WINDOW, PROXIMITY_WINDOW), facets)
    if should_relax(parsed, total):
        ranked, by_id = relaxed_view(view, parsed, *_filter_docnums(view, parsed))
        if len(ranked) > total:
            return _page(view, parsed, ranked, by_id, relaxed_terms(parsed), limit, offset, facets) + (False, True)
    ranked = [(doc_id, score) for _d, doc_id, score in best]
    by_id = {doc_id: d for d, doc_id, _score in best}
    _n, hits, counted = _page(view, parsed, ranked, by_id, parsed.terms, limit, offset, facets)
    return total, hits, counted, estimated, False


def _page(
    view: ReadView, parsed: ParsedQuery, ranked: list[tuple[str, float]], by_id: dict[str, int], terms: list[str],
    limit: int, offset: int, facets: bool,
) -> tuple[int, list[SearchHit], Facets]:
    """One page of ``ranked``: lead proximity and duplicates (:mod:`yasearch.dedupe`)
    applied to the ranks around it, snippets, facets if asked."""
    counted = no_facets()
    if facets:
        counted = cached_facets(view, _facet_key(parsed),
                                lambda: view_facets(view, (by_id[doc] for doc, _score in ranked[:FACET_CANDIDATES])))
    # the stored record (no body since passages exist), read once for proximity, duplicates and the hit
    display = lru_cache(maxsize=None)(view.display)
    folded: dict[str, list[str]] = {}
    if terms:
        info = lru_cache(maxsize=None)(lambda doc: _display_info(display(by_id[doc])))
        ranked = boost_lead_proximity(ranked, lambda doc: info(doc)[2], terms, offset + limit)
        ranked = arrange(ranked, info, offset + limit, folded)
    page = ranked[offset : offset + limit]
    hits = [_hit(view, by_id[doc], score, terms, display) for doc, score in page]
    mark_more_from_host(hits, folded)
    return len(ranked), hits, counted


def _display_info(f: dict[str, Any]) -> tuple[str, str, str, int]:
    """(url, host, lead text, length) of stored fields, for :func:`yasearch.dedupe.arrange`."""
    return f["url"], f.get("host", ""), f.get("description", ""), int(f.get("length", 0))


def is_word_query(parsed: ParsedQuery) -> bool:
    """Only words: the matches are the documents holding every term, nothing else to check."""
    return not (parsed.phrases or parsed.excluded or parsed.excluded_phrases or parsed.sites
                or parsed.excluded_sites or parsed.languages or parsed.excluded_languages)


def top_matches(
    view: ReadView, parsed: ParsedQuery, q: Query, k: int, facets: bool
) -> tuple[int, bool, list[tuple[int, str, float]]]:
    """(matches, whether that is an estimate, the best ``k`` as (docnum, doc_id, score)) by
    BM25 (:mod:`yasearch.topk`), or the best :data:`FACET_CANDIDATES` when facets are
    counted too. Word queries on an index with impact postings skip blocks that cannot
    reach the top."""
    want = max(k, FACET_CANDIDATES) if facets else k
    if is_word_query(parsed) and view.has_impact:
        return top_k_blocks(view, parsed.terms, want)
    total, best = top_k(view, parsed.terms, want, None if is_word_query(parsed) else view.docnums(q))
    return total, False, best


async def search_local(
    index: LocalIndex, parsed: ParsedQuery, *, limit: int = 10, offset: int = 0, facets: bool = False
) -> SearchResponse:
    """Search this peer's index; ``total`` counts every matching document.

    With ``facets``, the matches are counted by host and by language over the
    best :data:`FACET_CANDIDATES` (1,000) ranked matches only, so that a query
    matching much of a large index does not read every matching document;
    without, ``facets`` stays empty and costs nothing.
    """
    started = time.perf_counter()
    limit = max(0, int(limit))
    offset = max(0, int(offset))
    total, hits, counted, estimated, relaxed = await index.run_read(
        lambda view: _search_view(view, parsed, limit, offset, facets))
    return SearchResponse(
        relaxed=relaxed,
        did_you_mean=await index.run_read(lambda v: did_you_mean(v, parsed)) if relaxed or total < RELAX_BELOW else "",
        query=parsed.raw,
        total=total,
        took_ms=(time.perf_counter() - started) * 1000.0,
        results=hits,
        offset=offset,
        limit=limit,
        scope="local",
        peers={"asked": 0, "answered": 0, "failed": 0},
        facets=counted,
        total_estimated=estimated,
    )


async def verify_documents(
    index: LocalIndex, doc_ids: list[str], terms: list[str], phrases: list[list[str]]
) -> dict[str, dict[str, str]]:
    """Which of these local documents contain every phrase, with a snippet each.

    Remote peers ask this for documents a network search found by their terms:
    only the holder of a document can check a phrase (postings have no
    positions), and only it has the text for a snippet.
    """

    def run(view: ReadView) -> dict[str, dict[str, str]]:
        docnums = {d: n for d in doc_ids if (n := view.docnum_of(d)) is not None}
        if phrases and docnums:
            q = And([phrase_anywhere(p) for p in phrases]) if len(phrases) > 1 else phrase_anywhere(phrases[0])
            ok = view.docnums(q)
            docnums = {d: n for d, n in docnums.items() if n in ok}
        return {d: {"snippet": stored_snippet(view, n, view.display(n), terms)[0]} for d, n in docnums.items()}

    return await index.run_read(run)
