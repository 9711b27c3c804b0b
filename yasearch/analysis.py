"""The one analyzer, and the hashes that name terms and documents.

Indexing, publishing and querying must agree on every term byte for byte, or a
posting published by one peer is never found by another. So there is exactly one
analyzer (Whoosh's stemming analyzer: Unicode word tokens, lowercase, English
stopwords removed, Porter stemming) and every module gets it from here.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from whoosh.analysis import Analyzer, StemmingAnalyzer

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
    """Analyzed terms of ``text`` in order, duplicates kept."""
    return [t.text for t in _shared()(text)]


def term_key(term: str) -> bytes:
    """160-bit DHT key of an analyzed term (same ID space as node IDs)."""
    return hashlib.sha1(term.encode("utf-8")).digest()


def doc_id(canonical_url: str) -> str:
    """Stable document ID: hex SHA-1 of the canonical URL, identical on every peer."""
    return hashlib.sha1(canonical_url.encode("utf-8")).hexdigest()
