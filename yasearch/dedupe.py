"""Duplicates and host diversity: what a result page shows of a ranked list.

Three rules, applied to the best-ranked part of a ranking (:data:`WINDOW`
entries beyond the page asked for) so that pages stay consistent:

* **URL aliases** collapse: ``/`` and ``/index.html``, ``/a/`` and ``/a`` are
  one page (:func:`url_key`); only the best-ranked alias is shown.
* **Near duplicates** collapse: two pages of one host whose lead text (the
  description, or the lead paragraph standing in for it) analyzes to the same
  terms, e.g. ``io`` and ``_io``, ``csv`` and ``_csv``, which open with the
  same docstring. The less complete copy moves behind everything else instead
  of filling the page. (Equal analyzed leads, not a SimHash of them: a pure
  Python SimHash cost ~0.5 ms per result, more than the rest of a query.)
* **Host diversity**: at most :data:`PER_HOST` results of one host in a row of
  ranks; a host's further results move behind the other hosts' (so a query
  answered by one site only keeps its order). "More from this host" is a
  ``site:`` search: :func:`arrange` tells which results it moved behind per
  host (``folded``) and :func:`mark_more_from_host` sets each hit's
  ``more_from_host`` to how many of its host's results the page does not show.

Pure functions over (doc_id, score) and a lookup of each document's URL, host
and lead text, so local and global search arrange alike.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from yasearch.analysis import analyze

#: Results of one host before the others' come first.
PER_HOST = 2
#: Entries beyond the requested page that are looked at.
WINDOW = 10
#: Shorter lead texts are not compared (too little to tell pages apart).
MIN_LEAD_CHARS = 80

_INDEX_FILE = re.compile(r"/(?:index|default)\.(?:html?|php|aspx?)$", re.IGNORECASE)

#: (url, host, lead text, length) of a document, None if unknown
Info = Callable[[str], "tuple[str, str, str, int] | None"]


def url_key(url: str) -> str:
    """A URL with the aliases of one page folded: lowercase host, no index file, no final slash."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    path = _INDEX_FILE.sub("/", parts.path or "/").rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def fingerprint(text: str) -> int:
    """64-bit hash of the analyzed terms of ``text``: equal for texts that differ
    only in case, punctuation, stopwords and word endings."""
    return int.from_bytes(hashlib.blake2b(" ".join(analyze(text)).encode("utf-8"), digest_size=8).digest(), "big")


def arrange(
    ranked: list[tuple[str, float]], info: Info, upto: int, folded: dict[str, list[str]] | None = None
) -> list[tuple[str, float]]:
    """``ranked`` reordered for display: aliases dropped, near duplicates and
    crowding hosts moved back. Only the first ``upto + WINDOW`` entries are
    looked at; the rest follow unchanged. ``folded``, when given, receives the
    doc ids host diversity moved back, per host.

    Of a group of near duplicates the longest document (the most complete
    copy: ``io`` rather than ``_io``) is shown, at the rank of the group's best.
    """
    head, tail = ranked[: upto + WINDOW], ranked[upto + WINDOW :]
    slots: list[tuple[str, float]] = []  # in rank order; host crowding applied after
    hosts: list[str] = []
    dupes: list[tuple[str, float]] = []
    urls: set[str] = set()
    groups: list[tuple[str, int, int, int]] = []  # (host, fingerprint, slot, length of the one shown)
    for entry in head:
        meta = info(entry[0])
        if meta is None:
            slots.append(entry)
            hosts.append("")
            continue
        url, host, lead, length = meta
        key = url_key(url)
        if key in urls:
            continue
        urls.add(key)
        if len(lead) >= MIN_LEAD_CHARS:
            fp = fingerprint(lead)
            group = next((i for i, (h, other, _s, _n) in enumerate(groups) if h == host and fp == other), None)
            if group is not None:
                h, other, slot, shown_length = groups[group]
                if length > shown_length:  # the more complete copy takes the group's place
                    dupes.append(slots[slot])
                    slots[slot] = entry
                    groups[group] = (h, other, slot, length)
                else:
                    dupes.append(entry)
                continue
            groups.append((host, fp, len(slots), length))
        slots.append(entry)
        hosts.append(host)
    shown: list[tuple[str, float]] = []
    later: list[tuple[str, float]] = []
    per_host: dict[str, int] = {}
    for entry, host in zip(slots, hosts):
        per_host[host] = per_host.get(host, 0) + 1
        if not host or per_host[host] <= PER_HOST:
            shown.append(entry)
        else:
            later.append(entry)
            if folded is not None:
                folded.setdefault(host, []).append(entry[0])
    return shown + later + dupes + tail


class _Hit(Protocol):
    doc_id: str
    host: str
    more_from_host: int


def mark_more_from_host(hits: Sequence[_Hit], folded: dict[str, list[str]]) -> None:
    """Set each hit's ``more_from_host``: how many results of its host that
    :func:`arrange` moved back (``folded``) are not among ``hits`` (the page)."""
    shown = {h.doc_id for h in hits}
    for h in hits:
        h.more_from_host = sum(1 for d in folded.get(h.host, ()) if d not in shown)
