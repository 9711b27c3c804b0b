"""Local query execution: Whoosh picks the matching documents, ranking orders them.

Whoosh is good at boolean and positional matching (AND across fields, phrases,
exclusions, site filters), so it computes the candidate set. The order comes
from :func:`yasearch.ranking.bm25_scores` over :class:`Posting` records, the
same function that will rank postings from remote peers, with index-wide N,
df and average length. Everything CPU-heavy runs in the index's reader pool,
against a searcher cached until the next commit.
"""

from __future__ import annotations

import time
from collections import Counter
from functools import lru_cache
from typing import Any, Iterable
from urllib.parse import urlsplit

from whoosh.query import And, AndNot, Or, Phrase, Prefix, Query, Term

from yasearch.index import PHRASE_FIELDS, POSTING_FIELDS, LocalIndex, ReadView
from yasearch.query import ParsedQuery, normalize_language
from yasearch.ranking import CollectionStats, bm25_scores, boost_lead_proximity, rank
from yasearch.records import SearchHit, SearchResponse
from yasearch.dedupe import arrange
from yasearch.didyoumean import did_you_mean
from yasearch.relax import RELAX_BELOW, relaxed_terms, relaxed_view, should_relax, stopword_view
from yasearch.snippets import make_snippet

_TERM_FIELDS = tuple(name for name, _ in POSTING_FIELDS)

#: Facets (navigators) are counted over at most this many matches: the best
#: ranked ones for a word query, the first in URL order for a site listing.
#: Beyond that the counts are a sample, not the whole match set.
FACET_CANDIDATES = 1000
#: Values listed per facet, most frequent first.
FACET_TOP = 10


def facet_host(host: str) -> str:
    """A document's host as ``site:`` matches it: lowercase, without the port."""
    host = host.strip().lower()
    if host.startswith("["):  # [v6]:port
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:  # host:port
        return host.split(":", 1)[0]
    return host


def facet_language(language: str) -> str:
    """A document's language as a ``lang:`` facet: the primary subtag (``en-GB`` -> ``en``)."""
    return normalize_language(language).split("-", 1)[0]


def count_facets(docs: Iterable[tuple[str, str]], top: int = FACET_TOP) -> dict[str, list[list[Any]]]:
    """``{"host": [[host, n], ...], "language": [[lang, n], ...]}`` from (host, language) pairs.

    Each list holds the ``top`` most frequent values, ties in name order;
    documents without a host or a declared language are not counted there.
    """
    hosts: Counter[str] = Counter()
    langs: Counter[str] = Counter()
    for host, language in docs:
        h = facet_host(host)
        if h:
            hosts[h] += 1
        lang = facet_language(language)
        if lang:
            langs[lang] += 1

    def best(c: Counter[str]) -> list[list[Any]]:
        return [[k, n] for k, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]

    return {"host": best(hosts), "language": best(langs)}


def _view_facets(view: ReadView, docnums: Iterable[int]) -> dict[str, list[list[Any]]]:
    pairs = []
    for d in docnums:
        f = view.stored(d)
        pairs.append((f.get("host", "") or urlsplit(f.get("url", "")).netloc, f.get("language", "")))
    return count_facets(pairs)


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


def _snippet(stored: dict[str, Any], terms: list[str]) -> tuple[str, str]:
    """(plain, html) snippet of a stored document: its body, else its description."""
    return make_snippet(stored.get("body", ""), terms, fallback=stored.get("description", ""))


def _hit(view: ReadView, docnum: int, score: float, terms: list[str], stored: Any = None) -> SearchHit:
    f: dict[str, Any] = (stored or view.stored)(docnum)
    plain, marked = _snippet(f, terms)
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


_Facets = dict[str, list[list[Any]]]
_NO_FACETS: _Facets = {"host": [], "language": []}


def _search_view(
    view: ReadView, parsed: ParsedQuery, limit: int, offset: int
) -> tuple[int, list[SearchHit], _Facets, bool]:
    """Runs in a reader thread: candidates, BM25, page, snippets, facets; and
    whether AND was relaxed (see :mod:`yasearch.relax`)."""
    if parsed.stopword_phrase:
        ranked, by_id = stopword_view(view, parsed.stopword_phrase)
        return _page(view, ranked, by_id, [], limit, offset) + (False,)
    q = build_query(parsed)
    if q is None:
        return 0, [], dict(_NO_FACETS), False
    docnums = view.docnums(q)
    if parsed.terms and should_relax(parsed, len(docnums)):
        ranked, by_id = relaxed_view(view, parsed, *_filter_docnums(view, parsed))
        if len(ranked) > len(docnums):
            return _page(view, ranked, by_id, relaxed_terms(parsed), limit, offset) + (True,)
    return _and_view(view, parsed, docnums, limit, offset) + (False,)


def _page(
    view: ReadView, ranked: list[tuple[str, float]], by_id: dict[str, int], terms: list[str], limit: int, offset: int
) -> tuple[int, list[SearchHit], _Facets]:
    facets = _view_facets(view, (by_id[doc] for doc, _score in ranked[:FACET_CANDIDATES]))
    stored = lru_cache(maxsize=None)(view.stored)  # read once for proximity, duplicates and the hit
    if terms:
        info = lru_cache(maxsize=None)(lambda doc: _display_info(stored(by_id[doc])))
        ranked = boost_lead_proximity(ranked, lambda doc: info(doc)[2], terms, offset + limit)
        ranked = arrange(ranked, info, offset + limit)
    page = ranked[offset : offset + limit]
    return len(ranked), [_hit(view, by_id[doc], score, terms, stored) for doc, score in page], facets


def _display_info(f: dict[str, Any]) -> tuple[str, str, str, int]:
    """(url, host, lead text, length) of stored fields, for :func:`yasearch.dedupe.arrange`."""
    return f["url"], f.get("host", ""), f.get("description", ""), int(f.get("length", 0))


def _and_view(
    view: ReadView, parsed: ParsedQuery, docnums: set[int], limit: int, offset: int
) -> tuple[int, list[SearchHit], _Facets]:
    if not parsed.terms:
        # Bare site: listing. No terms to score, so order by URL.
        listing = sorted((view.url_of(d), d) for d in docnums)
        page = listing[offset : offset + limit]
        facets = _view_facets(view, (d for _url, d in listing[:FACET_CANDIDATES]))
        return len(listing), [_hit(view, d, 0.0, []) for _url, d in page], facets
    if not docnums:
        return 0, [], dict(_NO_FACETS)
    postings = view.postings(parsed.terms, docnums)
    stats = CollectionStats(
        n_docs=view.n_docs,
        avg_length=view.avg_length(),
        df={t: view.df(t) for t in parsed.terms},
    )
    ranked = rank(bm25_scores(postings, stats))
    by_id = {view.doc_id_of(d): d for d in docnums}
    return _page(view, ranked, by_id, parsed.terms, limit, offset)


async def search_local(index: LocalIndex, parsed: ParsedQuery, *, limit: int = 10, offset: int = 0) -> SearchResponse:
    """Search this peer's index; ``total`` counts every matching document.

    ``facets`` count the matches by host and by language, over the best
    :data:`FACET_CANDIDATES` (1,000) ranked matches only, so that a query
    matching much of a large index does not read every matching document.
    """
    started = time.perf_counter()
    limit = max(0, int(limit))
    offset = max(0, int(offset))
    total, hits, facets, relaxed = await index.run_read(lambda view: _search_view(view, parsed, limit, offset))
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
        facets=facets,
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
        return {d: {"snippet": _snippet(view.stored(n), terms)[0]} for d, n in docnums.items()}

    return await index.run_read(run)
