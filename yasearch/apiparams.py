"""Validation at the /api/v1 boundary: query strings and crawl requests into the
Structs of :mod:`yasearch.apimodels`.

Requests are validated once, here, by converting what arrived into those Structs
(:func:`parse_query`, :func:`parse_crawl_spec`). A failed conversion becomes the
same JSON 400 (or 413) a client always got, with a message naming the field at
fault.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, TypeVar

import msgspec
from msgspec import Struct

from yasearch.apimodels import MAX_HOST_CHARS, MAX_PATTERN_CHARS, MAX_PATTERNS, MAX_URL_CHARS, MAX_URLS, CrawlRequest
from yasearch.crawler.types import CrawlSpec
from yasearch.crawler.urls import canonicalize
from yasearch.errors import ApiError

M = TypeVar("M", bound=Struct)
_AT = re.compile(r" - at `\$\.(\w+)(?:\[(\d+)\])?")


def _where(e: msgspec.ValidationError) -> tuple[str, int | None]:
    """The top-level field (and list index) a validation error names."""
    m = _AT.search(str(e))
    if m is None:
        missing = re.search(r"missing required field `(\w+)`", str(e))
        return (missing.group(1) if missing else ""), None
    return m.group(1), (int(m.group(2)) if m.group(2) else None)


def _constraints(model: type[Struct], name: str) -> Any:
    """The msgspec.inspect type of a field, without a None option."""
    ftype = next(f.type for f in msgspec.inspect.type_info(model).fields if f.name == name)
    while isinstance(ftype, (msgspec.inspect.Metadata, msgspec.inspect.UnionType)):
        if isinstance(ftype, msgspec.inspect.Metadata):
            ftype = ftype.type
        else:
            ftype = next(t for t in ftype.types if not isinstance(t, msgspec.inspect.NoneType))
    return ftype


def _between(model: type[Struct], name: str) -> str:
    t = _constraints(model, name)
    lo = t.ge if t.ge is not None else t.gt
    return f"{name} must be between {lo:g} and {t.le:g}" if t.le is not None else f"{name} must be at least {lo:g}"


def parse_query(query: Mapping[str, str], model: type[M]) -> M:
    """A query string as ``model``: a 400 naming the parameter otherwise.

    The first of repeated parameters counts; an empty number or choice is absent
    (its default applies), an empty string is an empty string. A model's
    ``missing`` (code, message) answers a missing required parameter and its
    ``codes`` name a parameter's own error code (``bad_parameter`` otherwise).
    """
    values: dict[str, str] = {}
    for f in msgspec.structs.fields(model):
        raw = query.get(f.name)
        kind = _constraints(model, f.name)
        if raw is None or (raw == "" and not isinstance(kind, msgspec.inspect.StrType)):
            continue
        values[f.name] = raw.strip() if isinstance(kind, msgspec.inspect.IntType) else raw
    try:
        return msgspec.convert(values, model, strict=False)
    except msgspec.ValidationError as e:
        name, _ = _where(e)
        if name not in values:
            code, message = getattr(model, "missing", ("bad_parameter", f"the parameter {name} is missing"))
            raise ApiError(400, code, message) from None
        raw = values[name]
        code = getattr(model, "codes", {}).get(name, "bad_parameter")
        kind = _constraints(model, name)
        if isinstance(kind, msgspec.inspect.LiteralType):
            raise ApiError(400, code, f"{name} must be " + " or ".join(repr(v) for v in kind.values)) from None
        if isinstance(kind, msgspec.inspect.IntType):
            if "got" in str(e):
                raise ApiError(400, code, f"{name} must be an integer, not {raw[:40]!r}") from None
            raise ApiError(400, code, _between(model, name)) from None
        if isinstance(kind, msgspec.inspect.BoolType):
            raise ApiError(400, code, f"{name} must be true or false, not {raw[:40]!r}") from None
        raise ApiError(400, code, f"{name} is {len(raw)} characters; at most {kind.max_length} are accepted") from None


def query_text(raw: str | None, max_chars: int) -> str:
    """A search query: present, not blank, at most ``max_chars`` (the peer's setting)."""
    q = (raw or "").strip()
    if not q:
        raise ApiError(400, "missing_query", "the query parameter q is missing or empty")
    if len(q) > max_chars:
        raise ApiError(400, "query_too_long", f"the query is {len(q)} characters; at most {max_chars} are accepted")
    return q


def _crawl_error(e: msgspec.ValidationError, body: dict[str, Any]) -> ApiError:
    """The message a client always got for a bad crawl body, naming the field at fault."""
    name, index = _where(e)
    text = str(e)
    if name == "urls":
        if index is not None:
            u = body["urls"][index]
            return ApiError(400, "bad_urls", f"not a URL (or longer than {MAX_URL_CHARS} characters): {str(u)[:80]!r}")
        if isinstance(body.get("urls"), list) and "length <=" in text:
            return ApiError(413, "too_many_urls", f"at most {MAX_URLS} URLs per job")
        return ApiError(400, "bad_urls", "urls must be a non-empty list of http(s) URLs")
    if name in ("depth", "max_pages", "delay"):
        if "got" in text:
            return ApiError(400, "bad_parameter", f"{name} must be a{' number' if name == 'delay' else 'n integer'}")
        return ApiError(400, "bad_parameter", _between(CrawlRequest, name))
    if name in ("allow", "deny"):
        if index is not None:
            return ApiError(400, "bad_parameter", f"{name}: each regex is a string of at most {MAX_PATTERN_CHARS} characters")
        return ApiError(400, "bad_parameter", f"{name} must be a list of at most {MAX_PATTERNS} regexes")
    if name == "same_site":
        return ApiError(400, "bad_parameter", "same_site must be true or false")
    return ApiError(400, "bad_request", text)


def _regexes(name: str, value: list[str] | str) -> list[str]:
    patterns = ([value] if value else []) if isinstance(value, str) else value
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise ApiError(400, "bad_parameter", f"{name}: invalid regex {p!r}: {e}") from None
    return list(patterns)


def _whole(name: str, value: float) -> int:
    if not float(value).is_integer():
        raise ApiError(400, "bad_parameter", f"{name} must be an integer")
    return int(value)


def parse_crawl_spec(body: Any) -> CrawlSpec:
    """Validate a crawl request body (decoded JSON, or the console's form as a dict);
    every message names the field at fault. The one set of rules for every way a
    crawl is started."""
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object like {\"urls\": [...], \"depth\": 2}")
    unknown = set(body) - set(CrawlRequest.__struct_fields__)
    if unknown:
        raise ApiError(400, "bad_request", f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
    try:
        req = msgspec.convert(body, CrawlRequest)
    except msgspec.ValidationError as e:
        raise _crawl_error(e, body) from None
    urls = req.urls
    if isinstance(urls, str):
        urls = [u for u in re.split(r"\s+", urls) if u and not u.startswith("#")]
        if not urls:
            raise ApiError(400, "bad_urls", "urls must be a non-empty list of http(s) URLs")
        if len(urls) > MAX_URLS:
            raise ApiError(413, "too_many_urls", f"at most {MAX_URLS} URLs per job")
    seeds: list[str] = []
    for u in urls:
        if len(u) > MAX_URL_CHARS:
            raise ApiError(400, "bad_urls", f"not a URL (or longer than {MAX_URL_CHARS} characters): {u[:80]!r}")
        canon = canonicalize(u.strip())
        if canon is None:
            raise ApiError(400, "bad_urls", f"not an absolute http(s) URL: {u[:200]!r}")
        if canon not in seeds:
            seeds.append(canon)
    return CrawlSpec(
        urls=seeds,
        depth=_whole("depth", req.depth),
        max_pages=_whole("max_pages", req.max_pages),
        delay=req.delay,
        allow=_regexes("allow", req.allow),
        deny=_regexes("deny", req.deny),
        same_site=req.same_site,
        sitemaps=req.sitemaps,
        warc=req.warc,
    )


#: ``host[:port]`` as the index stores it: lowercase, IDNA (ASCII), IPv6 in brackets.
_HOST_RE = re.compile(r"(?:[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


def host_param(raw: str | None) -> str:
    host = (raw or "").strip().lower()
    if not host:
        raise ApiError(400, "missing_host", "the host is missing")
    if len(host) > MAX_HOST_CHARS or not _HOST_RE.fullmatch(host):
        raise ApiError(400, "bad_host", f"not a host name (host or host:port): {host[:80]!r}")
    return host


def url_param(raw: str | None) -> str:
    url = (raw or "").strip()
    if not url:
        raise ApiError(400, "missing_url", "the url parameter is missing or empty")
    if len(url) > MAX_URL_CHARS:
        raise ApiError(400, "bad_url", f"the URL is longer than {MAX_URL_CHARS} characters")
    if canonicalize(url) is None:
        raise ApiError(400, "bad_url", f"not an absolute http(s) URL: {url[:200]!r}")
    return url
