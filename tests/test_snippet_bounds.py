"""Snippets on long bodies: read a stretch at a time, stop once a window holds every term."""

from __future__ import annotations

from yasearch import snippets
from yasearch.analysis import analyze
from yasearch.snippets import SCAN_CHARS, make_snippet

FILLER = "plain words about nothing in particular " * 10


def long_text(chars: int, inserts: dict[int, str]) -> str:
    text = (FILLER * (chars // len(FILLER) + 1))[:chars]
    for pos in sorted(inserts, reverse=True):
        text = text[:pos] + " " + inserts[pos] + " " + text[pos:]
    return text


def test_a_hit_deep_in_a_long_body_is_still_found():
    text = long_text(1_000_000, {900_000: "zebras graze"})
    plain, marked = make_snippet(text, analyze("zebras"))
    assert "zebras" in plain and "<mark>zebras</mark>" in marked


def test_the_scan_stops_after_the_first_stretch_with_every_term(monkeypatch):
    text = long_text(1_000_000, {100: "zebras graze", 500_000: "zebras zebras zebras graze"})
    scanned: list[tuple[int, int | None]] = []
    real = snippets._find_hits

    def spy(text, terms, low=None, start=0, stop=None):
        scanned.append((start, stop))
        return real(text, terms, low, start, stop)

    monkeypatch.setattr(snippets, "_find_hits", spy)
    plain, _ = make_snippet(text, analyze("zebras graze"))
    assert "zebras graze" in plain
    assert scanned == [(0, SCAN_CHARS)]  # one stretch read of 1,000,000 characters


def test_terms_far_apart_are_looked_for_further():
    text = long_text(200_000, {1_000: "zebras", 30_000: "zebras graze together"})
    plain, _ = make_snippet(text, analyze("zebras graze"))
    assert "zebras graze" in plain  # the window with both terms, not the first lone hit


def test_short_texts_are_read_whole_as_before():
    text = long_text(SCAN_CHARS - 100, {50: "zebras", 10_000: "zebras zebras zebras"})
    plain, _ = make_snippet(text, analyze("zebras"))
    assert plain.count("zebras") == 3  # the window with the most hits


def test_the_search_for_every_term_gives_up_after_the_scan_limit():
    text = long_text(1_000_000, {1_000: "zebras", 900_000: "zebras graze together"})
    plain, _ = make_snippet(text, analyze("zebras graze"))
    assert "zebras" in plain and "graze" not in plain  # the lone early hit, not a scan of the megabyte
