"""What suggestions (:mod:`yasearch.suggest`) read from a :class:`ReadView`: the
title lexicon by prefix, stored titles and a bounded sample of stored texts.

Each function reads a bounded number of lexicon entries, postings and stored
records, whatever the size of the index.
"""

from __future__ import annotations

from collections.abc import Iterable

from yasearch.index.reader import ReadView


def title_terms(view: ReadView, prefixes: Iterable[str], max_terms: int, exact: Iterable[str] = ()) -> dict[str, int]:
    """Analyzed title terms starting with any of ``prefixes`` (and those of
    ``exact`` that exist), with their title df.

    At most ``max_terms`` terms are expanded in all. The df comes from
    Whoosh's term info, which still counts deleted documents until their
    segment is merged; callers confirm liveness with :func:`title_samples`.
    """
    found: dict[str, int] = {}
    for term in exact:
        if term and term not in found:
            df = view.reader.doc_frequency("title", term)
            if df:
                found[term] = df
    budget = max_terms
    for prefix in dict.fromkeys(prefixes):
        if not prefix or budget <= 0:
            continue
        for raw in view.reader.expand_prefix("title", prefix):
            term = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            if term not in found:
                found[term] = view.reader.doc_frequency("title", term)
            budget -= 1
            if budget <= 0:
                break
    return found


def text_samples(view: ReadView, term: str, n: int, scan: int, chars: int) -> list[tuple[str, str, str]]:
    """Stored text (title, description, the first ``chars`` of body) of up to
    ``n`` live documents with ``term``: those with it in the title first, then,
    among the first ``scan`` documents with it in the body, those where it is
    most frequent. Bounded: at most ``scan`` postings and ``n`` stored records read."""
    picked: list[int] = []
    for docnum, _w in view.live_pairs("title", term):
        picked.append(docnum)
        if len(picked) >= n // 2:
            break
    seen = set(picked)
    body: list[tuple[float, int]] = []
    for docnum, weight in view.live_pairs("body", term):
        if docnum not in seen:
            body.append((-weight, docnum))
        if len(body) >= scan:
            break
    body.sort()
    picked += [docnum for _w, docnum in body[: n - len(picked)]]
    texts = []
    for docnum in picked:
        fields = view.display(docnum)
        texts.append((fields.get("title", "") or "", fields.get("description", "") or "", view.body_prefix(docnum, chars)))
    return texts


def title_samples(view: ReadView, term: str, n: int) -> list[str]:
    """Stored titles of up to ``n`` live documents with ``term`` in the title."""
    titles: list[str] = []
    for docnum, _w in view.live_pairs("title", term):
        titles.append(view.display(docnum).get("title", "") or "")
        if len(titles) >= n:
            break
    return titles
