"""Top-k evaluation of the local index: the best k matches without ranking them all.

:func:`top_k` returns exactly what ranking every match with
:func:`yasearch.ranking.bm25_scores` and taking the first k gives (same
documents, same scores to the bit, same doc_id tie-break; :func:`exhaustive_top`
is that reference, and tests compare the two on random indexes), but cheaper:

* no :class:`~yasearch.records.Posting` record and no doc_id read per match: the
  (tf, flags) of each term are read per docnum (:meth:`ReadView.term_tf_flags`)
  and scored with :func:`yasearch.ranking.contribution`, the formula
  ``bm25_scores`` uses, summed in the same term order;
* terms are read rarest first, each later term only for the documents still in
  (a short candidate list skips through a long posting list);
* the k best are picked by score with a heap; doc ids are read only for the
  documents that tie with or beat the k-th score, to break ties like ``rank``.

Word queries need no separate candidate pass (AND is the intersection of the
terms' documents); queries with phrases, filters or exclusions pass the
candidate set Whoosh computed.
"""

from __future__ import annotations

import heapq
from typing import Any

from yasearch.index import ReadView
from yasearch.ranking import DEFAULT_WEIGHTS, CollectionStats, FieldWeights, bm25_scores, contribution, idf, rank


def top_k(
    view: ReadView, terms: list[str], k: int, candidates: set[int] | None = None,
    weights: FieldWeights = DEFAULT_WEIGHTS,
) -> tuple[int, list[tuple[int, str, float]]]:
    """(number of matches, the best ``k`` as (docnum, doc_id, score)), best first.

    A match holds every term (in any posting field) and, when ``candidates`` is
    given, is one of them.
    """
    terms = list(dict.fromkeys(terms))
    if not terms or (candidates is not None and not candidates):
        return 0, []
    df = {t: view.df(t) for t in terms}
    matches = candidates
    tf_flags: dict[str, dict[int, list[int]]] = {}
    for t in sorted(terms, key=lambda t: df[t]):
        acc = view.term_tf_flags(t, matches)
        matches = set(acc) if matches is None else matches.intersection(acc)
        tf_flags[t] = acc
        if not matches:
            return 0, []
    assert matches is not None
    n_docs, avg = view.n_docs, view.avg_length()
    if avg <= 0:
        avg = 0.0
    boost = [weights.boost(f) for f in range(32)]
    per_term = [(idf(n_docs, df[t]), tf_flags[t]) for t in terms]
    length_of = view.length_of
    scored: list[tuple[float, int]] = []
    for d in matches:
        length = length_of(d)
        s = 0.0
        for term_idf, acc in per_term:
            tf, flags = acc[d]
            wtf = tf + (boost[flags] if flags < 32 else weights.boost(flags))
            if wtf > 0:
                s += contribution(term_idf, wtf, length, avg)
        scored.append((s, d))
    if k <= 0:
        return len(matches), []
    best = heapq.nlargest(k, scored)
    if len(best) == k:  # every document tied with the k-th competes for its place by doc_id
        kth = best[-1][0]
        best = [sd for sd in scored if sd[0] >= kth]
    doc_id = view.doc_id_of
    ranked = sorted(((-s, doc_id(d), d) for s, d in best))[:k]
    return len(matches), [(d, i, -neg) for neg, i, d in ranked]


def exhaustive_top(view: ReadView, query: Any, terms: list[str], k: int) -> list[tuple[str, float]]:
    """The reference: score every match of ``query`` with BM25, best ``k`` (doc_id, score)."""
    docnums = view.docnums(query)
    if not docnums or not terms:
        return []
    stats = CollectionStats(n_docs=view.n_docs, avg_length=view.avg_length(),
                            df={t: view.df(t) for t in terms})
    return rank(bm25_scores(view.postings(terms, docnums), stats))[:k]
