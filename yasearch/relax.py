"""Queries that do not dead-end: relaxed AND when too few documents have every term.

Every word is required (AND) as long as that finds at least
:data:`RELAX_BELOW` documents. When it finds fewer, a natural-language query
usually has one word the right page does not use, so the query is *relaxed*:
every document with at least one of the words is a candidate, scored with the
same BM25 as always and weighted by the share of the words it has
(:func:`yasearch.ranking.coordinated`), so documents with most words come first
and a document with every word is never worse off than before. An identifier
word (``re.sub``) that no page spells out also counts by its parts (``re``,
``sub``). The response says it was relaxed.

Phrases stay required (a quoted phrase is a deliberate constraint); filters
(``site:``, ``lang:``) and exclusions keep applying.

A query of stopwords only (``to be or not to be``) is searched as a phrase in
the stored text (:func:`stopword_view`), since stopwords are not indexed.

Local search relaxes over the local index here (:func:`relaxed_view`); global
search runs one query per word (:func:`variants`) and merges them with
:func:`merge`: the BM25 of a document for several words is the sum of its
BM25 for each word, so the merge equals the local computation when each word's
list holds the document.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from whoosh.query import Or, Query, Term

from yasearch.analysis import parts_of
from yasearch.index import POSTING_FIELDS, ReadView
from yasearch.query import ParsedQuery
from yasearch.ranking import CollectionStats, bm25_scores, coordinated, rank
from yasearch.records import Posting

#: AND answers with fewer documents than this are relaxed.
RELAX_BELOW = 10
#: Candidates scored in a relaxed local query: the documents with the most
#: words, down to this many (all of the best coordination level are kept).
RELAX_CANDIDATES = 2000


def relaxed_terms(parsed: ParsedQuery) -> list[str]:
    """The words a relaxed query counts: the query's terms, each identifier followed by its parts."""
    out: dict[str, None] = {}
    for t in parsed.terms:
        out.setdefault(t, None)
        for p in parts_of(t):
            out.setdefault(p, None)
    return list(out)


def should_relax(parsed: ParsedQuery, and_matches: int) -> bool:
    """Relax when AND found too little and there is something to relax."""
    return (
        and_matches < RELAX_BELOW and not parsed.phrases and len(relaxed_terms(parsed)) > 1
    )


def _any_field(term: str) -> Query:
    return Or([Term(f, term) for f, _flag in POSTING_FIELDS])


def relaxed_view(
    view: ReadView, parsed: ParsedQuery, allowed: set[int] | None, excluded: set[int]
) -> tuple[list[tuple[str, float]], dict[str, int]]:
    """Relaxed ranking over one read view: (doc_id, score) best first, and doc_id -> docnum.

    ``allowed`` are the docnums the filters (site:, lang:) admit (None: all),
    ``excluded`` those an exclusion drops.
    """
    terms = relaxed_terms(parsed)
    matched: dict[int, int] = {}
    for t in terms:
        for d in view.docnums(_any_field(t)):
            if d in excluded or (allowed is not None and d not in allowed):
                continue
            matched[d] = matched.get(d, 0) + 1
    if not matched:
        return [], {}
    levels = sorted(set(matched.values()), reverse=True)
    keep: set[int] = set()
    for level in levels:
        keep.update(d for d, m in matched.items() if m == level)
        if len(keep) >= RELAX_CANDIDATES:
            break
    postings = view.postings(terms, keep)
    stats = CollectionStats(n_docs=view.n_docs, avg_length=view.avg_length(), df={t: view.df(t) for t in terms})
    scores = bm25_scores(postings, stats)
    by_id = {view.doc_id_of(d): d for d in keep}
    n = len(terms)
    return rank({doc: coordinated(s, matched[by_id[doc]], n) for doc, s in scores.items()}), by_id


def variants(parsed: ParsedQuery) -> list[ParsedQuery]:
    """One single-word query per relaxed word, with the query's filters and exclusions."""
    return [replace(parsed, terms=[t], phrases=[]) for t in relaxed_terms(parsed)]


