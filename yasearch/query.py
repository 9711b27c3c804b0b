"""Query parsing: words, "quoted phrases", -exclusions, site: and -site: filters.

Only the shared analyzer turns words into terms, so that a query term is byte
for byte the term an indexing peer published. The syntax is deliberately small
and forgiving: nothing a user types makes parsing fail except a query with no
searchable words at all, which gets a message saying so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from yasearch.analysis import analyze


class QueryError(ValueError):
    """The query cannot be searched; the message is meant for the user."""


@dataclass
class ParsedQuery:
    """An analyzed query.

    ``terms`` are ANDed and include every word of every phrase, so that scoring
    and candidate selection (locally and on remote peers, which have no
    positions) only need the term list; ``phrases`` then narrow the candidates
    where positions are available.
    """

    raw: str
    terms: list[str] = field(default_factory=list)
    phrases: list[list[str]] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    #: Excluded multi-word phrases (-"foo bar"): excluding each of their words
    #: separately would drop far more than the user asked for.
    excluded_phrases: list[list[str]] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)
    #: Hosts excluded with -site:host (with their subdomains).
    excluded_sites: list[str] = field(default_factory=list)

    @property
    def is_site_listing(self) -> bool:
        """True for a bare ``site:host`` query: list that host's documents."""
        return not self.terms and bool(self.sites)


# One token of query syntax: optional "-", then a quoted phrase (closing quote
# optional: an unbalanced quote runs to the end of the query) or a bare word.
_TOKEN = re.compile(r'(?P<neg>-?)(?:"(?P<phrase>[^"]*)(?:"|$)|(?P<word>[^\s"]+))')
_SITE = re.compile(r"^site:(?P<host>.*)$", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def _normalize_site(value: str) -> str:
    """``site:`` operand as a host: lowercased, no scheme, path, port or final dot.

    A leading "www." is kept as given: ``site:www.example.com`` means that
    host (and its subdomains), not all of example.com.
    """
    host = _SCHEME.sub("", value.strip().lower())
    host = host.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if host.startswith("["):
        host = host.split("]", 1)[0] + "]"
    else:
        host = host.split(":", 1)[0]
    host = host.strip(".")
    if not host.isascii():
        # Indexed hosts are in their ASCII (punycode) form, as canonical URLs have them.
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return host


def _add_unique(target: list[str], items: list[str]) -> None:
    for item in items:
        if item not in target:
            target.append(item)


def parse_query(q: str) -> ParsedQuery:
    """Parse and analyze a query string.

    Raises :class:`QueryError` when nothing searchable remains (empty input,
    only stopwords or punctuation, only exclusions). A bare ``site:host`` is a
    valid query: it lists that site. Length limits are the caller's business.
    """
    parsed = ParsedQuery(raw=q)
    if not q or not q.strip():
        raise QueryError("empty query: type some words to search for")
    for m in _TOKEN.finditer(q):
        negative = bool(m.group("neg"))
        phrase = m.group("phrase")
        word = m.group("word")
        if phrase is not None:
            words = analyze(phrase)
            if not words:
                continue
            if negative:
                if len(words) == 1:
                    _add_unique(parsed.excluded, words)
                elif words not in parsed.excluded_phrases:
                    parsed.excluded_phrases.append(words)
                continue
            _add_unique(parsed.terms, words)
            if len(words) > 1 and words not in parsed.phrases:
                parsed.phrases.append(words)
            continue
        assert word is not None
        site = _SITE.match(word)
        if site:
            host = _normalize_site(site.group("host"))
            target = parsed.excluded_sites if negative else parsed.sites
            if host and host not in target:
                target.append(host)
            continue
        words = analyze(word)
        if negative:
            _add_unique(parsed.excluded, words)
        else:
            _add_unique(parsed.terms, words)
    if not parsed.terms and not parsed.sites:
        if parsed.excluded or parsed.excluded_phrases or parsed.excluded_sites:
            raise QueryError("the query only excludes words: add at least one word to search for")
        raise QueryError(
            "the query has no searchable words (it contains only very common words "
            "such as 'the' or 'and', or punctuation)"
        )
    return parsed
