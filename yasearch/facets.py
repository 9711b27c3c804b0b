"""Facets (navigators): matches counted by host and by language.

They cost nothing on a page that does not show them (``facets=False``, the
default of :func:`yasearch.search.search_local`), and a bounded amount where they
are shown: at most :data:`FACET_CANDIDATES` matches are counted, from per-segment
arrays (:mod:`yasearch.index.docvalues`) rather than stored fields, and the
counts of a query are cached per read view (until the next commit), so paging
through one query's results counts once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from yasearch.index import ReadView
from yasearch.query import normalize_language

#: Facets (navigators) are counted over at most this many matches: the best
#: ranked ones for a word query, the first in URL order for a site listing.
#: Beyond that the counts are a sample, not the whole match set.
FACET_CANDIDATES = 1000
#: Values listed per facet, most frequent first.
FACET_TOP = 10

Facets = dict[str, list[list[Any]]]


def no_facets() -> Facets:
    return {"host": [], "language": []}


def facet_host(host: str) -> str:
    """A document's host as ``site:`` matches it: lowercase, without the port."""
    host = host.strip().lower()
    if host.startswith("["):  # [v6]:port
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:  # host:port
        return host.split(":", 1)[0]
    return host


def facet_language(language: str) -> str:
    """A document's language as a ``lang:`` facet: the primary subtag (``en-GB`` -> ``en``)."""
    return normalize_language(language).split("-", 1)[0]


def count_facets(docs: Iterable[tuple[str, str]], top: int = FACET_TOP) -> Facets:
    """``{"host": [[host, n], ...], "language": [[lang, n], ...]}`` from (host, language) pairs.

    Each list holds the ``top`` most frequent values, ties in name order;
    documents without a host or a declared language are not counted there.
    """
    hosts: Counter[str] = Counter()
    langs: Counter[str] = Counter()
    for host, language in docs:
        h = facet_host(host)
        if h:
            hosts[h] += 1
        lang = facet_language(language)
        if lang:
            langs[lang] += 1

    def best(c: Counter[str]) -> list[list[Any]]:
        return [[k, n] for k, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]

    return {"host": best(hosts), "language": best(langs)}


def view_facets(view: ReadView, docnums: Iterable[int]) -> Facets:
    """Facets of these documents of ``view`` (host and language from the segment arrays)."""
    pairs = []
    for d in docnums:
        host, language = view.host_language(d)
        if not host:  # a document stored without a host: its URL's
            host = urlsplit(view.url_of(d)).netloc
        pairs.append((host, language))
    return count_facets(pairs)


def cached_facets(view: ReadView, key: Any, compute: Any) -> Facets:
    """``compute()``, remembered in ``view`` under ``key`` until the next commit."""
    memo = view.memo.setdefault("facets", {})
    hit = memo.get(key)
    if hit is None:
        if len(memo) >= 256:
            memo.clear()
        hit = memo[key] = compute()
    return {name: [list(entry) for entry in values] for name, values in hit.items()}
