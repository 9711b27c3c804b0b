"""Query parsing: words, "quoted phrases", -exclusions, site:/-site: and lang:/-lang: filters.

Only the shared analyzer turns words into terms, so that a query term is byte
for byte the term an indexing peer published. The syntax is deliberately small
and forgiving: nothing a user types makes parsing fail except a query with no
searchable words at all, which gets a message saying so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from yasearch.analysis import TOKEN_RE, query_terms as analyze


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
    #: ``lang:xx`` filters (BCP 47 tags, lowercase, "-" separated): a document
    #: matches ``lang:en`` when its language is ``en`` or ``en-...``.
    languages: list[str] = field(default_factory=list)
    #: Languages excluded with -lang:xx.
    excluded_languages: list[str] = field(default_factory=list)
    #: A query of stopwords only (``to be or not to be``), lowercased: searched
    #: as a phrase in the stored text (stopwords are not indexed).
    stopword_phrase: list[str] = field(default_factory=list)

    @property
    def is_site_listing(self) -> bool:
        """True for a bare ``site:host`` query: list that host's documents."""
        return not self.terms and bool(self.sites)


# One token of query syntax: optional "-", then a quoted phrase (closing quote
# optional: an unbalanced quote runs to the end of the query) or a bare word.
_TOKEN = re.compile(r'(?P<neg>-?)(?:"(?P<phrase>[^"]*)(?:"|$)|(?P<word>[^\s"]+))')
_SITE = re.compile(r"^site:(?P<host>.*)$", re.IGNORECASE)
_LANG = re.compile(r"^lang:(?P<lang>.+)$", re.IGNORECASE)
#: A language tag as the crawler records it (``<html lang>``): letters, digits, "-".
_LANG_TAG = re.compile(r"^[a-z]{1,8}(?:-[a-z0-9]{1,8})*$")
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


def normalize_language(value: str) -> str:
    """A language tag in the form filters compare: lowercase, "_" as "-"."""
    return value.strip().lower().replace("_", "-")


def language_matches(language: str, wanted: str) -> bool:
    """``lang:en`` matches a document in ``en`` and in ``en-gb``, not in ``eng``."""
    lang = normalize_language(language)
    return lang == wanted or lang.startswith(wanted + "-")


def filters_admit(parsed: ParsedQuery, host: str, language: str) -> bool:
    """Whether the ``site:`` and ``lang:`` filters (and their exclusions) admit a
    document of ``host`` and ``language``; ``site:`` matches any port, like the local index."""
    host = host.lower()
    if host.startswith("["):  # [v6]:port
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:  # host:port
        host = host.split(":", 1)[0]
    if parsed.sites and not any(host == s or host.endswith("." + s) for s in parsed.sites):
        return False
    if parsed.excluded_sites and any(host == s or host.endswith("." + s) for s in parsed.excluded_sites):
        return False
    if parsed.languages and not any(language_matches(language, lang) for lang in parsed.languages):
        return False
    return not any(language_matches(language, lang) for lang in parsed.excluded_languages)


def _add_unique(target: list[str], items: list[str]) -> None:
    for item in items:
        if item not in target:
            target.append(item)


def parse_query(q: str) -> ParsedQuery:
    """Parse and analyze a query string.

    Raises :class:`QueryError` when nothing searchable remains (empty input,
    only punctuation, only exclusions, only ``lang:``); a query of stopwords
    only becomes a :attr:`ParsedQuery.stopword_phrase`. A
    bare ``site:host`` is a valid query: it lists that site; ``lang:xx`` only
    narrows a query that has words or a site. Length limits are the caller's business.
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
        lang = _LANG.match(word)
        tag = normalize_language(lang.group("lang")) if lang else ""
        if tag and _LANG_TAG.match(tag):  # anything else after "lang:" is searched as words
            target = parsed.excluded_languages if negative else parsed.languages
            if tag not in target:
                target.append(tag)
            continue
        words = analyze(word)
        if negative:
            _add_unique(parsed.excluded, words)
        else:
            _add_unique(parsed.terms, words)
    if not parsed.terms and not parsed.sites:
        if parsed.languages:
            raise QueryError("lang: only narrows a search: add at least one word (or a site:) to search for")
        if parsed.excluded or parsed.excluded_phrases or parsed.excluded_sites or parsed.excluded_languages:
            raise QueryError("the query only excludes words: add at least one word to search for")
        words = [w.lower() for w in TOKEN_RE.findall(q.replace('"', " "))]
        if words:
            parsed.stopword_phrase = words
            return parsed
        raise QueryError("the query has no searchable words (only punctuation)")
    return parsed


def normalize_site(value: str) -> str:
    """A ``site:`` operand as the filter compares it (see :func:`_normalize_site`)."""
    return _normalize_site(value)
