"""Seed lists: one URL per line, ``#`` comments, and per-line options after the URL.

    https://docs.python.org/3/   depth=3 same_site
    https://example.org/         max_pages=50 sitemaps=false

Options: ``depth``, ``max_pages`` (whole numbers), ``delay`` (seconds),
``same_site`` and ``sitemaps`` (``true``/``false``; a bare name means true).
Every line that cannot be used is reported with its number, not only the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from yasearch.crawler.urls import canonicalize
from yasearch.limits import MAX_URL_CHARS

_COMMENT = re.compile(r"(^|\s)#.*$")
INTEGER_OPTIONS = {"depth": (0, 100), "max_pages": (1, 1_000_000)}
BOOL_OPTIONS = ("same_site", "sitemaps")
_TRUE = {"", "1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass
class Seed:
    line: int
    url: str
    options: dict[str, Any] = field(default_factory=dict)


def _option(word: str) -> tuple[str, Any]:
    if "://" in word.partition("=")[0]:
        raise ValueError(f"one URL per line, found another one: {word[:120]!r}")
    name, _, raw = word.partition("=")
    name = name.strip().lower().replace("-", "_")
    if name in INTEGER_OPTIONS:
        lo, hi = INTEGER_OPTIONS[name]
        if not raw.isdigit() or not lo <= int(raw) <= hi:
            raise ValueError(f"{name} must be a whole number {lo}-{hi}, not {raw!r}")
        return name, int(raw)
    if name == "delay":
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 <= value <= 3600:
            raise ValueError(f"delay must be seconds (0-3600), not {raw!r}")
        return name, value
    if name in BOOL_OPTIONS:
        if raw.lower() in _TRUE:
            return name, True
        if raw.lower() in _FALSE:
            return name, False
        raise ValueError(f"{name} must be true or false, not {raw!r}")
    known = ", ".join([*INTEGER_OPTIONS, "delay", *BOOL_OPTIONS])
    raise ValueError(f"unknown option {name!r} (known: {known})")


def parse_seed_lines(text: str) -> tuple[list[Seed], list[tuple[int, str]]]:
    """(usable seeds, [(line number, what is wrong)]) of a seed list's text."""
    seeds: list[Seed] = []
    errors: list[tuple[int, str]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw).strip()
        if not line:
            continue
        url, *words = line.split()
        if len(url) > MAX_URL_CHARS or canonicalize(url) is None:
            errors.append((n, f"not an absolute http(s) URL: {url[:200]!r}"))
            continue
        options: dict[str, Any] = {}
        try:
            for w in words:
                key, value = _option(w)
                options[key] = value
        except ValueError as e:
            errors.append((n, str(e)))
            continue
        seeds.append(Seed(n, url, options))
    return seeds, errors


def group_by_options(seeds: list[Seed]) -> list[tuple[dict[str, Any], list[str]]]:
    """Seeds with the same options share one job: [(options, urls)] in first-seen order."""
    groups: dict[tuple[tuple[str, Any], ...], list[str]] = {}
    for s in seeds:
        groups.setdefault(tuple(sorted(s.options.items())), []).append(s.url)
    return [(dict(k), urls) for k, urls in groups.items()]


def describe_errors(name: str, errors: list[tuple[int, str]], limit: int = 20) -> str:
    shown = "; ".join(f"{name} line {n}: {msg}" for n, msg in errors[:limit])
    more = f"; and {len(errors) - limit} more" if len(errors) > limit else ""
    return shown + more
