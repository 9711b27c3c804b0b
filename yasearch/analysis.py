"""The one analyzer, and the hashes that name terms and documents.

Indexing, publishing and querying must agree on every term byte for byte, or a
posting published by one peer is never found by another. So there is exactly one
analyzer (Whoosh's stemming analyzer: Unicode word tokens, lowercase, English
stopwords removed, Porter stemming) and every module gets it from here: the
token pattern (:data:`TOKEN_RE`), the cached token -> term function
(:func:`term_of`), the fast :func:`analyze` built on both, and the Whoosh
analyzer (:func:`make_analyzer`) built from the same pattern, stoplist and sizes.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from whoosh.analysis import (
    STOP_WORDS,
    Analyzer,
    CompositeAnalyzer,
    LowercaseFilter,
    RegexTokenizer,
    StemFilter,
    StemmingAnalyzer,
    StopFilter,
)
from whoosh.analysis.tokenizers import default_pattern
from whoosh.lang.porter import stem as porter_stem

#: Terms longer than this are dropped: they are noise (base64, hashes) and would
#: bloat postings and p2p messages.
MAX_TERM_CHARS = 64
#: Shorter tokens are dropped (single letters and digits).
MIN_TERM_CHARS = 2
#: Whoosh's default word pattern. The Whoosh analyzer keeps it as is: the schema
#: pickled into every index on disk holds it, so it must not change.
_WHOOSH_PATTERN = default_pattern
#: The same pattern without its capturing group (same matches), so ``findall``
#: returns whole tokens. The only token pattern: index, query, suggest and
#: snippets all split text with it.
TOKEN_RE: re.Pattern[str] = re.compile(
    _WHOOSH_PATTERN.pattern.replace("(\\.?", "(?:\\.?"), _WHOOSH_PATTERN.flags
)
STOPWORDS: frozenset[str] = frozenset(STOP_WORDS)


def make_analyzer() -> Analyzer:
    """A fresh Whoosh analyzer instance (Whoosh schemas hold their own).

    Built from the same pattern, stoplist and sizes as :func:`term_of`, with
    Whoosh's defaults spelt out, so the pickled schema is what it always was.
    """
    return StemmingAnalyzer(
        expression=_WHOOSH_PATTERN,
        stoplist=STOPWORDS,
        minsize=MIN_TERM_CHARS,
        maxsize=MAX_TERM_CHARS,
        stemfn=porter_stem,
        cachesize=100_000,
    )


def is_standard_analyzer(analyzer: Any) -> bool:
    """True if ``analyzer`` is configured exactly as :func:`make_analyzer` builds
    it, i.e. :func:`analyze` yields exactly its terms (an index opened from disk
    carries its own pickled analyzer, so callers check before taking a shortcut)."""
    if not isinstance(analyzer, CompositeAnalyzer) or len(analyzer.items) != 4:
        return False
    tok, low, stop, stem = analyzer.items
    return (
        type(tok) is RegexTokenizer and not tok.gaps and tok.expression.pattern == _WHOOSH_PATTERN.pattern
        and tok.expression.flags == _WHOOSH_PATTERN.flags
        and type(low) is LowercaseFilter
        and type(stop) is StopFilter and stop.stops == STOPWORDS and stop.min == MIN_TERM_CHARS
        and stop.max == MAX_TERM_CHARS and stop.renumber
        and type(stem) is StemFilter and stem.stemfn is porter_stem and not stem.ignore and not stem.lang
    )


#: raw token -> analyzed term, "" when dropped (stopword, too short or too long)
_TERM_CACHE: dict[str, str] = {}
_TERM_CACHE_MAX = 500_000


def term_of(token: str) -> str:
    """The analyzed term of one raw token (as :data:`TOKEN_RE` finds it), "" if dropped.

    Memoized: a few tens of thousands of distinct words make up almost all text,
    and Porter stemming is the expensive step.
    """
    term = _TERM_CACHE.get(token)
    if term is None:
        w = token.lower()
        term = porter_stem(w) if MIN_TERM_CHARS <= len(w) <= MAX_TERM_CHARS and w not in STOPWORDS else ""
        if len(_TERM_CACHE) >= _TERM_CACHE_MAX:
            _TERM_CACHE.clear()
        _TERM_CACHE[token] = term
    return term


def _token_terms(text: str) -> list[str]:
    """:func:`term_of` of every token of ``text`` in order ("" for dropped ones)."""
    toks = TOKEN_RE.findall(text)
    get = _TERM_CACHE.get
    terms = [get(t) for t in toks]
    if None in terms:
        terms = [term_of(t) if s is None else s for t, s in zip(toks, terms)]
    return terms


def analyze(text: str) -> list[str]:
    """Analyzed terms of ``text`` in order, duplicates kept.

    Exactly what the analyzer of :func:`make_analyzer` yields (a test checks it
    term for term), computed in one flat loop with a token -> term memo instead
    of Whoosh's generator chain: ~5x faster, and it runs for every indexed,
    published and queried text.
    """
    return [s for s in _token_terms(text) if s]


def analyze_positions(text: str) -> tuple[list[str], int]:
    """Analyzed terms of ``text`` in order, and the position of the first one.

    Same positions as the Whoosh analyzer: StopFilter(renumber=True) keeps the
    first kept token's tokenizer position and numbers the following kept
    tokens consecutively.
    """
    stems = _token_terms(text)
    terms = [s for s in stems if s]
    first = next(i for i, s in enumerate(stems) if s) if terms else 0
    return terms, first


def term_key(term: str) -> bytes:
    """160-bit DHT key of an analyzed term (same ID space as node IDs)."""
    return hashlib.sha1(term.encode("utf-8")).digest()


def doc_id(canonical_url: str) -> str:
    """Stable document ID: hex SHA-1 of the canonical URL, identical on every peer."""
    return hashlib.sha1(canonical_url.encode("utf-8")).hexdigest()
