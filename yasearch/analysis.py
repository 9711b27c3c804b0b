"""The one analyzer, and the hashes that name terms and documents.

Indexing, publishing and querying must agree on every term byte for byte, or a
posting published by one peer is never found by another. So there is exactly one
analyzer (Whoosh's stemming analyzer: Unicode word tokens, lowercase, English
stopwords removed, Porter stemming) and every module gets it from here.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from whoosh.analysis import Analyzer, StemmingAnalyzer
from whoosh.analysis.tokenizers import default_pattern
from whoosh.lang.porter import stem as _porter_stem

#: Terms longer than this are dropped: they are noise (base64, hashes) and would
#: bloat postings and p2p messages.
MAX_TERM_CHARS = 64


def make_analyzer() -> Analyzer:
    """A fresh analyzer instance (Whoosh schemas hold their own)."""
    return StemmingAnalyzer(minsize=2, maxsize=MAX_TERM_CHARS, cachesize=100_000)


@lru_cache(maxsize=1)
def _shared() -> Analyzer:
    return make_analyzer()


def analyze(text: str) -> list[str]:
    """Analyzed terms of ``text`` in order, duplicates kept.

    Exactly what the analyzer of :func:`make_analyzer` yields (a test checks it
    term for term), computed in one flat loop with a token -> term memo instead
    of Whoosh's generator chain: ~5x faster, and it runs for every indexed,
    published and queried text.
    """
    toks = _TOKEN_RE.findall(text)
    get = _TERM_CACHE.get
    terms = [get(t) for t in toks]
    if None in terms:
        terms = [_resolve(t) if s is None else s for t, s in zip(toks, terms)]
    return [s for s in terms if s]


#: Whoosh's default tokenizer pattern without its capturing group (same matches).
_TOKEN_RE = re.compile(default_pattern.pattern.replace("(\\.?", "(?:\\.?"), default_pattern.flags)
#: raw token -> analyzed term, "" when dropped (stopword, shorter than 2 or longer than MAX_TERM_CHARS)
_TERM_CACHE: dict[str, str] = {}


def _resolve(tok: str) -> str:
    w = tok.lower()
    stops = _shared().items[2].stops  # the StopFilter of make_analyzer()
    term = _porter_stem(w) if 2 <= len(w) <= MAX_TERM_CHARS and w not in stops else ""
    if len(_TERM_CACHE) >= 500_000:
        _TERM_CACHE.clear()
    _TERM_CACHE[tok] = term
    return term


def term_key(term: str) -> bytes:
    """160-bit DHT key of an analyzed term (same ID space as node IDs)."""
    return hashlib.sha1(term.encode("utf-8")).digest()


def doc_id(canonical_url: str) -> str:
    """Stable document ID: hex SHA-1 of the canonical URL, identical on every peer."""
    return hashlib.sha1(canonical_url.encode("utf-8")).hexdigest()
