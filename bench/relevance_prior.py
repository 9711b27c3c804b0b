"""The static prior's weight, tried at a few values (``--prior-weights 0,0.25,0.5``).

The prior (:func:`yasearch.ranking.prior_class` of a page's inlinks, carried in
flag bits 5-7 of its postings) adds ``FieldWeights.prior`` pseudo-occurrences
per class to every query word a page matches. It enters the impact postings at
indexing time, so each weight is a fresh crawl of the one-peer system.
"""

from __future__ import annotations

from collections.abc import Callable


def prior_weight(weight: float) -> Callable[[], None]:
    """Set the default prior weight in this process; returns how to set it back."""
    from yasearch.ranking import DEFAULT_WEIGHTS

    old = DEFAULT_WEIGHTS.prior
    object.__setattr__(DEFAULT_WEIGHTS, "prior", weight)  # frozen: the one default instance
    return lambda: object.__setattr__(DEFAULT_WEIGHTS, "prior", old)