def merge(per_word: list[list[Any]], n_words: int) -> list[tuple[Any, float]]:
    """Hits of the single-word queries merged: BM25 summed per document, coordination-weighted.

    ``per_word`` holds each variant's hits (objects with ``doc_id`` and ``score``);
    returns (hit, score) best first, ties by doc_id.
    """
    total: dict[str, float] = {}
    count: dict[str, int] = {}
    first: dict[str, Any] = {}
    for hits in per_word:
        for h in hits:
            total[h.doc_id] = total.get(h.doc_id, 0.0) + h.score
            count[h.doc_id] = count.get(h.doc_id, 0) + 1
            first.setdefault(h.doc_id, h)
    ranked = rank({d: coordinated(s, count[d], n_words) for d, s in total.items()})
    return [(first[d], s) for d, s in ranked]


#: Hits each single-word query of a relaxed global search contributes.
RELAX_DEPTH = 200


async def relax_with(
    search: Callable[[ParsedQuery, int], Awaitable[list[Any]]], parsed: ParsedQuery, *, cap: int | None = None
) -> list[tuple[Any, float]]:
    """Relaxed ranking from single-word searches: ``search(variant, depth)`` returns a
    variant's best hits (the network's global search); see :func:`merge`. ``cap``:
    at most that many words (the first of :func:`relaxed_terms`)."""
    vs = variants(parsed)[:cap]
    per_word = await asyncio.gather(*(search(v, RELAX_DEPTH) for v in vs))
    return merge(list(per_word), len(vs))


#: A stopword phrase is looked for in at most this many stored documents, and the
#: scan stops once :data:`STOPWORD_MATCHES` documents hold it: stopwords are not
#: indexed, so this reads stored text, and a common one ("this") is in nearly every
#: page (measured: 180 ms for 600 pages of 20 KB when every page was read).
STOPWORD_SCAN_DOCS = 2_000
STOPWORD_MATCHES = 100
#: Characters of each stored body looked at: all of an ordinary page (one stored
#: passage), the start of a long one (a phrase further in is not found).
STOPWORD_BODY_CHARS = 24_000


def stopword_view(view: ReadView, words: list[str]) -> tuple[list[tuple[str, float]], dict[str, int]]:
    """Documents whose stored title or text holds ``words`` as a phrase (stopwords
    are not indexed, so the stored text is read): (doc_id, score) best first.

    Score: 3 for the phrase in the title, plus its occurrences in the text. At
    most :data:`STOPWORD_SCAN_DOCS` documents are read, and only until
    :data:`STOPWORD_MATCHES` hold the phrase; of each body, the first
    :data:`STOPWORD_BODY_CHARS` characters.
    """
    # on lowercased text, the phrase starts with a literal the regex engine finds fast
    # (IGNORECASE made the scan ~9x slower); the word boundary before it is checked here
    phrase = re.compile(r"\W+".join(re.escape(w.lower()) for w in words) + r"(?!\w)")

    def count(text: str) -> int:
        low = text.lower()
        n = 0
        for m in phrase.finditer(low):
            before = low[m.start() - 1] if m.start() else " "
            n += not (before.isalnum() or before == "_")
        return n

    scores: dict[str, float] = {}
    by_id: dict[str, int] = {}
    for i, d in enumerate(view.reader.all_doc_ids()):
        if i >= STOPWORD_SCAN_DOCS:
            break
        f = view.display(d)
        score = 3.0 * bool(count(f.get("title") or "")) + count(view.body_prefix(d, STOPWORD_BODY_CHARS))
        if score:
            scores[f["doc_id"]] = score
            by_id[f["doc_id"]] = d
            if len(scores) >= STOPWORD_MATCHES:
                break
    return rank(scores), by_id


def exact_ranking(
    postings: dict[str, list[Posting]], stats: CollectionStats, ids: list[str], terms: list[str]
) -> list[tuple[str, float]]:
    """``ids`` ranked by a relaxed query's score from every word's postings of them."""
    scores = bm25_scores(postings, stats)
    have = {t: {p.doc_id for p in postings.get(t, [])} for t in terms}
    return rank({d: coordinated(scores.get(d, 0.0), sum(d in have[t] for t in terms), len(terms)) for d in ids})
