"""Public APIs other programs already speak: YaCy's search API, OpenSearch, suggestions.

* ``GET /yacysearch.json`` and ``GET /yacysearch.rss``: YaCy's search API
  (``htroot/yacysearch.json`` / ``yacysearch.rss`` in yacy_search_server), so
  YaCy clients (searx/SearXNG's yacy engine, scripts) work unchanged. Same
  parameter names and aliases, same response shape; as in YaCy's templates,
  every value in the JSON is a string.
* ``GET /opensearch.xml``: an OpenSearch 1.1 description, so browsers offer to
  add yasearch as a search engine (pages link it with ``<link rel="search">``).
* ``GET /api/v1/suggest``: search-box completions, as JSON or in the OpenSearch
  suggestions format ``[query, [completions...]]`` that browsers ask for.

URLs in the documents are built from the request's own address (``Host``
header, and ``X-Forwarded-Proto`` for the scheme behind a TLS proxy), so the
documents are right whatever name or address the peer is reached by.
"""

from __future__ import annotations

import json
import re
import time
from email.utils import formatdate
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlencode, urlsplit
from xml.sax.saxutils import escape

from aiohttp import web
from msgspec import Meta, Struct

from yasearch.apimodels import MAX_OFFSET, OpenSearchSuggestions, Suggestions, SuggestQuery
from yasearch.apiparams import parse_query
from yasearch.errors import ApiError
from yasearch.httpkit import PEER_KEY, route
from yasearch.query import QueryError
from yasearch.records import SearchHit, SearchResponse

#: Most results one yacysearch request may ask for (maximumRecords).
MAX_RECORDS = 100

OPENSEARCH_NS = "http://a9.com/-/spec/opensearch/1.1/"
YACY_NS = "http://www.yacy.net/"
ATOM_NS = "http://www.w3.org/2005/Atom"
MOZ_NS = "http://www.mozilla.org/2006/browser/search/"
OPENSEARCH_TYPE = "application/opensearchdescription+xml"
SUGGESTIONS_TYPE = "application/x-suggestions+json"

#: YaCy content domains that are not text: yasearch indexes no media, so these are empty.
_MEDIA_DOMAINS = frozenset({"image", "audio", "video", "app"})
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-_]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def base_url(request: web.Request) -> str:
    """``scheme://host[:port]`` as the client addressed this peer."""
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    scheme = proto if proto in ("http", "https") else request.scheme
    host = request.host or ""
    if not _HOST_RE.match(host):  # a forged or odd Host header: fall back to our own address
        return request.app[PEER_KEY].url
    return f"{scheme}://{host}"


# -- YaCy search API -------------------------------------------------------------


def _first(query: Any, *names: str) -> str | None:
    """The first of ``names`` present in the query string (YaCy's parameter aliases)."""
    for name in names:
        if name in query:
            return query.get(name)
    return None


#: YaCy's parameter -> its aliases, in the order YaCy reads them.
_ALIASES = {
    "query": ("query", "search"),
    "maximumRecords": ("maximumRecords", "count", "rows"),
    "startRecord": ("startRecord", "offset", "start"),
}


class YacyQuery(Struct):
    """YaCy's search parameters (each also read under its YaCy aliases)."""

    missing: ClassVar = ("missing_query", "the parameter query is missing or empty (e.g. ?query=zebra)")
    query: Annotated[str, Meta(min_length=1, description="the search query (alias: search)")]
    maximumRecords: Annotated[int, Meta(ge=1, le=MAX_RECORDS, description="results per page (aliases: count, rows)")] = 10
    startRecord: Annotated[int, Meta(ge=0, le=MAX_OFFSET, description="0-based offset of the first result (aliases: offset, start)")] = 0
    resource: Annotated[Literal["global", "local"], Meta(description="search the network or only this peer's index")] = "global"
    contentdom: Annotated[str, Meta(description="YaCy content domain; text (yasearch indexes no media: image/audio/video/app answer no items)")] = "text"


class YacyParams:
    """Validated YaCy search parameters."""

    def __init__(self, request: web.Request) -> None:
        peer = request.app[PEER_KEY]
        q = request.query
        raw = {name: _first(q, *aliases) for name, aliases in _ALIASES.items()}
        raw["query"] = (raw["query"] or "").strip() or None
        for name in ("resource", "contentdom"):
            raw[name] = (q.get(name) or "").strip().lower()
        params = parse_query({k: v for k, v in raw.items() if v is not None}, YacyQuery)
        self.query = params.query
        if len(self.query) > peer.config.max_query_chars:
            raise ApiError(
                400,
                "query_too_long",
                f"the query is {len(self.query)} characters; at most {peer.config.max_query_chars} are accepted",
            )
        self.limit = params.maximumRecords
        self.offset = params.startRecord
        self.resource = params.resource
        # YaCy reads unknown content domains as text; image/audio/video/app ask
        # for media results, which a text-only index does not have.
        self.contentdom = params.contentdom or "text"
        self.media = self.contentdom in _MEDIA_DOMAINS


