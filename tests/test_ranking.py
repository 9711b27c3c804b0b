"""BM25 properties and the posting builder that feeds the network."""

from __future__ import annotations

import math

from yasearch.analysis import analyze
from yasearch.ranking import (
    DEFAULT_WEIGHTS,
    CollectionStats,
    bm25_scores,
    document_length,
    idf,
    postings_for_document,
    rank,
    url_text,
)
from yasearch.records import IN_DESCRIPTION, IN_HEADINGS, IN_TITLE, IN_URL, Document, Posting


def _stats(df: dict[str, int], n: int = 100, avg: float = 100.0) -> CollectionStats:
    return CollectionStats(n_docs=n, avg_length=avg, df=df)


def test_higher_tf_ranks_higher() -> None:
    postings = {"cat": [Posting("a", 1, 0, 100), Posting("b", 5, 0, 100)]}
    scores = bm25_scores(postings, _stats({"cat": 10}))
    assert scores["b"] > scores["a"] > 0


def test_title_hit_beats_body_only_hit() -> None:
    postings = {"cat": [Posting("body", 1, 0, 100), Posting("title", 1, IN_TITLE, 100)]}
    ranked = rank(bm25_scores(postings, _stats({"cat": 10})))
    assert [d for d, _ in ranked] == ["title", "body"]


def test_every_field_flag_adds_weight() -> None:
    base = bm25_scores({"t": [Posting("x", 1, 0, 100)]}, _stats({"t": 5}))["x"]
    for flag in (IN_TITLE, IN_HEADINGS, IN_URL, IN_DESCRIPTION):
        boosted = bm25_scores({"t": [Posting("x", 1, flag, 100)]}, _stats({"t": 5}))["x"]
        assert boosted > base


def test_rarer_term_weighs_more() -> None:
    postings = {"rare": [Posting("a", 1, 0, 100)], "common": [Posting("b", 1, 0, 100)]}
    scores = bm25_scores(postings, _stats({"rare": 2, "common": 80}))
    assert scores["a"] > scores["b"]


def test_longer_document_scores_lower_for_same_tf() -> None:
    postings = {"t": [Posting("short", 2, 0, 50), Posting("long", 2, 0, 500)]}
    scores = bm25_scores(postings, _stats({"t": 3}))
    assert scores["short"] > scores["long"]


def test_scores_sum_over_terms_and_match_formula() -> None:
    stats = _stats({"a": 10, "b": 20}, n=1000, avg=200.0)
    postings = {"a": [Posting("d", 3, 0, 100)], "b": [Posting("d", 1, IN_TITLE, 100)]}
    got = bm25_scores(postings, stats)["d"]

    norm = 1 - 0.75 + 0.75 * 100 / 200

    def term(wtf: float, df: int) -> float:  # wtf: tf plus the field boosts
        i = math.log(1 + (1000 - df + 0.5) / (df + 0.5))
        return i * wtf * 2.2 / (wtf + 1.2 * norm)

    assert math.isclose(got, term(3, 10) + term(1 + DEFAULT_WEIGHTS.title, 20))


def test_idf_never_negative() -> None:
    assert idf(10, 10) > 0
    assert idf(5, 10) > 0  # df larger than a stale N


def test_deterministic_ties() -> None:
    scores = {"c": 1.0, "a": 1.0, "b": 2.0, "d": 0.5}
    assert rank(scores) == [("b", 2.0), ("a", 1.0), ("c", 1.0), ("d", 0.5)]
    assert rank(dict(reversed(list(scores.items())))) == rank(scores)


def test_zero_avg_length_does_not_divide_by_zero() -> None:
    scores = bm25_scores({"t": [Posting("x", 0, IN_URL, 0)]}, CollectionStats(1, 0.0, {}))
    assert scores["x"] > 0


def test_postings_for_document() -> None:
    doc = Document(
        doc_id="d1",
        url="https://docs.example.org/guide/cats.html",
        host="docs.example.org",
        title="Cats",
        headings="Caring for cats",
        body="Cats sleep. Cats purr. Dogs bark.",
        description="All about cats",
    )
    postings = postings_for_document(doc)
    length = document_length(doc)
    assert all(p.length == length for p in postings.values())
    cat = postings["cat"]
    assert cat.tf == 5  # title 1 + headings 1 + body 2 + description 1
    assert cat.flags == IN_TITLE | IN_HEADINGS | IN_DESCRIPTION | IN_URL
    assert postings["dog"].flags == 0 and postings["dog"].tf == 1
    # URL-only terms carry only the flag: tf and length cover the text fields.
    assert postings["exampl"].tf == 0 and postings["exampl"].flags == IN_URL
    assert "https" not in postings


def test_url_text_splits_hosts_and_paths() -> None:
    assert url_text("https://www.example.com/a-b/c_d.html?x=1") == "www example com a b c d html x 1"


def test_words_together_in_the_lead_lift_a_document() -> None:
    from yasearch.ranking import boost_lead_proximity, lead_has_words_together

    terms = analyze("weak reference support")
    assert lead_has_words_together(terms, "Weak reference support for Python. More text.")
    assert lead_has_words_together(terms, "Support for weak references")  # any order, close together
    assert not lead_has_words_together(terms, "Weak coupling. " + "filler " * 10 + "reference support")
    leads = {"a": "Nothing relevant here at all", "b": "Weak reference support for Python."}
    ranked = [("a", 2.0), ("b", 1.5), ("c", 1.0)]
    assert [d for d, _s in boost_lead_proximity(ranked, leads.get, terms, 10)] == ["b", "a", "c"]
    assert boost_lead_proximity(ranked, leads.get, ["weak"], 10) == ranked  # one word: no proximity
