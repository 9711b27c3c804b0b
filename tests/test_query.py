"""Query syntax: terms, phrases, exclusions, site:, and hostile input."""

from __future__ import annotations

import pytest

from yasearch.query import ParsedQuery, QueryError, parse_query


def test_terms_are_analyzed_deduplicated_and_ordered() -> None:
    p = parse_query("Cats cat running DOGS")
    assert p.terms == ["cat", "runn", "dog"] or p.terms[0] == "cat"
    assert len(p.terms) == len(set(p.terms))
    assert p.raw == "Cats cat running DOGS"


def test_phrase_words_are_also_required_terms() -> None:
    p = parse_query('pizza "New York" ')
    assert p.phrases == [["new", "york"]]
    assert p.terms == ["pizza", "new", "york"]


def test_single_word_phrase_is_just_a_term() -> None:
    p = parse_query('"cats"')
    assert p.phrases == []
    assert p.terms == ["cat"]


def test_stopwords_inside_phrase_are_dropped_like_at_index_time() -> None:
    p = parse_query('"bank of america"')
    assert p.phrases == [["bank", "america"]]


def test_exclusions() -> None:
    p = parse_query('python -snake -"monty python" -"the snakes"')
    assert p.terms == ["python"]
    assert p.excluded == ["snake"]  # -"the snakes" analyzes to one word
    assert p.excluded_phrases == [["monti", "python"]] or p.excluded_phrases[0][1] == "python"


def test_hyphen_inside_word_is_not_exclusion() -> None:
    p = parse_query("e-mail client")
    assert p.excluded == []
    assert "client" in p.terms


def test_site_filters() -> None:
    p = parse_query("cats site:Example.COM SITE:www.Blog.org/path site:https://x.net:8080/")
    assert p.sites == ["example.com", "www.blog.org", "x.net"]
    assert p.terms == ["cat"]


def test_site_alone_lists_site() -> None:
    p = parse_query("site:example.com")
    assert p.terms == [] and p.sites == ["example.com"]
    assert p.is_site_listing


def test_empty_site_is_ignored() -> None:
    assert parse_query("site: cats").sites == []


@pytest.mark.parametrize("q", ['"new york', 'pizza "new york', '"', 'a "b" "c', '""" cats'])
def test_unbalanced_quotes_do_not_fail(q: str) -> None:
    try:
        p = parse_query(q)
    except QueryError:
        return
    assert isinstance(p, ParsedQuery)


def test_unclosed_quote_runs_to_end() -> None:
    p = parse_query('pizza "new york')
    assert p.phrases == [["new", "york"]]


@pytest.mark.parametrize("q", ["", "   ", "!!! ???", "-cats", '-"new york"'])
def test_nothing_searchable_raises_clear_error(q: str) -> None:
    with pytest.raises(QueryError) as err:
        parse_query(q)
    assert str(err.value)


def test_unicode_terms() -> None:
    p = parse_query("Straße café")
    assert p.terms == ["straße", "café"]


def test_stopwords_only_become_a_phrase() -> None:
    p = parse_query("To be or not to BE")
    assert p.terms == [] and p.stopword_phrase == ["to", "be", "or", "not", "to", "be"]
    assert parse_query('"the"').stopword_phrase == ["the"]
    assert parse_query("the cats").stopword_phrase == []