async def _yacy_search(request: web.Request) -> tuple[YacyParams, SearchResponse]:
    params = YacyParams(request)
    if params.media:
        return params, SearchResponse(query=params.query, total=0, took_ms=0.0, offset=params.offset,
                                      limit=params.limit, scope=params.resource)
    peer = request.app[PEER_KEY]
    try:
        resp = await peer.search(params.query, limit=params.limit, offset=params.offset, scope=params.resource)
    except QueryError as e:
        raise ApiError(400, "bad_query", str(e)) from None
    return params, resp


def _rfc822(ts: float) -> str:
    return formatdate(ts if ts and ts > 0 else time.time(), usegmt=True)


def _item(hit: SearchHit) -> dict[str, str]:
    parts = urlsplit(hit.url)
    path = parts.path or "/"
    return {
        "title": hit.title or hit.url,
        "link": hit.url,
        "code": "",
        "description": hit.snippet,
        "pubDate": _rfc822(hit.crawled_at),
        "guid": hit.doc_id,
        "host": parts.hostname or hit.host,  # as YaCy: without the port
        "path": path,
        "file": path.rsplit("/", 1)[-1],
        "urlhash": hit.doc_id,
        "ranking": f"{hit.score:.6f}",
        # not in YaCy: which peer the result came from ("local" or a peer id)
        "origin": hit.origin,
    }


def _search_link(base: str, params: YacyParams) -> str:
    return f"{base}/search?" + urlencode({"q": params.query})


async def yacysearch_json(request: web.Request) -> web.Response:
    params, resp = await _yacy_search(request)
    base = base_url(request)
    channel = {
        "title": f"yasearch: {params.query}",
        "description": f"Search for {params.query}",
        "link": _search_link(base, params),
        "startIndex": str(resp.offset),
        "itemsPerPage": str(params.limit),
        "searchTerms": params.query,
        "totalResults": str(resp.total),
        "items": [_item(h) for h in resp.results],
        "navigation": [],
        # not in YaCy: how the answer was made
        "scope": resp.scope,
        "peers": resp.peers,
        "took_ms": round(resp.took_ms, 2),
    }
    return web.json_response({"channels": [channel]}, dumps=lambda o: json.dumps(o, ensure_ascii=False))


_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _x(text: str) -> str:
    """Text for XML content or a double-quoted attribute: escaped, invalid characters dropped."""
    return escape(_INVALID_XML.sub("", text), {'"': "&quot;"})


def _xml_body(lines: list[str]) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + "\n".join(lines) + "\n").encode("utf-8")


async def yacysearch_rss(request: web.Request) -> web.Response:
    params, resp = await _yacy_search(request)
    base = base_url(request)
    out = [
        f'<rss version="2.0" xmlns:opensearch="{OPENSEARCH_NS}" xmlns:yacy="{YACY_NS}" xmlns:atom="{ATOM_NS}">',
        "<channel>",
        f"<title>{_x('yasearch: ' + params.query)}</title>",
        f"<description>{_x('Search for ' + params.query)}</description>",
        f"<link>{_x(_search_link(base, params))}</link>",
        f"<opensearch:totalResults>{resp.total}</opensearch:totalResults>",
        f"<opensearch:startIndex>{resp.offset}</opensearch:startIndex>",
        f"<opensearch:itemsPerPage>{params.limit}</opensearch:itemsPerPage>",
        f'<opensearch:Query role="request" searchTerms="{_x(params.query)}"/>',
        f'<atom:link rel="search" href="{_x(base)}/opensearch.xml" type="{OPENSEARCH_TYPE}"/>',
    ]
    for hit in resp.results:
        it = _item(hit)
        out += [
            "<item>",
            f"<title>{_x(it['title'])}</title>",
            f"<link>{_x(it['link'])}</link>",
            f"<description>{_x(it['description'])}</description>",
            f"<pubDate>{it['pubDate']}</pubDate>",
            f'<guid isPermaLink="false">{_x(it["guid"])}</guid>',
            f"<yacy:host>{_x(it['host'])}</yacy:host>",
            f"<yacy:path>{_x(it['path'])}</yacy:path>",
            f"<yacy:file>{_x(it['file'])}</yacy:file>",
            "</item>",
        ]
    out += ["</channel>", "</rss>"]
    return web.Response(body=_xml_body(out), content_type="application/rss+xml", charset="utf-8")


