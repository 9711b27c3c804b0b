"""Relaxed AND across the network, and the page arrangement global search shares with it.

When too few documents have every word (:mod:`yasearch.relax`), global search
runs one single-word global search per relaxed word (at most
:data:`yasearch.wire.MAX_LOOKUP_TERMS` of them, like any query), merges them
(:func:`yasearch.relax.relax_with`) and rescores the best ranks from every
word's postings of them (a word's search returns only its best
:data:`yasearch.relax.RELAX_DEPTH`), as one big index would. Lead proximity,
duplicate collapse and host diversity (:func:`arrange_page`) then apply as in
local search, and this peer's own hits get snippets for every word.

:class:`yasearch.netsearch.GlobalSearch` hands over what is used: the local
index, a single-word search, a word's postings of given documents and the
network's N and average length.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from yasearch.dedupe import WINDOW, arrange
from yasearch.didyoumean import did_you_mean
from yasearch.index import LocalIndex
from yasearch.network import PeerCallError
from yasearch.query import ParsedQuery
from yasearch.ranking import PROXIMITY_WINDOW, CollectionStats, boost_lead_proximity
from yasearch.records import DocRecord, Posting, SearchHit, SearchResponse
from yasearch.relax import RELAX_BELOW, exact_ranking, relax_with, relaxed_terms
from yasearch.search import verify_documents
from yasearch.snippets import make_snippet
from yasearch.wire import MAX_LOOKUP_TERMS

#: (url, host, lead text, length) of a document, what :func:`yasearch.dedupe.arrange` reads.
Info = tuple[str, str, str, int]
InfoOf = Callable[[str], "Info | None"]
#: ``variant(parsed, depth, infos)``: a single-word global search answering its best ``depth``
#: hits, with the info of each put into ``infos``.
VariantSearch = Callable[[ParsedQuery, int, dict[str, "Info | None"]], Awaitable[SearchResponse]]
#: Postings by term.
Postings = dict[str, list[Posting]]
#: ``word_postings(terms, doc_ids)``: (df of each term, each term's remote postings of those documents).
WordPostings = Callable[[list[str], list[str]], Awaitable[tuple[dict[str, int], Postings]]]

_NO_INFO: Info = ("", "", "", 0)
#: Ranks beyond the page that proximity and duplicates look at.
LOOK_BEYOND = max(WINDOW, PROXIMITY_WINDOW)


def relaxed_words(parsed: ParsedQuery) -> list[str]:
    """The words a relaxed global query counts (identifiers and their parts), capped like any query."""
    return relaxed_terms(parsed)[:MAX_LOOKUP_TERMS]


def info_of(local_info: dict[str, Info], records: dict[str, DocRecord]) -> InfoOf:
    """The info of a document: from this peer's index, else from its full record."""

    def info(d: str) -> Info | None:
        rec = records.get(d)
        if d in local_info or rec is None:
            return local_info.get(d)
        return rec.url, rec.host, rec.description, rec.length

    return info


def arrange_page(
    ranked: list[tuple[str, float]], info: InfoOf, terms: list[str], upto: int, folded: dict[str, list[str]] | None = None
) -> list[tuple[str, float]]:
    """Lead proximity, then duplicates and host diversity, over the best ``upto`` ranks
    and beyond; ``folded`` receives what host diversity moved back, per host."""
    ranked = boost_lead_proximity(ranked, lambda d: (info(d) or _NO_INFO)[2], terms, upto)
    return arrange(ranked, info, upto, folded)


async def relaxed_search(
    parsed: ParsedQuery,
    limit: int,
    offset: int,
    and_total: int,
    *,
    index: LocalIndex,
    variant: VariantSearch,
    word_postings: WordPostings,
    network_stats: Callable[[], tuple[int, float]],
) -> tuple[list[SearchHit], int] | None:
    """The relaxed page and number of matches, or None when relaxing finds no more than AND's ``and_total``."""
    infos: dict[str, Info | None] = {}
    

    async def words(v: ParsedQuery, depth: int) -> list[SearchHit]:
        return (await variant(v, depth, infos)).results

    merged = await relax_with(words, parsed, cap=MAX_LOOKUP_TERMS)
    if len(merged) <= and_total:
        return None
    terms, upto, by_doc = relaxed_words(parsed), offset + limit, {h.doc_id: h for h, _s in merged}
    ranked = [(h.doc_id, s) for h, s in merged]
    ids = [d for d, _s in ranked[: upto + LOOK_BEYOND]]
    try:
        df, remote = await word_postings(terms, ids)
        local = await index.postings(terms, restrict=set(ids))
        postings = {t: list({p.doc_id: p for p in local.get(t, []) + remote.get(t, [])}.values()) for t in terms}
        n, avg = network_stats()
        ranked = exact_ranking(postings, CollectionStats(max(n, len(ids)), avg, df), ids, terms) + ranked[len(ids) :]
    except (LookupError, PeerCallError):
        pass  # the merged order stands
    ranked = arrange_page(ranked, infos.get, terms, upto)
    hits = [replace(by_doc[d], score=s) for d, s in ranked[offset:upto]]
    await local_snippets(index, hits, terms)
    return hits, len(ranked)


async def local_snippets(index: LocalIndex, hits: list[SearchHit], terms: list[str]) -> None:
    """Snippets of this peer's hits for every word of a relaxed query (a variant's show only its word)."""
    found = await verify_documents(index, [h.doc_id for h in hits if h.origin == "local"], terms, [])
    for h in (h for h in hits if h.doc_id in found and h.origin == "local"):
        h.snippet, h.snippet_html = make_snippet(found[h.doc_id]["snippet"], terms, fallback="")


async def suggestion(index: LocalIndex, parsed: ParsedQuery, relaxed: bool, total: int) -> str:
    """Did you mean, from this peer's own term dictionary, when the answer was thin."""
    if not (relaxed or total < RELAX_BELOW):
        return ""
    return await index.run_read(lambda v: did_you_mean(v, parsed))
