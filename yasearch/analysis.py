"""The one analyzer, and the hashes that name terms and documents.

Indexing, publishing and querying must agree on every term byte for byte, or a
posting published by one peer is never found by another. So there is exactly one
analyzer (Whoosh's stemming analyzer: Unicode word tokens, lowercase, English
stopwords removed, Porter stemming, and identifier parts) and every module gets
it from here: the token pattern (:data:`TOKEN_RE`), the cached token -> term
function (:func:`term_of`) and token -> parts function (:func:`parts_of`), the
fast :func:`analyze` built on them, and the Whoosh analyzer
(:func:`make_analyzer`) built from the same pattern, stoplist and sizes.

**Identifiers.** The token pattern keeps dotted and underscored runs whole
(``json.dumps``, ``re.sub``, ``snake_case``). Indexed text yields the whole
term *and* its parts (``json.dump``, ``json``, ``dump``), the parts at the
whole's position, so a page is found by the identifier and by each word of
it. A query word yields the whole term only (:func:`query_terms`): searching
``json.dumps`` asks for that identifier, not for every page saying "json".
Whole terms and positions are what they were before parts existed, so an
index built earlier stays valid: its documents only lack the part terms until
they are indexed again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from whoosh.analysis import (
    STOP_WORDS,
    Analyzer,
    CompositeAnalyzer,
    Filter,
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


_PART_SPLIT = re.compile(r"[._]+")


def _split_parts(word: str) -> tuple[str, ...]:
    """The unstemmed parts of a lowercased identifier token ("" parts, stopwords,
    numbers and the whole itself left out), in order, unique."""
    if "." not in word and "_" not in word:
        return ()
    out: dict[str, None] = {}
    for part in _PART_SPLIT.split(word):
        if (
            MIN_TERM_CHARS <= len(part) <= MAX_TERM_CHARS and part != word and part not in STOPWORDS
            and not part.isdigit()
        ):
            out.setdefault(part, None)
    return tuple(out)


class IdentifierPartsFilter(Filter):
    """After each kept token, its identifier parts as extra tokens at the same position.

    Sits between StopFilter and StemFilter, so parts are stemmed like words.
    Pickled by reference into new index schemas.
    """

    def __call__(self, tokens: Any) -> Any:
        for t in tokens:
            word = t.text
            yield t
            for part in _split_parts(word):
                t.text = part
                yield t


def make_analyzer() -> Analyzer:
    """A fresh Whoosh analyzer instance (Whoosh schemas hold their own).

    Whoosh's stemming analyzer built from the same pattern, stoplist and sizes
    as :func:`term_of`, with :class:`IdentifierPartsFilter` before stemming.
    """
    chain = StemmingAnalyzer(
        expression=_WHOOSH_PATTERN,
        stoplist=STOPWORDS,
        minsize=MIN_TERM_CHARS,
        maxsize=MAX_TERM_CHARS,
        stemfn=porter_stem,
        cachesize=100_000,
    )
    tok, low, stop, stem = chain.items
    return CompositeAnalyzer(tok, low, stop, IdentifierPartsFilter(), stem)


def is_standard_analyzer(analyzer: Any) -> bool:
    """True if ``analyzer`` is configured exactly as :func:`make_analyzer` builds
    it, i.e. :func:`analyze` yields exactly its terms (an index opened from disk
    carries its own pickled analyzer, so callers check before taking a shortcut)."""
    if not isinstance(analyzer, CompositeAnalyzer) or len(analyzer.items) != 5:
        return False
    parts = analyzer.items[3]
    return type(parts) is IdentifierPartsFilter and _is_word_chain(analyzer.items[:3] + analyzer.items[4:])


def is_legacy_analyzer(analyzer: Any) -> bool:
    """The analyzer of indexes built before identifier parts (the same chain
    without :class:`IdentifierPartsFilter`): its whole terms and positions are
    :func:`analyze_positions`' without the parts."""
    return isinstance(analyzer, CompositeAnalyzer) and len(analyzer.items) == 4 and _is_word_chain(analyzer.items)


def _is_word_chain(items: list[Any]) -> bool:
    tok, low, stop, stem = items
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


#: raw token -> analyzed part terms (usually empty)
_PARTS_CACHE: dict[str, tuple[str, ...]] = {}


def parts_of(token: str) -> tuple[str, ...]:
    """The analyzed part terms of one raw token (``json.dumps`` -> json, dump), () if none.

    Only tokens :func:`term_of` keeps have parts.
    """
    parts = _PARTS_CACHE.get(token)
    if parts is None:
        parts = tuple(porter_stem(p) for p in _split_parts(token.lower())) if term_of(token) else ()
        if len(_PARTS_CACHE) >= _TERM_CACHE_MAX:
            _PARTS_CACHE.clear()
        _PARTS_CACHE[token] = parts
    return parts


def query_terms(text: str) -> list[str]:
    """Analyzed terms of a query's words: whole terms only, no identifier parts."""
    return [s for s in _token_terms(text) if s]


def _token_terms(text: str) -> list[str]:
    """:func:`term_of` of every token of ``text`` in order ("" for dropped ones)."""
    toks = TOKEN_RE.findall(text)
    get = _TERM_CACHE.get
    terms = [get(t) for t in toks]
    if None in terms:
        terms = [term_of(t) if s is None else s for t, s in zip(toks, terms)]
    return terms


#: Somewhere in the text a token may have parts (a "_", or a "." inside a word).
_COMPOUND = re.compile(r"_|\w\.\w")


def _has_parts(text: str) -> bool:
    return _COMPOUND.search(text) is not None


def analyze(text: str) -> list[str]:
    """Analyzed terms of ``text`` in order, duplicates kept, each whole term
    followed by its identifier parts.

    Exactly what the analyzer of :func:`make_analyzer` yields (a test checks it
    term for term), computed in one flat loop with a token -> term memo instead
    of Whoosh's generator chain: ~5x faster, and it runs for every indexed and
    published text.
    """
    if not _has_parts(text):
        return [s for s in _token_terms(text) if s]
    return analyze_positions(text)[0]


def analyze_positions(text: str) -> tuple[list[str], Sequence[int]]:
    """:func:`analyze`'s terms and the position of each.

    Same positions as the Whoosh analyzer: StopFilter(renumber=True) keeps the
    first kept token's tokenizer position and numbers the following kept
    tokens consecutively; identifier parts share their whole's position.
    """
    if not _has_parts(text):
        stems = _token_terms(text)
        terms = [s for s in stems if s]
        first = next(i for i, s in enumerate(stems) if s) if terms else 0
        return terms, range(first, first + len(terms))
    toks = TOKEN_RE.findall(text)
    get = _TERM_CACHE.get
    out: list[str] = []
    positions: list[int] = []
    pos = -1
    for i, tok in enumerate(toks):
        term = get(tok)
        if term is None:
            term = term_of(tok)
        if not term:
            continue
        pos = i if pos < 0 else pos + 1
        out.append(term)
        positions.append(pos)
        if "." in tok or "_" in tok:
            for part in parts_of(tok):
                out.append(part)
                positions.append(pos)
    return out, positions


def term_key(term: str) -> bytes:
    """160-bit DHT key of an analyzed term (same ID space as node IDs)."""
    return hashlib.sha1(term.encode("utf-8")).digest()


def doc_id(canonical_url: str) -> str:
    """Stable document ID: hex SHA-1 of the canonical URL, identical on every peer."""
    return hashlib.sha1(canonical_url.encode("utf-8")).hexdigest()
