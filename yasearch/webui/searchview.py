"""What the result page shows besides the hits: facet links, "more from this host" links
and the no-result help.

Kept apart from :mod:`webui.searchpages` so the handler stays short. Everything here
works on the query *string*: a facet link adds an operator to what the user
typed (``site:host``, ``lang:xx``) and an active facet's link removes it again,
so every refinement is a plain, bookmarkable ``/search?q=`` URL that works
without JavaScript and that the user can read and edit in the box.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from yasearch.query import ParsedQuery, QueryError, normalize_language, normalize_site, parse_query

#: One token of what the user typed, as :mod:`yasearch.query` splits it: an
#: optional "-", then a quoted phrase (closing quote optional) or a bare word.
_TOKEN = re.compile(r'-?"[^"]*(?:"|$)|[^\s"]+')
_SITE = re.compile(r"^-?site:(?P<v>.+)$", re.IGNORECASE)
_LANG = re.compile(r"^-?lang:(?P<v>.+)$", re.IGNORECASE)
#: Words offered for removal in the no-result help.
MAX_DROP_SUGGESTIONS = 4

LANGUAGE_NAMES = {
    "ar": "Arabic", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "fa": "Persian", "fi": "Finnish",
    "fr": "French", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "id": "Indonesian",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian", "nb": "Norwegian",
    "nl": "Dutch", "no": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian",
    "sk": "Slovak", "sl": "Slovenian", "sr": "Serbian", "sv": "Swedish", "th": "Thai", "tr": "Turkish",
    "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese",
}


def search_href(q: str, scope: str = "") -> str:
    params = {"q": q}
    if scope:
        params["scope"] = scope
    return "/search?" + urlencode(params)


def tokens(q: str) -> list[str]:
    return _TOKEN.findall(q)


def _join(parts: list[str]) -> str:
    return " ".join(p for p in parts if p).strip()


def _without(q: str, drop: Any) -> str:
    """``q`` without the tokens for which ``drop(token)`` is true."""
    return _join([t for t in tokens(q) if not drop(t)])


def _is_site(token: str, host: str) -> bool:
    m = _SITE.match(token)
    return bool(m) and not token.startswith("-") and normalize_site(m.group("v")) == host


def _is_lang(token: str, lang: str) -> bool:
    m = _LANG.match(token)
    return bool(m) and not token.startswith("-") and normalize_language(m.group("v")) == lang


def facet_view(q: str, scope: str, facets: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Facet values as links: ``site:``/``lang:`` added to ``q``, or removed when already there.

    Values come from indexed pages (hostile input); they reach the page only
    autoescaped, and in URLs only urlencoded.
    """
    try:
        parsed: ParsedQuery | None = parse_query(q)
    except QueryError:
        parsed = None
    sites = parsed.sites if parsed else []
    langs = parsed.languages if parsed else []

    def rows(name: str, active_values: list[str], op: str, is_op: Any, pattern: re.Pattern[str]) -> list[dict[str, Any]]:
        out = []
        for entry in (facets or {}).get(name) or []:
            if not (isinstance(entry, (list, tuple)) and len(entry) == 2):
                continue
            value, count = str(entry[0]), entry[1]
            if not value or any(c.isspace() or c == '"' for c in value):
                continue  # not expressible as one operator token
            active = value in active_values
            if active:  # the link removes the filter again
                href_q = _without(q, lambda t, v=value: is_op(t, v))
            else:  # narrow to this value: it replaces the filters of its kind (several would be ORed)
                href_q = _join([_without(q, lambda t: pattern.match(t) and not t.startswith("-")), f"{op}:{value}"])
            out.append({
                "value": value,
                "label": LANGUAGE_NAMES.get(value, value) if name == "language" else value,
                "count": count,
                "active": active,
                "url": search_href(href_q, scope) if href_q else "/",
            })
        return out

    return {
        "host": rows("host", sites, "site", _is_site, _SITE),
        "language": rows("language", langs, "lang", _is_lang, _LANG),
    }


def more_from_host_links(q: str, scope: str, results: list[Any]) -> dict[int, dict[str, Any]]:
    """Result index -> ``{"host", "n", "href"}``: under the last result of each host whose
    further results host diversity left off the page (``hit.more_from_host``), a link to
    the same query limited to that host (any other ``site:`` replaced)."""
    last: dict[str, int] = {}
    for i, hit in enumerate(results):
        if hit.more_from_host > 0 and hit.host:
            last[hit.host] = i
    base = _without(q, lambda t: _SITE.match(t) and not t.startswith("-"))
    links: dict[int, dict[str, Any]] = {}
    for host, i in last.items():
        site = normalize_site(host) or host  # site: ignores ports
        links[i] = {"host": site, "n": results[i].more_from_host, "href": search_href(_join([base, f"site:{site}"]), scope)}
    return links


def no_result_help(q: str, scope: str) -> list[dict[str, str]]:
    """Concrete ways out of an empty result: each a link to a broader query.

    Filters first (``site:``, ``lang:``, exclusions, quotes), then each word
    left out in turn, then the whole network when only this peer was asked.
    """
    toks = tokens(q)
    out: list[dict[str, str]] = []

    def add(label: str, new_q: str, new_scope: str = scope) -> None:
        if new_q and new_q != q and all(o["q"] != new_q for o in out):
            out.append({"label": label, "q": new_q, "url": search_href(new_q, new_scope)})

    filters = [t for t in toks if _SITE.match(t) or _LANG.match(t)]
    words = [t for t in toks if t not in filters]
    for f in filters:
        if words:
            add(f"without {f}", _join([t for t in toks if t != f]))
    if len(filters) > 1 and words:
        add("without any filter", _join(words))
    for t in words:
        if t.startswith("-"):
            add(f"without the exclusion {t}", _join([x for x in toks if x != t]))
        elif t.startswith('"') and " " in t.strip('"').strip():
            add(f"{t.strip(chr(34))} without the quotes", _join([t.strip('"') if x == t else x for x in toks]))
    positive = [t for t in words if not t.startswith("-")]
    if len(positive) > 1:
        for t in positive[:MAX_DROP_SUGGESTIONS]:
            add(f"without {t}", _join([x for x in toks if x != t]))
    if scope == "local":
        out.append({"label": "on the whole network", "q": q, "url": search_href(q)})
    return out
