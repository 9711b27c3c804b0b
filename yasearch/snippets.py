"""Result snippets: the passage with the most query-term hits, highlighted.

Matching must use the shared analyzer (a query for "running" stems to "run" and
should highlight "runs"), but running the full analyzer over every word of a
100 KB body for ten results would dominate query time. So a cheap regex first
finds words that *could* stem to a query term (they start with most of the
term), and only those are confirmed with the analyzer, once per distinct word.
Words are cut with the analyzer's own token pattern (:data:`~yasearch.analysis.TOKEN_RE`),
so a snippet word is exactly an index token.

A document stored as passages (:mod:`yasearch.index.passages`: the body cut
into windows of ~8,000 characters, each compressed alone, with a filter of the
terms each holds) gets its snippet from :func:`passage_snippet`, which reads
the passages whose filters admit the most query terms first and at most
:data:`MAX_PASSAGES_READ` of them (plus a neighbour when the window it shows
crosses a passage's edge): the cost is a few passages whatever the size of the
page.

The HTML form escapes every piece of page text with :func:`html.escape`; the
only markup in it is our own ``<mark>``, so it is safe to embed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from yasearch.analysis import TOKEN_RE, analyze

_SPACE = re.compile(r"\s+")
ELLIPSIS = "\u2026"
#: Hits beyond this many are ignored when choosing a window (pathological pages).
MAX_HITS = 1000
#: The body is searched for hits this many characters at a time, and the search
#: stops after the first stretch that yields a window holding every query term,
#: so a snippet costs about the same on a 20 KB page and on a 1 MB one.
SCAN_CHARS = 16_000
#: A body stored as passages: at most this many are searched for hits
#: (:func:`passage_snippet`), those whose term filters admit the most query terms.
MAX_PASSAGES_READ = 4
#: Once some hit is found, the search for a window with every term goes no
#: further than this; before the first hit it goes on to the end of the text.
SCAN_LIMIT = 48_000


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    terms: frozenset[str]


def _prefix(term: str) -> str:
    """Most of a stem: Porter only rewrites the last two characters or so."""
    return term[: min(len(term), max(2, len(term) - 2))]


def _scan_hits(text: str, terms: frozenset[str], max_chars: int) -> list[_Hit]:
    """Hits in ``text``, read :data:`SCAN_CHARS` at a time until a window of
    ``max_chars`` holds every term, the text ends, or (once there is a hit)
    :data:`SCAN_LIMIT` characters were read."""
    if len(text) <= SCAN_CHARS:
        return _find_hits(text, terms)
    low = text.lower()
    if len(low) != len(text):
        return _find_hits_slow(text, terms)
    hits: list[_Hit] = []
    pos = 0
    while pos < len(text) and len(hits) < MAX_HITS:
        stop = min(len(text), pos + SCAN_CHARS)
        found = _find_hits(text, terms, low, pos, stop)
        pos = stop
        if found:
            hits += found
            pos = max(stop, found[-1].end)
            _i, inside = _best_window(hits, max_chars)
            if len(frozenset().union(*(h.terms for h in inside))) == len(terms):
                break
        if hits and pos >= SCAN_LIMIT:
            break
    return hits[:MAX_HITS]


def _find_hits(text: str, terms: frozenset[str], low: str | None = None, start: int = 0,
               stop: int | None = None) -> list[_Hit]:
    """Hits whose token starts in ``text[start:stop]`` (``low``: ``text.lower()``, if at hand)."""
    if not text or not terms:
        return []
    if low is None:
        low = text.lower()
        if len(low) != len(text):  # a character lowercases to several: offsets would not match
            return _find_hits_slow(text, terms)
    endpos = len(low) if stop is None else stop
    prefixes = sorted({_prefix(t) for t in terms}, key=len, reverse=True)
    # A plain case-sensitive search on the lowercased text is ~3x faster than the
    # case-insensitive one with lookbehinds at every position; the token-start
    # checks are done only where a prefix occurs.
    search = re.compile("|".join(re.escape(p) for p in prefixes)).search
    token_at = TOKEN_RE.match
    memo: dict[str, frozenset[str]] = {}
    hits: list[_Hit] = []
    pos = start
    while (m := search(low, pos, endpos)) is not None:
        s = m.start()
        if (s > 0 and _WORD_CHAR.match(text, s - 1)) or (
            s > 1 and text[s - 1] == "." and _WORD_CHAR.match(text, s - 2)
        ):  # (?<!\w)(?<!\w\.): not the start of a token
            pos = s + 1
            continue
        tok = token_at(text, s)
        if tok is None:
            pos = s + 1
            continue
        word = tok.group(0).lower()
        matched = memo.get(word)
        if matched is None:
            matched = memo[word] = frozenset(t for t in analyze(word) if t in terms)
        if matched:
            hits.append(_Hit(tok.start(), tok.end(), matched))
            if len(hits) >= MAX_HITS:
                break
        pos = tok.end()
    return hits


_WORD_CHAR = re.compile(r"\w")


def _find_hits_slow(text: str, terms: frozenset[str]) -> list[_Hit]:
    if not text or not terms:
        return []
    prefixes = sorted({_prefix(t) for t in terms}, key=len, reverse=True)
    candidate = re.compile(
        r"(?<!\w)(?<!\w\.)(?=(?:" + "|".join(re.escape(p) for p in prefixes) + "))" + TOKEN_RE.pattern,
        re.IGNORECASE,
    )
    memo: dict[str, frozenset[str]] = {}
    hits: list[_Hit] = []
    for m in candidate.finditer(text):
        word = m.group(0).lower()
        matched = memo.get(word)
        if matched is None:
            matched = memo[word] = frozenset(t for t in analyze(word) if t in terms)
        if matched:
            hits.append(_Hit(m.start(), m.end(), matched))
            if len(hits) >= MAX_HITS:
                break
    return hits


def _best_window(hits: list[_Hit], max_chars: int) -> tuple[int, list[_Hit]]:
    """Index of the first hit of the best window, and the hits inside it.

    Best = most distinct query terms, then most hits, then earliest.
    """
    best_key = (-1, -1)
    best_i = 0
    best: list[_Hit] = []
    j = 0
    for i, first in enumerate(hits):
        j = max(j, i)
        while j + 1 < len(hits) and hits[j + 1].end - first.start <= max_chars:
            j += 1
        inside = hits[i : j + 1]
        distinct = len(frozenset().union(*(h.terms for h in inside)))
        key = (distinct, len(inside))
        if key > best_key:
            best_key, best_i, best = key, i, inside
    return best_i, best


#: How far a window edge may move to land on a word boundary. Without a bound,
#: a long run without spaces (minified text, a long URL) before the first hit
#: would drag the window start back so far that the hit fell out of the window.
_MAX_SNAP = 20


def _snap_start(text: str, pos: int) -> int:
    """Move ``pos`` back to the start of the word it falls in (if that is near)."""
    cut = pos
    while cut > 0 and not text[cut - 1].isspace():
        cut -= 1
        if pos - cut > _MAX_SNAP:
            return pos
    return cut


def _snap_end(text: str, pos: int, floor: int) -> int:
    """Move ``pos`` back to a word boundary, not before ``floor``."""
    if pos >= len(text):
        return len(text)
    cut = pos
    while cut > floor and not text[cut].isspace():
        cut -= 1
    return cut if cut > floor else pos


def _render(text: str, start: int, end: int, hits: Iterable[_Hit], before: bool = False,
            after: bool = False) -> tuple[str, str]:
    """``text[start:end]`` with ``hits`` marked; ``before``/``after``: more of the page
    precedes/follows ``text`` (it is a piece of the body)."""
    lead = ELLIPSIS if before or (start > 0 and text[:start].strip()) else ""
    tail = ELLIPSIS if after or (end < len(text) and text[end:].strip()) else ""
    plain_parts: list[str] = []
    html_parts: list[str] = []
    pos = start
    for h in hits:
        if h.start < pos or h.end > end:
            continue
        gap = _SPACE.sub(" ", text[pos : h.start])
        plain_parts.append(gap)
        html_parts.append(html.escape(gap))
        word = text[h.start : h.end]
        plain_parts.append(word)
        html_parts.append("<mark>" + html.escape(word) + "</mark>")
        pos = h.end
    rest = _SPACE.sub(" ", text[pos:end])
    plain_parts.append(rest)
    html_parts.append(html.escape(rest))
    plain = "".join(plain_parts)
    body_html = "".join(html_parts)
    # Strip outer whitespace identically from both forms.
    lstrip = len(plain) - len(plain.lstrip())
    rstrip = len(plain) - len(plain.rstrip())
    plain = plain.strip()
    if lstrip:
        body_html = body_html[lstrip:]
    if rstrip:
        body_html = body_html[: len(body_html) - rstrip]
    return lead + plain + tail, html.escape(lead) + body_html + html.escape(tail)


def _window_snippet(text: str, hits: list[_Hit], max_chars: int, before: bool = False,
                    after: bool = False) -> tuple[str, str]:
    i, inside = _best_window(hits, max_chars)
    first, last = hits[i], inside[-1]
    spare = max(0, max_chars - (last.end - first.start))
    lo = max(0, first.start - spare // 3)
    start = _snap_start(text, lo)
    if start + max_chars < last.end:  # snapping must not push the last hit out
        start = lo
    end = _snap_end(text, start + max_chars, last.end)
    return _render(text, start, end, inside, before, after)


def _leading_snippet(text: str, max_chars: int, after: bool = False) -> tuple[str, str]:
    stripped = text.lstrip()
    offset = len(text) - len(stripped)
    end = _snap_end(text, offset + max_chars, offset)
    return _render(text, offset, end, [], False, after)


def make_snippet(
    text: str,
    query_terms: Iterable[str],
    max_chars: int = 240,
    *,
    fallback: str = "",
) -> tuple[str, str]:
    """``(plain, html)`` snippet of ``text`` for analyzed ``query_terms``.

    Picks the ``max_chars`` window with the most distinct query terms (then the
    most hits). Without hits in ``text`` it tries ``fallback`` (the page
    description) the same way, then shows the start of the description, then
    the start of the text.
    """
    terms = frozenset(query_terms)
    text = text or ""
    hits = _scan_hits(text, terms, max_chars)
    if hits:
        return _window_snippet(text, hits, max_chars)
    if fallback and fallback.strip():
        fb_hits = _find_hits(fallback, terms)
        if fb_hits:
            return _window_snippet(fallback, fb_hits, max_chars)
        return _leading_snippet(fallback, max_chars)
    return _leading_snippet(text, max_chars)


class PassageSource(Protocol):
    """A stored body as passages (what :class:`yasearch.index.passages.Passages` offers)."""

    def __len__(self) -> int: ...
    def start(self, i: int) -> int: ...
    def index_of(self, offset: int) -> int: ...
    def text(self, i: int) -> str: ...
    def join(self, first: int = 0, last: int | None = None) -> str: ...
    def may_hold(self, i: int, terms: Iterable[str]) -> frozenset[str]: ...


def _passage_hits(source: PassageSource, terms: frozenset[str], max_chars: int) -> list[_Hit]:
    """Hits (offsets in the body, in order) of the passages read: those whose filter
    admits the most query terms first (the earliest first among equals), until a
    window holds as many distinct terms as the best passage may, no passage left can
    do better than the window found, or :data:`MAX_PASSAGES_READ` passages were read."""
    if len(source) == 1:
        return _scan_hits(source.text(0), terms, max_chars)
    possible = [source.may_hold(i, terms) for i in range(len(source))]
    order = sorted((i for i, admitted in enumerate(possible) if admitted), key=lambda i: (-len(possible[i]), i))
    hits: list[_Hit] = []
    best = 0  # distinct terms of the best window so far
    for read, i in enumerate(order):
        if read >= MAX_PASSAGES_READ or len(possible[i]) <= best:
            break
        found = _find_hits(source.text(i), possible[i])
        if found:
            base = source.start(i)
            hits += [_Hit(h.start + base, h.end + base, h.terms) for h in found]
            hits.sort(key=lambda h: h.start)
            _j, inside = _best_window(hits, max_chars)
            best = len(frozenset().union(*(h.terms for h in inside)))
            if best >= len(possible[order[0]]) or len(hits) >= MAX_HITS:
                break
    return hits[:MAX_HITS]


def passage_snippet(
    source: PassageSource, query_terms: Iterable[str], max_chars: int = 240, *, fallback: str = ""
) -> tuple[str, str]:
    """:func:`make_snippet` of a body stored as passages, reading only the passages
    that may hold a query term (see :func:`_passage_hits`) and those the chosen
    window touches."""
    terms = frozenset(query_terms)
    hits = _passage_hits(source, terms, max_chars) if len(source) else []
    if hits:
        i, inside = _best_window(hits, max_chars)
        first, last = hits[i], inside[-1]
        a = source.index_of(first.start - max_chars)
        b = source.index_of(last.end + max_chars)
        base = source.start(a)
        local = [_Hit(h.start - base, h.end - base, h.terms) for h in inside]
        return _window_snippet(source.join(a, b), local, max_chars, a > 0, b < len(source) - 1)
    if fallback and fallback.strip():
        fb_hits = _find_hits(fallback, terms)
        if fb_hits:
            return _window_snippet(fallback, fb_hits, max_chars)
        return _leading_snippet(fallback, max_chars)
    if not len(source):
        return _leading_snippet("", max_chars)
    last = 1 if len(source) > 1 and len(source.text(0).strip()) < max_chars else 0
    return _leading_snippet(source.join(0, last), max_chars, last < len(source) - 1)