# -- OpenSearch description ------------------------------------------------------------


def opensearch_description(base: str, name: str) -> bytes:
    """OpenSearch 1.1 description of this peer at ``base``."""
    b = _x(base)
    rss = f"{b}/yacysearch.rss?query={{searchTerms}}&amp;startRecord={{startIndex?}}&amp;maximumRecords={{count?}}"
    return _xml_body([
        f'<OpenSearchDescription xmlns="{OPENSEARCH_NS}" xmlns:moz="{MOZ_NS}">',
        "<ShortName>yasearch</ShortName>",  # at most 16 characters
        f"<Description>{_x(('yasearch peer-to-peer web search: ' + name)[:1024])}</Description>",
        "<Tags>yasearch p2p web search</Tags>",
        "<InputEncoding>UTF-8</InputEncoding>",
        "<OutputEncoding>UTF-8</OutputEncoding>",
        f'<Url type="text/html" method="get" template="{b}/search?q={{searchTerms}}"/>',
        f'<Url type="application/rss+xml" method="get" indexOffset="0" template="{rss}"/>',
        f'<Url type="{SUGGESTIONS_TYPE}" method="get" template="{b}/api/v1/suggest?q={{searchTerms}}&amp;format=opensearch"/>',
        f'<Url type="{OPENSEARCH_TYPE}" rel="self" template="{b}/opensearch.xml"/>',
        '<Query role="example" searchTerms="peer to peer"/>',
        "<Developer>yasearch</Developer>",
        "<SyndicationRight>open</SyndicationRight>",
        "<AdultContent>false</AdultContent>",
        "<Language>*</Language>",
        f"<moz:SearchForm>{b}/</moz:SearchForm>",
        "</OpenSearchDescription>",
    ])


async def opensearch_xml(request: web.Request) -> web.Response:
    peer = request.app[PEER_KEY]
    body = opensearch_description(base_url(request), peer.name)
    return web.Response(body=body, content_type=OPENSEARCH_TYPE, charset="utf-8")


# -- suggestions ---------------------------------------------------------------------------


async def suggest(request: web.Request) -> web.Response:
    params = parse_query(request.query, SuggestQuery)
    q = params.q.lstrip()
    completions = await request.app[PEER_KEY].suggest(q, limit=params.limit) if q.strip() else []
    dumps = lambda o: json.dumps(o, ensure_ascii=False)  # noqa: E731
    if params.format == "opensearch":
        return web.json_response([params.q, completions], content_type=SUGGESTIONS_TYPE, dumps=dumps)
    return web.json_response({"query": params.q, "suggestions": completions}, dumps=dumps)


# -- response shapes (for the API description) ----------------------------------------------


class YacyItem(Struct):
    title: str
    link: str
    description: str
    pubDate: Annotated[str, Meta(description="RFC 822 date, e.g. 'Tue, 15 Nov 1994 08:12:31 GMT'")]
    guid: str
    host: str
    path: str
    file: str
    urlhash: str
    ranking: str
    code: str = ""
    origin: Annotated[str, Meta(description="yasearch extension: 'local' or a peer ID")] = ""


class YacyChannel(Struct):
    title: str
    description: str
    link: str
    startIndex: str
    itemsPerPage: str
    searchTerms: str
    totalResults: str
    items: list[YacyItem]
    navigation: list[dict[str, Any]] = []


class YacySearch(Struct):
    """YaCy's yacysearch.json shape; as in YaCy, numbers are strings."""

    channels: list[YacyChannel]


def setup(app: web.Application) -> None:
    route(app, "GET", "/yacysearch.json", yacysearch_json, tag="compat", summary="YaCy-compatible search (JSON)",
          query=YacyQuery, response=YacySearch, errors=(400,))
    route(app, "GET", "/yacysearch.rss", yacysearch_rss, tag="compat",
          summary="YaCy-compatible search (RSS 2.0 with OpenSearch elements)", query=YacyQuery,
          response={"application/rss+xml": None}, errors=(400,))
    route(app, "GET", "/opensearch.xml", opensearch_xml, tag="compat",
          summary="OpenSearch 1.1 description, so browsers can add this peer as a search engine",
          response={OPENSEARCH_TYPE: None})
    route(app, "GET", "/api/v1/suggest", suggest, tag="search",
          summary="Complete the last word of a query from indexed titles", query=SuggestQuery,
          response={"application/json": Suggestions, SUGGESTIONS_TYPE: OpenSearchSuggestions}, errors=(400,))
