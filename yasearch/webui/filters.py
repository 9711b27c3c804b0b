"""Template filters of the browser UI: numbers, times, IDs and hostile crawled text.

Crawled titles and URLs are hostile input: templates autoescape everything, and
the only value let through as markup is ``SearchHit.snippet_html``, which the
search module escapes itself before adding ``<mark>`` and which the ``snippet``
filter re-checks (see :func:`safe_snippet`).
"""

from __future__ import annotations

import html
import re
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup, escape


def format_number(value: Any) -> str:
    """Thousands separators for counters; anything else unchanged."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}" if not value.is_integer() else f"{int(value):,}"
    return str(value)


def safe_href(url: str) -> str:
    """A crawled URL as a link target: only http(s), so no ``javascript:`` link slips in."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return "#"
    return url if scheme in ("http", "https") else "#"


#: Characters of a node ID shown in tables and result rows (the full ID is in a tooltip).
SHORT_ID = 12


def short_id(peer_id: Any) -> str:
    return str(peer_id or "")[:SHORT_ID]


def relative_time(ts: Any, now: float | None = None) -> str:
    """A Unix time as "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago"; "never" for 0."""
    if not isinstance(ts, (int, float)) or isinstance(ts, bool) or ts <= 0:
        return "never"
    age = (time.time() if now is None else now) - ts
    if age < 5:
        return "just now"  # also a clock a little ahead of ours
    if age < 60:
        return f"{int(age)} s ago"
    if age < 3600:
        return f"{int(age // 60)} min ago"
    if age < 86400:
        return f"{int(age // 3600)} h ago"
    return f"{int(age // 86400)} d ago"


def utc_time(ts: Any) -> str:
    """A Unix time as an ISO 8601 UTC string (for ``<time datetime>`` and tooltips)."""
    if not isinstance(ts, (int, float)) or isinstance(ts, bool) or ts <= 0:
        return ""
    try:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return ""


_MARK = re.compile(r"(<mark>|</mark>)")


def safe_snippet(snippet_html: str) -> Markup:
    """A result's ``snippet_html`` with ``<mark>`` as its only possible markup.

    The search module escapes snippets itself, but results can come from other
    peers, whose HTML is as hostile as a crawled page. So the text between the
    marks is unescaped and escaped again (a no-op for well-escaped text: what
    ``html.escape`` produced round-trips exactly), and the marks are balanced.
    """
    out: list[str] = []
    open_mark = False
    for part in _MARK.split(snippet_html):
        if part == "<mark>":
            if not open_mark:
                out.append(part)
                open_mark = True
        elif part == "</mark>":
            if open_mark:
                out.append(part)
                open_mark = False
        elif part:
            out.append(str(escape(html.unescape(part))))
    if open_mark:
        out.append("</mark>")
    return Markup("".join(out))


def display_url(url: str) -> str:
    """The URL as shown under a result title: without the scheme, which is noise."""
    for prefix in ("https://", "http://"):
        if url.startswith(prefix):
            return url[len(prefix) :]
    return url

