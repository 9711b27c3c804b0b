"""Did you mean: a corrected query from the term dictionary when a word is unknown.

A query word whose term no document has (``asyncoi``) is replaced by the
dictionary term closest to it by Damerau-Levenshtein distance (1 edit for
words up to 5 letters, 2 beyond; the first letter is taken as typed), ties to
the term most documents have. The suggestion is shown as a word a page
actually uses (``asyncio``), not as the stem the index holds. The dictionary
is this peer's own index: in a network, suggestions come from what the
searching peer crawled.
"""

from __future__ import annotations

import re

from whoosh.query import Or, Term
from whoosh.support.levenshtein import distance

from yasearch.analysis import TOKEN_RE, term_of
from yasearch.index import ReadView
from yasearch.query import ParsedQuery

#: Fields whose dictionaries are searched for corrections.
DICTIONARY_FIELDS = ("title", "body")
#: Characters of a stored text searched for the surface form of a suggestion.
_SURFACE_CHARS = 200_000
_SPACE = re.compile(r"\s+")


def _max_edits(term: str) -> int:
    return 1 if len(term) <= 5 else 2


def correct_term(view: ReadView, term: str) -> str | None:
    """The best known term for an unknown ``term``, None if it is known or nothing is close."""
    if len(term) < 3 or view.df(term) > 0:
        return None
    limit = _max_edits(term)
    best: tuple[int, int, str] | None = None
    seen: set[str] = set()
    for field in DICTIONARY_FIELDS:
        for raw in view.reader.expand_prefix(field, term[:1]):
            word = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            if word in seen or abs(len(word) - len(term)) > limit:
                continue
            seen.add(word)
            k = distance(word, term, limit=limit)  # Damerau-Levenshtein, bounded
            if k <= limit:
                key = (k, -view.df(word), word)
                if best is None or key < best:
                    best = key
    return best[2] if best is not None else None


def surface_form(view: ReadView, term: str) -> str:
    """A word as pages spell it that analyzes to ``term`` (lowercased), else ``term``."""
    docs = view.docnums(Or([Term(f, term) for f in DICTIONARY_FIELDS]))
    for d in sorted(docs)[:3]:
        text = (view.display(d).get("title") or "") + " " + view.body_prefix(d, _SURFACE_CHARS)
        for m in TOKEN_RE.finditer(text):
            tok = m.group(0)
            if term_of(tok) == term:
                return tok.lower()
    return term


def did_you_mean(view: ReadView, parsed: ParsedQuery) -> str:
    """The query with each unknown word corrected, "" when no word needs it."""
    fixes: dict[str, str] = {}
    for term in parsed.terms:
        fixed = correct_term(view, term)
        if fixed is not None:
            fixes[term] = surface_form(view, fixed)
    if not fixes:
        return ""
    out: list[str] = []
    pos = 0
    raw = parsed.raw
    for m in TOKEN_RE.finditer(raw):
        fix = fixes.get(term_of(m.group(0)))
        if fix is not None:
            out.append(raw[pos : m.start()])
            out.append(fix)
            pos = m.end()
    out.append(raw[pos:])
    return _SPACE.sub(" ", "".join(out)).strip()
