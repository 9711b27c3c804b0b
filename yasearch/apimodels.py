"""The /api/v1 shapes as msgspec Structs: request bodies, query strings, responses.

Requests are validated once, at the boundary, by converting what arrived into
these Structs (:func:`parse_query`, :func:`parse_crawl_spec`); their
``msgspec.Meta`` constraints are the API's limits, written once, here, and read
by the validator, the error messages and the OpenAPI document alike. A failed
conversion becomes the same JSON 400 (or 413) a client always got, with a message
naming the field at fault. Response Structs describe what handlers answer; the
OpenAPI document is generated from them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Mapping, TypeVar

import msgspec
from msgspec import Meta, Struct

from yasearch.crawler.types import CrawlSpec
from yasearch.crawler.urls import canonicalize
from yasearch.errors import ApiError
from yasearch.limits import MAX_TERM_CHARS
from yasearch.records import DocRecord
from yasearch.suggest import MAX_SUGGEST_LIMIT, MAX_SUGGEST_QUERY_CHARS

# -- limits (README, "API") ------------------------------------------------------------

MAX_URLS = 10_000
MAX_URL_CHARS = 2048
MAX_DEPTH = 100
MAX_PAGES = 1_000_000
MAX_DELAY = 3600.0
MAX_PATTERNS = 50
MAX_PATTERN_CHARS = 500
MAX_LIMIT = 100
MAX_OFFSET = 10_000
#: Page sizes and offsets of the index listings (admin routes, but still bounded).
MAX_INDEX_LIMIT = 1000
MAX_INDEX_OFFSET = 10_000_000
MAX_HOST_CHARS = 300

# -- requests ------------------------------------------------------------------------------

Url = Annotated[str, Meta(max_length=MAX_URL_CHARS, extra_json_schema={"format": "uri", "pattern": "^https?://"})]
Regex = Annotated[str, Meta(max_length=MAX_PATTERN_CHARS)]
Regexes = Annotated[list[Regex], Meta(max_length=MAX_PATTERNS)] | Regex
#: A whole number that JSON may spell 2 or 2.0 (both were always accepted).
_WHOLE = {"type": "integer"}


class CrawlRequest(Struct, forbid_unknown_fields=True):
    """The body of ``POST /api/v1/crawl``."""

    urls: Annotated[
        Annotated[list[Url], Meta(min_length=1, max_length=MAX_URLS)] | str,
        Meta(description="seed URLs (a list, or one string of whitespace-separated URLs; '#' lines are comments)"),
    ]
    depth: Annotated[float, Meta(ge=0, le=MAX_DEPTH, extra_json_schema=_WHOLE)] = 2
    max_pages: Annotated[float, Meta(ge=1, le=MAX_PAGES, extra_json_schema=_WHOLE)] = 100
    delay: Annotated[
        Annotated[float, Meta(ge=0, le=MAX_DELAY)] | None,
        Meta(description="seconds between requests to one host; robots.txt Crawl-delay wins when larger"),
    ] = None
    allow: Annotated[Regexes, Meta(description="URL regexes; only matching URLs are crawled")] = []
    deny: Annotated[Regexes, Meta(description="URL regexes never crawled")] = []
    same_site: Annotated[bool, Meta(description="only follow links to the seeds' hosts")] = False
    sitemaps: Annotated[bool, Meta(description="read the seed hosts' sitemaps (robots.txt Sitemap: lines, /sitemap.xml)")] = True
    warc: Annotated[bool, Meta(description="keep every fetched HTML response in a WARC file (GET /api/v1/crawl/{id}/warc)")] = False


class CrawlForm(Struct):
    """The crawl console's form (multipart/form-data): CrawlRequest's fields as text, plus a seed list file."""

    urls: Annotated[str, Meta(description="seed URLs, one per line")] = ""
    seeds: Annotated[str, Meta(description="seed list file: UTF-8, one URL per line, '#' starts a comment; at most 1 MiB and 10,000 URLs")] = ""
    depth: Annotated[str, Meta(description="integer, as in CrawlRequest")] = ""
    max_pages: Annotated[str, Meta(description="integer, as in CrawlRequest")] = ""
    delay: Annotated[str, Meta(description="seconds, as in CrawlRequest")] = ""
    allow: Annotated[str, Meta(description="URL regexes, one per line")] = ""
    deny: Annotated[str, Meta(description="URL regexes, one per line")] = ""
    same_site: Annotated[str, Meta(description="any value but empty/0/false/off: true")] = ""


class SearchQuery(Struct):
    missing: ClassVar = ("missing_query", "the query parameter q is missing or empty")
    q: Annotated[str, Meta(description="query: words, \"phrases\", -exclude, site:host, lang:xx (at most the peer's max_query_chars, 512 by default)")]
    limit: Annotated[int, Meta(ge=1, le=MAX_LIMIT, description="results per page")] = 10
    offset: Annotated[int, Meta(ge=0, le=MAX_OFFSET, description="results to skip")] = 0
    scope: Annotated[Literal["global", "local"], Meta(description="global: the DHT and this peer; local: this peer's index only")] = "global"
    facets: Annotated[bool, Meta(description="count the matches by host and language (false: skip, faster for local search)")] = True


class SuggestQuery(Struct):
    missing: ClassVar = ("missing_query", "the query parameter q is missing (e.g. ?q=zeb)")
    codes: ClassVar = {"q": "query_too_long"}
    q: Annotated[str, Meta(max_length=MAX_SUGGEST_QUERY_CHARS, description="what was typed so far")]
    limit: Annotated[int, Meta(ge=1, le=MAX_SUGGEST_LIMIT, description="completions at most")] = 10
    format: Annotated[Literal["json", "opensearch"], Meta(description="json: {query, suggestions}; opensearch: [query, [completions]]")] = "json"


class UrlQuery(Struct):
    missing: ClassVar = ("missing_url", "the url parameter is missing or empty")
    codes: ClassVar = {"url": "bad_url"}
    url: Annotated[str, Meta(max_length=MAX_URL_CHARS, description="an absolute http(s) URL (any spelling that canonicalizes to the indexed one)")]


class IndexPageQuery(Struct):
    limit: Annotated[int, Meta(ge=1, le=MAX_INDEX_LIMIT, description="rows per page")] = 100
    offset: Annotated[int, Meta(ge=0, le=MAX_INDEX_OFFSET, description="rows to skip")] = 0


# -- responses -----------------------------------------------------------------------------

Count = Annotated[int, Meta(ge=0)]


class ErrorDetail(Struct):
    code: Annotated[str, Meta(description="stable machine-readable code, e.g. bad_parameter", examples=["bad_parameter"])]
    message: Annotated[str, Meta(description="what went wrong, for people")]


class Error(Struct):
    """Every JSON error has this shape, whatever the route and status."""

    error: ErrorDetail


class SearchHit(Struct):
    url: str
    title: str
    snippet: Annotated[str, Meta(description="plain text")]
    snippet_html: Annotated[str, Meta(description="HTML-escaped snippet with <mark> around query terms; safe to embed")]
    score: Annotated[float, Meta(description="BM25 with network-wide statistics; comparable across peers")]
    origin: Annotated[str, Meta(description="'local' or the ID of the peer that held the result")]
    doc_id: Annotated[str, Meta(description="hex SHA-1 of the canonical URL")] = ""
    host: str = ""
    language: str = ""
    crawled_at: Annotated[float, Meta(description="Unix time")] = 0.0
    more_from_host: Annotated[int, Meta(ge=0, description=(
        "results of this host left off the page for host diversity (at most 2 per host); "
        "the query with site:HOST shows them"))] = 0


FacetCount = Annotated[tuple[str, Count], Meta(description="[value, number of matching documents]", examples=[["example.org", 12]])]


_FACET_LIST = msgspec.json.schema(list[FacetCount])
#: Named in the schema (not a nested Struct) so the document shows the two lists inline.
Facets = Annotated[
    dict[str, list[FacetCount]],
    Meta(
        description=(
            "navigators: matches per host and per language (primary subtag), most frequent first, "
            "at most 10 each, counted over the best 1,000 ranked matches (global: those whose records the query "
            "fetched, at least the page and the 30 ranks after it); refine with site:HOST or lang:LANG"
        ),
        extra_json_schema={"properties": {"host": _FACET_LIST, "language": _FACET_LIST}},
    ),
]


class PeersAsked(Struct):
    asked: Count = 0
    answered: Count = 0
    failed: Count = 0


class SearchResponse(Struct):
    query: str
    total: Annotated[int, Meta(ge=0, description="matching documents (an estimate for global searches)")]
    took_ms: float
    results: list[SearchHit]
    peers: PeersAsked
    offset: Count = 0
    limit: int = 10
    scope: Literal["global", "local"] = "global"
    facets: Facets = {}
    relaxed: Annotated[
        bool, Meta(description="too few documents had every word: documents with most of them are shown, total counts those")
    ] = False
    did_you_mean: Annotated[str, Meta(description='a query the term dictionary suggests instead, "" if none')] = ""
    total_estimated: Annotated[bool, Meta(description="total is an estimate: the best results were found without visiting every match")] = False
    skipped_terms: Annotated[
        list[Annotated[str, Meta(max_length=MAX_TERM_CHARS)]],
        Meta(max_length=16, description="query terms a global search left out: none of their replicas answered"),
    ] = []
    round_trips: Annotated[int, Meta(ge=0, description="sequential rounds of calls a global search made to other peers")] = 0


class CrawlStarted(Struct):
    id: str
    state: Literal["running"]
    #: Every job the request started: several when an uploaded seed list has per-line options.
    jobs: list[str] = []


class Failure(Struct):
    url: str
    reason: str
    time: float


class Job(Struct):
    id: str
    state: Literal["running", "paused", "done", "cancelled", "failed"]
    queued: Count
    fetched: Count
    indexed: Count
    failed: Count
    published: Count
    created: Annotated[float, Meta(description="Unix time")] = 0.0
    skipped: Count = 0
    pages_per_second: float = 0.0
    failures: Annotated[dict[str, int], Meta(description="failure reason -> count")] = {}
    recent_failures: list[Failure] = []
    spec: Annotated[dict[str, Any], Meta(description="the crawl request as accepted")] = {}
    error: Annotated[str, Meta(description="why a 'failed' job failed")] = ""


class JobList(Struct):
    jobs: list[Job]


class PublishFigures(Struct):
    pending: Count = 0
    sent: Count = 0
    failed: Count = 0


class Status(Struct):
    """Figures of this peer (more fields than listed may appear)."""

    peer_id: Annotated[str, Meta(description="160-bit node ID, hex")]
    name: str
    version: str
    documents: Count
    postings_held: Annotated[int, Meta(ge=0, description="postings this peer holds for the DHT")]
    peers_known: Count
    crawl: dict[str, Any]
    publish: PublishFigures
    state: Annotated[str, Meta(description='"ok", or "degraded" while a part cannot write (see faults)')] = "ok"
    faults: Annotated[dict[str, Any], Meta(description="part -> {error, since} of each degraded part")] = {}
    url: str = ""
    uptime_s: float = 0.0
    dht: dict[str, Any] = {}
    network: dict[str, Any] = {}
    index: dict[str, Any] = {}
    reach: Annotated[
        dict[str, Any],
        Meta(description='"kind": "public" or "client-only" (others cannot dial this peer: it holds no term), '
             '"observed": the address other peers see it at (null until confirmed)'),
    ] = {}


class PeerInfo(Struct):
    peer_id: str
    url: str
    self: Annotated[bool, Meta(description="true for the answering peer")]
    name: str = ""
    version: str = ""
    documents: Count = 0
    last_seen: float = 0.0
    reach: Annotated[str, Meta(description='"public", or "client-only": cannot be dialled, responsible for no term')] = "public"
    observed: Annotated[str | None, Meta(description="the peer's address as the answering peer sees it")] = None


class PeerList(Struct):
    peers: list[PeerInfo]


class IndexRecord(Struct):
    """One document of this peer's local index."""

    doc_id: Annotated[str, Meta(description="hex SHA-1 of the canonical URL")]
    url: str
    title: str
    description: str
    language: str
    length: Annotated[int, Meta(ge=0, description="document length in analyzed terms (BM25's |d|)")]
    crawled_at: Annotated[float, Meta(description="Unix time")]
    host: Annotated[str, Meta(description="host[:port], lowercase")]


