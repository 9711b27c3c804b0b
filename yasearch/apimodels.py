"""The /api/v1 shapes as msgspec Structs: request bodies, query strings, responses.

Their ``msgspec.Meta`` constraints are the API's limits, written once, here, and
read by the validator (:mod:`yasearch.apiparams`), the error messages and the
OpenAPI document alike. Response Structs describe what handlers answer; the
OpenAPI document is generated from them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta, Struct

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
