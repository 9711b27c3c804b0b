"""Exact top-k over term lists held by different peers: the threshold family (Fagin's TA, TPUT).

A document's score is the sum of its terms' contributions (BM25 in
:mod:`yasearch.ranking`). Each term's list lives at another peer and is read
two ways:

* **sorted access**: the next postings in descending order of contribution,
  with a *bound*: no posting not yet delivered contributes more (0 when the list
  is exhausted);
* **random access**: the term's contribution for given documents, or "absent".

:class:`TopK` keeps what arrived and answers the three questions of a round:
which documents still need random access because they could reach the top
``k`` (:meth:`TopK.wanted`: upper bound >= the current k-th lower bound, the
TPUT threshold); whether the top ``k`` is proven (:meth:`TopK.proven`: every
document not fully known, seen or unseen, has an upper bound below the k-th
exact score); and, when it is not, how deep each list must still be read
(:meth:`TopK.floors`: an unseen document needs at least ``floor`` from that
term to reach the k-th score, whatever the other terms give).

AND (``any_term=False``): a document matches when it has every term; OR
(``any_term=True``): when it has at least one, scored by the terms it has.
Ties are broken by doc_id as :func:`yasearch.ranking.rank` does, so a document
whose upper bound merely *equals* the k-th score is never ruled out.

Pure: no I/O, no peers; the asking peer (:mod:`yasearch.netfetch`) runs the
rounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from yasearch.ranking import rank

#: Relative slack on every comparison of sums: the replica orders postings in
#: SQL, the asker sums contributions in another order, both in floating point.
MARGIN = 1e-9

_NO = -math.inf


def _lt(a: float, b: float) -> bool:
    """``a`` is below ``b`` by more than rounding can explain."""
    return a + MARGIN * max(1.0, abs(a), abs(b)) < b


@dataclass
class TermList:
    """What is known of one term's list."""

    #: doc -> contribution, from sorted or random access
    known: dict[str, float] = field(default_factory=dict)
    #: docs random access found without the term
    absent: set[str] = field(default_factory=set)
    #: no posting outside ``known`` contributes more (inf: nothing read yet)
    bound: float = math.inf
    #: sorted access delivered every posting: a doc outside ``known`` lacks the term
    exhausted: bool = False
    #: postings delivered by sorted access (where the next batch starts)
    delivered: int = 0

    def has(self, d: str) -> bool | None:
        """True/False when known, None when unknown."""
        if d in self.known:
            return True
        if d in self.absent or self.exhausted:
            return False
        return None


