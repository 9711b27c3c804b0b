"""Ablations of ``python -m bench relevance --ablations``: one ranking signal off at a time.

Each switch turns one signal off in this process (the benchmark's peers parse
pages in-process, so extraction switches apply) and returns how to turn it
back on.
"""

from __future__ import annotations

from collections.abc import Callable


def _no_relax() -> Callable[[], None]:
    from yasearch import relax

    old = relax.RELAX_BELOW
    relax.RELAX_BELOW = 0
    return lambda: setattr(relax, "RELAX_BELOW", old)


def _no_dedupe() -> Callable[[], None]:
    from yasearch import netrelax, search

    old = search.arrange
    search.arrange = netrelax.arrange = lambda ranked, info, upto, folded=None: ranked  # type: ignore[assignment]

    def undo() -> None:
        search.arrange = netrelax.arrange = old  # type: ignore[assignment]

    return undo


def _no_lead() -> Callable[[], None]:
    from yasearch.crawler import extract

    old = extract.LEAD_MIN_WORDS
    extract.LEAD_MIN_WORDS = 10**9
    return lambda: setattr(extract, "LEAD_MIN_WORDS", old)


def _no_field_weights() -> Callable[[], None]:
    from yasearch.ranking import FieldWeights

    old = FieldWeights.boost
    FieldWeights.boost = lambda self, flags: 0.0  # type: ignore[method-assign]
    return lambda: setattr(FieldWeights, "boost", old)


def _no_identifier_parts() -> Callable[[], None]:
    from yasearch import analysis

    old = analysis._split_parts
    analysis._split_parts = lambda word: ()  # type: ignore[assignment]
    analysis._PARTS_CACHE.clear()

    def undo() -> None:
        analysis._split_parts = old  # type: ignore[assignment]
        analysis._PARTS_CACHE.clear()

    return undo


def _no_lead_proximity() -> Callable[[], None]:
    from yasearch import ranking

    old = ranking.LEAD_PROXIMITY_BOOST
    ranking.LEAD_PROXIMITY_BOOST = 0.0
    return lambda: setattr(ranking, "LEAD_PROXIMITY_BOOST", old)


def _no_anchor_text() -> Callable[[], None]:
    from yasearch import anchors

    old = anchors.anchor_text
    anchors.anchor_text = lambda c, targets: ""  # inlinks (the prior) still counted
    return lambda: setattr(anchors, "anchor_text", old)


def _no_prior() -> Callable[[], None]:
    from bench.relevance_prior import prior_weight

    return prior_weight(0.0)


#: name -> switch that turns one signal off and returns how to turn it back on
ABLATIONS: dict[str, Callable[[], Callable[[], None]]] = {
    "relaxed AND": _no_relax,
    "lead proximity": _no_lead_proximity,
    "duplicate collapse and host diversity": _no_dedupe,
    "lead paragraph as description": _no_lead,
    "field weights (title, headings, URL, description)": _no_field_weights,
    "identifier parts": _no_identifier_parts,
    "anchor text": _no_anchor_text,
    "link-graph prior": _no_prior,
}
