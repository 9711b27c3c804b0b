"""Top-k evaluation of word queries over the local index."""

from __future__ import annotations

from typing import Any

from yasearch.index import ReadView
from yasearch.ranking import CollectionStats, bm25_scores, rank


def exhaustive_top(view: ReadView, query: Any, terms: list[str], k: int) -> list[tuple[str, float]]:
    """The reference: score every match of ``query`` with BM25, best ``k`` (doc_id, score)."""
    docnums = view.docnums(query)
    if not docnums or not terms:
        return []
    stats = CollectionStats(n_docs=view.n_docs, avg_length=view.avg_length(),
                            df={t: view.df(t) for t in terms})
    return rank(bm25_scores(view.postings(terms, docnums), stats))[:k]
