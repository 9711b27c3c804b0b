"""URL canonicalisation and crawl URL rules.

Every URL the crawler stores, dedupes or compares goes through :func:`canonicalize`
first, so that ``/a``, ``/a#x``, ``/a?`` and ``/A/../a`` collapse into one key and a
page is never fetched (or indexed) twice under cosmetic variants.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

log = logging.getLogger(__name__)

#: Longer URLs are almost always session-id or calendar traps; refusing them keeps
#: the frontier and the store bounded.
MAX_URL_LENGTH = 2048

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Browsers strip these before resolving a link; so must we, or "\n/foo" becomes junk.
_STRIP_CHARS = re.compile(r"[\t\r\n]")


def canonicalize(url: str, base: str | None = None) -> str | None:
    """Resolve ``url`` against ``base`` and return its canonical form, or None.

    None means "not crawlable": another scheme (mailto:, javascript:, ftp:), no host,
    too long, or unparseable. Callers treat None as "drop the link" rather than
    handling exceptions at every call site.
    """
    if not url:
        return None
    try:
        url = _STRIP_CHARS.sub("", url).strip()
        if base:
            url = urljoin(base, url)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        # canonicalize_url sorts the query, percent-encodes consistently, IDNA-encodes
        # the host, removes dot segments and drops the fragment.
        canon = canonicalize_url(url, keep_fragments=False)
        parts = urlsplit(canon)
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            return None
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        port = parts.port
        netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
        # user:password@ is dropped: credentials found in a link must never be
        # sent, stored, shown in results or published to other peers.
        path = parts.path or "/"
        result = urlunsplit((scheme, netloc, path, parts.query, ""))
    except (ValueError, UnicodeError) as exc:
        log.debug("cannot canonicalize %r: %s", url, exc)
        return None
    if len(result) > MAX_URL_LENGTH:
        return None
    return result


def host_of(url: str) -> str:
    """The politeness key of a URL: lowercase ``host[:port]`` (default port omitted).

    The port is part of the key because two servers on one IP but different ports
    are different sites (and local test servers rely on that).
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if ":" in host:
            host = f"[{host}]"
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return host
    return f"{host}:{port}"


def _compile(patterns: list[str], kind: str) -> list[re.Pattern[str]]:
    compiled = []
    for p in patterns:
        try:
            compiled.append(re.compile(p))
        except re.error as exc:
            raise ValueError(f"invalid {kind} regex {p!r}: {exc}") from exc
    return compiled


@dataclass
class UrlFilter:
    """Which discovered URLs a job may follow.

    ``deny`` wins over ``allow``; an empty ``allow`` list allows everything.
    Patterns are searched (not anchored) in the canonical URL and compiled once
    here, so a bad pattern fails when the job is created rather than mid-crawl.
    """

    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    same_site_hosts: set[str] | None = None

    def __post_init__(self) -> None:
        self._allow = _compile(list(self.allow), "allow")
        self._deny = _compile(list(self.deny), "deny")
        if self.same_site_hosts is not None:
            self.same_site_hosts = {h.lower() for h in self.same_site_hosts}

    def denied(self, url: str) -> bool:
        return any(p.search(url) for p in self._deny)

    def accepts(self, url: str) -> bool:
        if self.denied(url):
            return False
        if self._allow and not any(p.search(url) for p in self._allow):
            return False
        if self.same_site_hosts is not None and host_of(url) not in self.same_site_hosts:
            return False
        return True