def index_record(rec: DocRecord) -> IndexRecord:
    """A DocRecord of the local index as the API shows it."""
    return IndexRecord(
        doc_id=rec.doc_id, url=rec.url, title=rec.title, description=rec.description, language=rec.language,
        length=rec.length, crawled_at=rec.crawled_at, host=rec.host,
    )


class HostCount(Struct):
    host: str
    documents: Count


class IndexHosts(Struct):
    total: Annotated[int, Meta(ge=0, description="hosts in the index")]
    documents: Annotated[int, Meta(ge=0, description="documents in the index")]
    offset: Count
    hosts: Annotated[list[HostCount], Meta(description="most documents first")]


class HostDocuments(Struct):
    host: str
    total: Count
    offset: Count
    documents: Annotated[list[IndexRecord], Meta(description="ordered by URL")]


class Removed(Struct, omit_defaults=True):
    removed: Annotated[int, Meta(ge=0, description="documents removed from the index; their postings are being withdrawn from the network")]
    url: str | None = None
    doc_id: str | None = None
    host: str | None = None


class Suggestions(Struct):
    query: str
    suggestions: list[str]


OpenSearchSuggestions = Annotated[tuple[str, list[str]], Meta(description="OpenSearch suggestions format: [query, [completions...]]")]

# -- validation ------------------------------------------------------------------------------

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
