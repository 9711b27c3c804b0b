"""The distributed top-k (yasearch.disttopk) against brute force on random lists.

Each term's list is a dict doc -> contribution, as a replica holds it. The driver
below plays the asker the way yasearch.netfetch does: a first sorted batch of
every list, then rounds of random access for the candidates and, when the top k
is not proven, a deeper sorted batch of each open list down to its floor.
"""

from __future__ import annotations

import math
import random

import pytest

from yasearch.disttopk import TopK
from yasearch.ranking import rank


def brute(lists: dict[str, dict[str, float]], k: int, any_term: bool, excluded: set[str] = frozenset()) -> list[tuple[str, float]]:
    docs = set().union(*lists.values())
    scores: dict[str, float] = {}
    for d in docs - excluded:
        if not any_term and not all(d in pl for pl in lists.values()):
            continue
        scores[d] = sum(pl[d] for pl in lists.values() if d in pl)  # term order, like bm25_scores
    return rank(scores)[:k]


def ordered(pl: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(pl.items(), key=lambda x: (-x[1], x[0]))


def run(lists: dict[str, dict[str, float]], k: int, first: int, *, any_term: bool = False,
        excluded: set[str] = frozenset(), max_rounds: int = 20) -> tuple[TopK, int, int]:
    """(state, sequential round trips, postings moved)."""
    topk = TopK(list(lists), k, any_term=any_term, checks=bool(excluded))
    sent = {t: ordered(pl) for t, pl in lists.items()}

    def sorted_access(t: str, n: int, floor: float) -> int:
        tl = topk.lists[t]
        rest = sent[t][tl.delivered:]
        batch = [(d, c) for d, c in rest[:n] if c >= floor]
        tail = rest[len(batch):]
        topk.sorted_batch(t, dict(batch), tail[0][1] if tail else 0.0, not tail)
        return len(batch)

    moved = sum(sorted_access(t, first, 0.0) for t in lists)  # round trip 1
    trips = 1
    while trips < max_rounds:
        want = topk.wanted()
        cands = topk.candidates()
        if want or (excluded and cands):
            trips += 1
            for t, ids in want.items():
                found = {d: lists[t][d] for d in ids if d in lists[t]}
                topk.random(t, ids, found)
                moved += len(ids) + len(found)
            topk.exclude(d for d in cands if d in excluded)
            topk.confirm(d for d in cands if d not in excluded)
            continue
        if topk.proven():
            break
        trips += 1
        for t, floor in topk.floors({t: len(lists[t]) - topk.lists[t].delivered for t in lists}).items():
            moved += sorted_access(t, 4 * first, floor)
    return topk, trips, moved


def impact_lists(rng: random.Random, n_terms: int, n_docs: int, density: float, ties: bool) -> dict[str, dict[str, float]]:
    lists: dict[str, dict[str, float]] = {}
    for i in range(n_terms):
        idf = rng.uniform(0.5, 4.0)
        pl: dict[str, float] = {}
        for j in range(n_docs):
            if rng.random() < density:
                tf = rng.choice([1, 1, 1, 2, 2, 3, 5, 8])
                c = round(tf / (tf + 1.2), 1) if ties else tf / (tf + 1.2 * rng.uniform(0.4, 2.0))
                pl[f"{j:040x}"] = idf * c
        lists[f"t{i}"] = pl
    return lists


@pytest.mark.parametrize("any_term", [False, True], ids=["and", "or"])
@pytest.mark.parametrize("seed", range(12))
def test_top_k_equals_brute_force_with_lists_ten_times_the_first_batch(seed: int, any_term: bool) -> None:
    rng = random.Random(seed)
    n_terms = 1 + seed % 3
    lists = impact_lists(rng, n_terms, 3000, rng.uniform(0.3, 0.9), ties=seed % 2 == 0)
    first = min(len(pl) for pl in lists.values()) // 10
    assert all(len(pl) >= 10 * first for pl in lists.values())
    for k in (1, 10, 40):
        topk, trips, _moved = run(lists, k, first, any_term=any_term)
        assert topk.proven()
        assert topk.ranking()[:k] == brute(lists, k, any_term), (seed, k)
        assert trips < 20


def test_correlated_lists_need_two_round_trips_and_move_a_fraction() -> None:
    """Terms that tend to score high in the same documents (a page about both):
    round trip 1 (sorted) and at most 2 (random) prove the top 10."""
    rng = random.Random(7)
    topic = {f"{j:040x}": rng.random() for j in range(20000)}
    lists = {
        t: {d: w * 3.0 + rng.uniform(0, 0.3) for d, w in topic.items() if rng.random() < 0.6}
        for t in ("a", "b")
    }
    full = sum(len(pl) for pl in lists.values())
    topk, trips, moved = run(lists, 10, first=full // 2 // 50)
    assert topk.ranking()[:10] == brute(lists, 10, False)
    assert trips <= 2
    assert moved < 0.10 * full


def test_exclusions_and_ties_by_doc_id() -> None:
    same = {f"{j:040x}": 1.0 for j in range(500)}
    lists = {"a": dict(same), "b": dict(same)}
    excluded = {f"{j:040x}" for j in range(0, 500, 3)}
    topk, _trips, _moved = run(lists, 10, 20, excluded=excluded)
    assert topk.ranking()[:10] == brute(lists, 10, False, excluded)
    assert [d for d, _s in topk.ranking()[:10]] == sorted(set(same) - excluded)[:10]


def test_a_list_delivered_whole_ends_the_query_in_and() -> None:
    lists = {"rare": {"a" * 40: 2.0, "b" * 40: 1.0}, "common": {f"{j:040x}": 0.5 for j in range(5000)}}
    lists["common"]["a" * 40] = 0.7
    topk, trips, moved = run(lists, 10, 100)
    assert topk.ranking() == brute(lists, 10, False) == [("a" * 40, 2.7)]
    assert trips == 2 and moved < 300


def test_fewer_matches_than_k_are_all_found() -> None:
    rng = random.Random(3)
    lists = impact_lists(rng, 2, 4000, 0.5, ties=False)
    a, b = lists["t0"], lists["t1"]
    both = set(a) & set(b)
    for d in list(both)[5:]:
        del b[d]
    topk, _trips, _moved = run(lists, 10, 40)
    assert topk.proven() and len(topk.ranking()) == 5
    assert topk.ranking() == brute(lists, 10, False)


def test_a_bound_above_what_was_delivered_is_capped() -> None:
    """A replica claiming its unsent postings may score 100 (more than those it
    sent) cannot make the asker read further: the bound is the smallest sent."""
    topk = TopK(["t"], 1)
    topk.sorted_batch("t", {"a" * 40: 3.0, "b" * 40: 2.0}, bound=100.0, exhausted=False)
    assert topk.lists["t"].bound == 2.0
    assert topk.proven() and not topk.wanted()


def test_a_dropped_term_leaves_the_others() -> None:
    topk = TopK(["x", "y"], 1)
    topk.sorted_batch("x", {"a" * 40: 1.0}, 0.0, True)
    assert not topk.ranking()
    topk.drop_term("y")
    assert topk.ranking() == [("a" * 40, 1.0)] and topk.proven()
    assert math.isinf(TopK(["z"], 1).lists["z"].bound)