class TopK:
    """The state of one distributed top-``k`` query over ``terms``.

    ``checks``: documents must also be *confirmed* (exclusions, filters,
    phrases checked by the caller) before they count as matches; a fully known
    but unconfirmed document is treated like one not fully known."""

    def __init__(self, terms: list[str], k: int, *, any_term: bool = False, checks: bool = False) -> None:
        self.terms = list(dict.fromkeys(terms))
        self.k = max(1, k)
        self.any_term = any_term
        self.checks = checks
        self.lists: dict[str, TermList] = {t: TermList() for t in self.terms}
        self.excluded: set[str] = set()
        self.confirmed: set[str] = set()
        #: status() and seen() of the current state; emptied by every input
        self._status: dict[str, tuple[float, float, bool]] = {}
        self._seen: set[str] | None = None

    def _changed(self) -> None:
        self._status.clear()
        self._seen = None

    # -- input -------------------------------------------------------------------

    def sorted_batch(self, term: str, contribs: dict[str, float], bound: float, exhausted: bool) -> None:
        """The next postings of ``term`` by sorted access, and the bound of the rest.

        The bound is capped at the smallest contribution delivered: a list read in
        descending order cannot hold more further down, so a claimed bound above it
        (a lying replica) can never make the asker read further."""
        self._changed()
        tl = self.lists[term]
        tl.known.update(contribs)
        tl.delivered += len(contribs)
        b = 0.0 if exhausted else max(0.0, bound)
        if contribs:
            b = min(b, min(contribs.values()))
        tl.bound = min(tl.bound, b)
        tl.exhausted = tl.exhausted or exhausted

    def random(self, term: str, asked: Iterable[str], found: dict[str, float]) -> None:
        """Random access to ``term`` for ``asked``: those in ``found`` have it, the others not."""
        self._changed()
        tl = self.lists[term]
        tl.known.update(found)
        tl.absent.update(d for d in asked if d not in found)

    def exclude(self, docs: Iterable[str]) -> None:
        """These documents are not matches (an excluded term, a filter, a phrase)."""
        self._changed()
        self.excluded.update(docs)

    def confirm(self, docs: Iterable[str]) -> None:
        """These documents passed the caller's checks."""
        self._changed()
        self.confirmed.update(docs)

    def drop_term(self, term: str) -> None:
        """Forget ``term`` (every replica failed): the query goes on without it."""
        self._changed()
        if term in self.lists:
            del self.lists[term]
            self.terms.remove(term)

    # -- what is known ---------------------------------------------------------------

    def seen(self) -> set[str]:
        if self._seen is None:
            out: set[str] = set()
            for tl in self.lists.values():
                out.update(tl.known)
            self._seen = out - self.excluded
        return self._seen

    def status(self, d: str) -> tuple[float, float, bool]:
        """(lower bound, upper bound, fully known) of ``d``; (-inf, -inf, True) for a non-match."""
        got = self._status.get(d)
        if got is None:
            got = self._status[d] = self._compute(d)
        return got

    def _compute(self, d: str) -> tuple[float, float, bool]:
        if d in self.excluded:
            return _NO, _NO, True
        lower = upper = 0.0
        full, present = True, 0
        for t in self.terms:
            tl = self.lists[t]
            has = tl.has(d)
            if has is True:
                lower += tl.known[d]
                upper += tl.known[d]
                present += 1
            elif has is False:
                if not self.any_term:
                    return _NO, _NO, True
            else:
                full = False
                upper += tl.bound
        if full and present == 0:
            return _NO, _NO, True
        if not self.any_term and not full:
            lower = _NO  # not known to match at all
        return lower, upper, full

    def _counted(self, d: str, full: bool) -> bool:
        return full and (not self.checks or d in self.confirmed)

    def exact(self) -> dict[str, float]:
        """Fully known (and confirmed) matches with their exact scores."""
        out: dict[str, float] = {}
        for d in self.seen():
            lower, _u, full = self.status(d)
            if lower != _NO and self._counted(d, full):
                out[d] = lower
        return out

    def ranking(self) -> list[tuple[str, float]]:
        """The exact matches, best first, ties by doc_id."""
        return rank(self.exact())

    def threshold(self) -> float:
        """The k-th best lower bound over the documents seen (-inf with fewer than k)."""
        lows = sorted((lo for lo in (self.status(d)[0] for d in self.seen()) if lo != _NO), reverse=True)
        return lows[self.k - 1] if len(lows) >= self.k else _NO

    def unseen_upper(self) -> float:
        """The most a document no list has delivered yet can score."""
        total = 0.0
        for tl in self.lists.values():
            if tl.exhausted:
                if not self.any_term:
                    return _NO
                continue
            total += tl.bound
        return total if total > 0 else _NO

    # -- the next round ---------------------------------------------------------------

    def partial_threshold(self, rank_no: int) -> float:
        """The ``rank_no``-th best sum of the contributions known so far (-inf with fewer
        documents): a *guess* of the k-th score under AND, where a document known in
        some lists may lack the others (see :meth:`candidates`)."""
        lows = sorted((sum(tl.known.get(d, 0.0) for tl in self.lists.values()) for d in self.seen()), reverse=True)
        return lows[rank_no - 1] if 0 < rank_no <= len(lows) else _NO

    def candidates(self, guess: float = _NO) -> list[str]:
        """Seen documents that could still reach the top k and are not settled
        (not fully known, or known but unconfirmed), best upper bound first.

        ``guess``: a threshold the caller expects the k-th score to reach (no proof):
        documents whose upper bound is below it wait. Safe: :meth:`proven` still
        demands every document that could reach the k-th score be settled, so a
        guess too high costs a round, never a wrong answer."""
        tau = max(self.threshold(), guess)
        out: list[tuple[float, str]] = []
        for d in self.seen():
            _lo, up, full = self.status(d)
            if up == _NO or self._counted(d, full):
                continue
            if tau == _NO or not _lt(up, tau):
                out.append((up, d))
        out.sort(key=lambda x: (-x[0], x[1]))
        return [d for _u, d in out]

    def wanted(self, limit: int | None = None, guess: float = _NO) -> dict[str, list[str]]:
        """Random accesses of the next round: term -> documents whose entry for it is
        unknown, over the best ``limit`` candidates (``guess``: see :meth:`candidates`)."""
        out: dict[str, list[str]] = {}
        for d in self.candidates(guess)[:limit]:
            for t in self.terms:
                if self.lists[t].has(d) is None:
                    out.setdefault(t, []).append(d)
        return out

    def kth(self) -> float:
        """The k-th best exact score (-inf with fewer than k exact matches)."""
        r = self.ranking()
        return r[self.k - 1][1] if len(r) >= self.k else _NO

    def proven(self) -> bool:
        """Nothing outside the exact matches can enter their best k."""
        s = self.kth()
        for d in self.seen():
            _lo, up, full = self.status(d)
            if up == _NO or self._counted(d, full):
                continue
            if s == _NO or not _lt(up, s):
                return False
        unseen = self.unseen_upper()
        return unseen == _NO or (s != _NO and _lt(unseen, s))

    def floors(self, remaining: dict[str, int] | None = None) -> dict[str, float]:
        """For each list not exhausted: the contribution below which a document it has
        not delivered cannot reach the k-th score (0: read on without floor).

        With fewer than k matches under AND, only the list with the fewest postings
        ``remaining`` is read on: a document no list delivered must be in all of them,
        so exhausting one list settles every such document."""
        s = self.kth()
        open_terms = [t for t in self.terms if not self.lists[t].exhausted]
        if s == _NO and not self.any_term and remaining and open_terms:
            return {min(open_terms, key=lambda t: (remaining.get(t, 0), t)): 0.0}
        out: dict[str, float] = {}
        for t in open_terms:
            if s == _NO:
                out[t] = 0.0
                continue
            rest = sum(self.lists[o].bound for o in open_terms if o != t)
            out[t] = max(0.0, (s - rest) * (1.0 - MARGIN) - MARGIN)
        return out
