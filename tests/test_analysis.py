"""The one analyzer: the fast analyze() must yield exactly what Whoosh's chain yields."""

from __future__ import annotations

import random

from whoosh.analysis import CompositeAnalyzer

from yasearch.analysis import (
    TOKEN_RE,
    IdentifierPartsFilter,
    analyze,
    analyze_positions,
    doc_id,
    is_legacy_analyzer,
    is_standard_analyzer,
    make_analyzer,
    parts_of,
    query_terms,
    term_key,
    term_of,
)

SAMPLES = [
    "The Quick brown foxes were RUNNING over the lazy dogs' houses, didn't they?",
    "e.g. U.S.A. 3.14 v2.0 foo_bar x-ray naïve café Straße ÆTHER 東京 タワー",
    "a I an of to be x y z " + "w" * 70 + " supercalifragilistic",
    "",
    "   \t\n ",
    "<script>alert(1)</script> &amp; http://example.com/a/b?c=d#e",
    "print(json.dumps(x)); re.sub(r'a', '', s) snake_case __init__ dumps.dump the_end 3.14_x.y",
]


def whoosh_terms(text: str) -> list[str]:
    return [t.text for t in make_analyzer()(text)]


def test_fast_analyze_matches_whoosh_chain() -> None:
    for text in SAMPLES:
        assert analyze(text) == whoosh_terms(text), text


def test_fast_analyze_matches_on_random_text() -> None:
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCÉßø0123456789 .,-_'\"/:;!?\n"
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        assert analyze(text) == whoosh_terms(text), text


def test_positions_match_whoosh_chain() -> None:
    """analyze_positions: the terms of analyze(), numbered as Whoosh's StopFilter(renumber=True) does."""
    rng = random.Random(11)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCÉßø0123456789 .,-_'\"/:;!?\n"
    texts = SAMPLES + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300))) for _ in range(100)]
    for text in texts:
        terms, positions = analyze_positions(text)
        ref = [(t.text, t.pos) for t in make_analyzer()(text, positions=True)]
        assert terms == analyze(text) == [t for t, _ in ref], text
        assert list(positions) == [p for _, p in ref], text


def test_token_pattern_is_the_analyzers() -> None:
    """TOKEN_RE cuts text exactly where the Whoosh analyzer's tokenizer does."""
    tokenizer = make_analyzer().items[0]
    for text in SAMPLES:
        assert TOKEN_RE.findall(text) == [t.text for t in tokenizer(text)], text
        assert [term_of(tok) for tok in TOKEN_RE.findall(text) if term_of(tok)] == query_terms(text)


def test_keys_are_sha1() -> None:
    assert len(term_key("apple")) == 20
    assert len(doc_id("https://example.com/")) == 40


def test_identifiers_are_indexed_whole_and_as_parts() -> None:
    assert analyze("json.dumps re.sub snake_case") == [
        "json.dump", "json", "dump", "re.sub", "re", "sub", "snake_cas", "snake", "case"
    ]
    # parts share the position of their whole, so the following words keep theirs
    terms, positions = analyze_positions("call json.dumps now")
    assert list(zip(terms, positions)) == [("call", 0), ("json.dump", 1), ("json", 1), ("dump", 1), ("now", 2)]
    assert parts_of("__init__") == ("init",) and parts_of("e.g") == () and parts_of("word") == ()
    # a query word asks for the identifier itself
    assert query_terms("json.dumps") == ["json.dump"]
    assert query_terms("dumps") == ["dump"]


def test_indexes_built_before_parts_are_recognised() -> None:
    assert is_standard_analyzer(make_analyzer())
    legacy = CompositeAnalyzer(*(f for f in make_analyzer().items if not isinstance(f, IdentifierPartsFilter)))
    assert is_legacy_analyzer(legacy) and not is_standard_analyzer(legacy)
    assert not is_legacy_analyzer(make_analyzer())
