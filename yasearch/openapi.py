"""The API's own description: OpenAPI 3.1 at /api/v1/openapi.json, and a readable page.

One data structure (:func:`spec`) describes every public route; the JSON document
and the HTML page at ``/api/v1/docs`` are both rendered from it, so they cannot
disagree. ``tests/test_public_api.py`` checks that every route the app registers
under ``/api/v1/`` is described here and that the document validates, so a new
route without a description fails the suite.
"""

from __future__ import annotations

import copy
import json
import re
from html import escape
from typing import Any

from aiohttp import web

from yasearch import __version__
from yasearch.api import MAX_HOST_CHARS, MAX_INDEX_LIMIT, MAX_INDEX_OFFSET, MAX_LIMIT, MAX_OFFSET, MAX_URL_CHARS
from yasearch.compat import MAX_RECORDS, OPENSEARCH_TYPE, SUGGESTIONS_TYPE, base_url
from yasearch.suggest import MAX_SUGGEST_LIMIT, MAX_SUGGEST_QUERY_CHARS

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _err(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _q(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


_INT = {"type": "integer"}
_STR = {"type": "string"}
_NUM = {"type": "number"}
_COUNT = {"type": "integer", "minimum": 0}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "Every JSON error has this shape, whatever the route and status.",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "stable machine-readable code, e.g. bad_parameter", "examples": ["bad_parameter"]},
                    "message": {"type": "string", "description": "what went wrong, for people"},
                },
            }
        },
    },
    "SearchHit": {
        "type": "object",
        "required": ["url", "title", "snippet", "snippet_html", "score", "origin"],
        "properties": {
            "url": {"type": "string", "format": "uri"},
            "title": _STR,
            "snippet": {"type": "string", "description": "plain text"},
            "snippet_html": {"type": "string", "description": "HTML-escaped snippet with <mark> around query terms; safe to embed"},
            "score": {"type": "number", "description": "BM25 with network-wide statistics; comparable across peers"},
            "origin": {"type": "string", "description": "'local' or the ID of the peer that held the result"},
            "doc_id": {"type": "string", "description": "hex SHA-1 of the canonical URL"},
            "host": _STR,
            "language": _STR,
            "crawled_at": {"type": "number", "description": "Unix time"},
        },
    },
    "SearchResponse": {
        "type": "object",
        "required": ["query", "total", "took_ms", "results", "peers"],
        "properties": {
            "query": _STR,
            "total": {**_COUNT, "description": "matching documents (an estimate for global searches)"},
            "took_ms": _NUM,
            "results": {"type": "array", "items": _ref("SearchHit")},
            "offset": _COUNT,
            "limit": _INT,
            "scope": {"type": "string", "enum": ["global", "local"]},
            "peers": {
                "type": "object",
                "properties": {"asked": _COUNT, "answered": _COUNT, "failed": _COUNT},
            },
            "facets": {
                "type": "object",
                "description": (
                    "navigators: matches per host and per language (primary subtag), most frequent first, "
                    "at most 10 each, counted over the best 1,000 ranked matches; refine with site:HOST or lang:LANG"
                ),
                "properties": {
                    "host": {"type": "array", "items": {"$ref": "#/components/schemas/FacetCount"}},
                    "language": {"type": "array", "items": {"$ref": "#/components/schemas/FacetCount"}},
                },
            },
            "total_estimated": {
                "type": "boolean",
                "description": "total is an estimate: the best results were found without visiting every match",
            },
        },
    },
    "FacetCount": {
        "type": "array",
        "description": "[value, number of matching documents]",
        "prefixItems": [_STR, _COUNT],
        "minItems": 2,
        "maxItems": 2,
        "examples": [["example.org", 12]],
    },
    "CrawlRequest": {
        "type": "object",
        "required": ["urls"],
        "additionalProperties": False,
        "properties": {
            "urls": {
                "description": "seed URLs (a list, or one string of whitespace-separated URLs; '#' lines are comments)",
                "oneOf": [
                    {"type": "array", "items": {"type": "string", "maxLength": 2048}, "minItems": 1, "maxItems": 10000},
                    {"type": "string"},
                ],
            },
            "depth": {"type": "integer", "minimum": 0, "maximum": 100, "default": 2},
            "max_pages": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 100},
            "delay": {"type": ["number", "null"], "minimum": 0, "maximum": 3600, "description": "seconds between requests to one host; robots.txt Crawl-delay wins when larger"},
            "allow": {"type": "array", "items": {"type": "string", "maxLength": 500}, "maxItems": 50, "description": "URL regexes; only matching URLs are crawled"},
            "deny": {"type": "array", "items": {"type": "string", "maxLength": 500}, "maxItems": 50, "description": "URL regexes never crawled"},
            "same_site": {"type": "boolean", "default": False, "description": "only follow links to the seeds' hosts"},
        },
        "examples": [{"urls": ["https://example.org/"], "depth": 2, "max_pages": 100}],
    },
    "CrawlStarted": {
        "type": "object",
        "required": ["id", "state"],
        "properties": {"id": _STR, "state": {"type": "string", "enum": ["running"]}},
    },
    "Job": {
        "type": "object",
        "required": ["id", "state", "queued", "fetched", "indexed", "failed", "published"],
        "properties": {
            "id": _STR,
            "state": {"type": "string", "enum": ["running", "paused", "done", "cancelled"]},
            "created": {"type": "number", "description": "Unix time"},
            "queued": _COUNT,
            "fetched": _COUNT,
            "indexed": _COUNT,
            "failed": _COUNT,
            "published": _COUNT,
            "skipped": _COUNT,
            "pages_per_second": _NUM,
            "failures": {"type": "object", "additionalProperties": _INT, "description": "failure reason -> count"},
            "recent_failures": {
                "type": "array",
                "items": {"type": "object", "properties": {"url": _STR, "reason": _STR, "time": _NUM}},
            },
            "spec": {"type": "object", "description": "the crawl request as accepted"},
        },
    },
    "JobList": {"type": "object", "required": ["jobs"], "properties": {"jobs": {"type": "array", "items": _ref("Job")}}},
    "Status": {
        "type": "object",
        "required": ["peer_id", "name", "version", "documents", "postings_held", "peers_known", "crawl", "publish"],
        "properties": {
            "peer_id": {"type": "string", "description": "160-bit node ID, hex"},
            "name": _STR,
            "version": _STR,
            "url": _STR,
            "uptime_s": _NUM,
            "documents": _COUNT,
            "postings_held": {**_COUNT, "description": "postings this peer holds for the DHT"},
            "peers_known": _COUNT,
            "crawl": {"type": "object"},
            "publish": {"type": "object", "properties": {"pending": _COUNT, "sent": _COUNT, "failed": _COUNT}},
            "dht": {"type": "object"},
            "network": {"type": "object"},
            "index": {"type": "object"},
        },
    },
    "Peer": {
        "type": "object",
        "required": ["peer_id", "url", "self"],
        "properties": {
            "peer_id": _STR,
            "name": _STR,
            "url": _STR,
            "version": _STR,
            "documents": _COUNT,
            "self": {"type": "boolean", "description": "true for the answering peer"},
            "last_seen": _NUM,
        },
    },
    "PeerList": {"type": "object", "required": ["peers"], "properties": {"peers": {"type": "array", "items": _ref("Peer")}}},
    "IndexRecord": {
        "type": "object",
        "description": "One document of this peer's local index",
        "required": ["doc_id", "url", "title", "language", "length", "crawled_at", "host"],
        "properties": {
            "doc_id": {"type": "string", "description": "hex SHA-1 of the canonical URL"},
            "url": _STR,
            "title": _STR,
            "description": _STR,
            "language": _STR,
            "length": {**_COUNT, "description": "document length in analyzed terms (BM25's |d|)"},
            "crawled_at": {"type": "number", "description": "Unix time"},
            "host": {"type": "string", "description": "host[:port], lowercase"},
        },
    },
    "IndexHosts": {
        "type": "object",
        "required": ["total", "documents", "offset", "hosts"],
        "properties": {
            "total": {**_COUNT, "description": "hosts in the index"},
            "documents": {**_COUNT, "description": "documents in the index"},
            "offset": _COUNT,
            "hosts": {
                "type": "array",
                "description": "most documents first",
                "items": {"type": "object", "required": ["host", "documents"], "properties": {"host": _STR, "documents": _COUNT}},
            },
        },
    },
    "HostDocuments": {
        "type": "object",
        "required": ["host", "total", "offset", "documents"],
        "properties": {
            "host": _STR,
            "total": _COUNT,
            "offset": _COUNT,
            "documents": {"type": "array", "description": "ordered by URL", "items": _ref("IndexRecord")},
        },
    },
    "Removed": {
        "type": "object",
        "required": ["removed"],
        "properties": {
            "removed": {**_COUNT, "description": "documents removed from the index; their postings are being withdrawn from the network"},
            "url": _STR,
            "doc_id": _STR,
            "host": _STR,
        },
    },
    "Suggestions": {
        "type": "object",
        "required": ["query", "suggestions"],
        "properties": {"query": _STR, "suggestions": {"type": "array", "items": _STR}},
    },
    "OpenSearchSuggestions": {
        "type": "array",
        "description": "OpenSearch suggestions format: [query, [completions...]]",
        "prefixItems": [_STR, {"type": "array", "items": _STR}],
        "minItems": 2,
    },
    "YacySearch": {
        "type": "object",
        "description": "YaCy's yacysearch.json shape; as in YaCy, numbers are strings.",
        "required": ["channels"],
        "properties": {
            "channels": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["title", "description", "link", "startIndex", "itemsPerPage", "searchTerms", "totalResults", "items"],
                    "properties": {
                        "title": _STR,
                        "description": _STR,
                        "link": _STR,
                        "startIndex": _STR,
                        "itemsPerPage": _STR,
                        "searchTerms": _STR,
                        "totalResults": _STR,
                        "items": {"type": "array", "items": _ref("YacyItem")},
                        "navigation": {"type": "array", "items": {"type": "object"}},
                    },
                },
            }
        },
    },
    "YacyItem": {
        "type": "object",
        "required": ["title", "link", "description", "pubDate", "guid", "host", "path", "file", "urlhash", "ranking"],
        "properties": {
            "title": _STR,
            "link": _STR,
            "code": _STR,
            "description": _STR,
            "pubDate": {"type": "string", "description": "RFC 822 date, e.g. 'Tue, 15 Nov 1994 08:12:31 GMT'"},
            "guid": _STR,
            "host": _STR,
            "path": _STR,
            "file": _STR,
            "urlhash": _STR,
            "ranking": _STR,
            "origin": {"type": "string", "description": "yasearch extension: 'local' or a peer ID"},
        },
    },
}

RESPONSES: dict[str, Any] = {
    name: _json(_ref("Error"), desc)
    for name, desc in {
        "BadRequest": "Bad parameters or body (the message names the one at fault)",
        "Forbidden": "Admin route: loopback clients only, or 'Authorization: Bearer <admin_token>' when a token is configured",
        "NotFound": "No such thing",
        "Conflict": "The action does not fit the current state",
        "TooLarge": "The request body is over the size limit",
    }.items()
}

# -- crawl console: seed list form and event streams --------------------------------

SCHEMAS["CrawlForm"] = {
    "type": "object",
    "description": "The crawl console's form: CrawlRequest's fields as text, plus a seed list file.",
    "properties": {
        "urls": {"type": "string", "description": "seed URLs, one per line"},
        "seeds": {"type": "string", "contentMediaType": "text/plain", "description": "seed list file: UTF-8, one URL per line, '#' starts a comment; at most 1 MiB and 10,000 URLs"},
        "depth": {"type": "string", "description": "integer, as in CrawlRequest"},
        "max_pages": {"type": "string", "description": "integer, as in CrawlRequest"},
        "delay": {"type": "string", "description": "seconds, as in CrawlRequest"},
        "allow": {"type": "string", "description": "URL regexes, one per line"},
        "deny": {"type": "string", "description": "URL regexes, one per line"},
        "same_site": {"type": "string", "description": "any value but empty/0/false/off: true"},
    },
}
RESPONSES["Busy"] = _json(_ref("Error"), "Too many open event streams; poll instead")
_SSE_DESCRIPTION = (
    "A text/event-stream: one event at once, then one whenever something changed (at most one a second "
    "while counters move, at once when a job changes state, once a second while a job runs), a comment "
    "line as heartbeat, a `bye` event when the peer shuts down. Streams end after an hour; EventSource reconnects. "
    "A job in an event lists at most 10 seed URLs in `spec.urls`; `spec.url_count` says how many it has."
)
_SSE_RESPONSE = {
    "description": "Server-Sent Events; the `data:` of each default event is JSON",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}

_YACY_PARAMS = [
    _q("query", {"type": "string", "minLength": 1}, "the search query (alias: search)", required=True),
    _q("maximumRecords", {"type": "integer", "minimum": 1, "maximum": MAX_RECORDS, "default": 10}, "results per page (aliases: count, rows)"),
    _q("startRecord", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}, "0-based offset of the first result (aliases: offset, start)"),
    _q("resource", {"type": "string", "enum": ["global", "local"], "default": "global"}, "search the network or only this peer's index"),
    _q("contentdom", {"type": "string", "default": "text"}, "YaCy content domain; text (yasearch indexes no media: image/audio/video/app answer no items)"),
]

_SEARCH_TAGS = ["search"]


def spec() -> dict[str, Any]:
    """The OpenAPI 3.1 document (without servers; see :func:`document`)."""
    admin = {"403": _err("Forbidden")}
    paths: dict[str, Any] = {
        "/api/v1/search": {
            "get": {
                "operationId": "search",
                "tags": _SEARCH_TAGS,
                "summary": "Search the network (or only this peer)",
                "parameters": [
                    _q("q", {"type": "string", "minLength": 1}, "query: words, \"phrases\", -exclude, site:host, lang:xx (at most the peer's max_query_chars, 512 by default)", required=True),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 10}, "results per page"),
                    _q("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}, "results to skip"),
                    _q("scope", {"type": "string", "enum": ["global", "local"], "default": "global"}, "global: the DHT and this peer; local: this peer's index only"),
                    _q("facets", {"type": "boolean", "default": True}, "count the matches by host and language (false: skip, faster for local search)"),
                ],
                "responses": {"200": _json(_ref("SearchResponse"), "Ranked results"), "400": _err("BadRequest")},
            }
        },
        "/api/v1/suggest": {
            "get": {
                "operationId": "suggest",
                "tags": _SEARCH_TAGS,
                "summary": "Complete the last word of a query from indexed titles",
                "parameters": [
                    _q("q", {"type": "string", "maxLength": MAX_SUGGEST_QUERY_CHARS}, "what was typed so far", required=True),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_SUGGEST_LIMIT, "default": 10}, "completions at most"),
                    _q("format", {"type": "string", "enum": ["json", "opensearch"], "default": "json"}, "json: {query, suggestions}; opensearch: [query, [completions]]"),
                ],
                "responses": {
                    "200": {
                        "description": "Whole-query completions, best first",
                        "content": {JSON: {"schema": _ref("Suggestions")}, SUGGESTIONS_TYPE: {"schema": _ref("OpenSearchSuggestions")}},
                    },
                    "400": _err("BadRequest"),
                },
            }
        },
        "/api/v1/crawl": {
            "post": {
                "operationId": "startCrawl",
                "tags": ["crawl"],
                "summary": "Start a crawl job (admin)",
                "description": (
                    "JSON, or multipart/form-data with the crawl form's fields as text and a seed list file "
                    "(`seeds`: UTF-8, one URL per line, `#` comments, at most 1 MiB and 10,000 URLs)."
                ),
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("CrawlRequest")}, "multipart/form-data": {"schema": _ref("CrawlForm")}},
                },
                "responses": {
                    "201": _json(_ref("CrawlStarted"), "The job was created and is running"),
                    "400": _err("BadRequest"),
                    **admin,
                    "413": _err("TooLarge"),
                },
            },
            "get": {
                "operationId": "listCrawls",
                "tags": ["crawl"],
                "summary": "Every crawl job with its progress, newest first (admin)",
                "responses": {"200": _json(_ref("JobList"), "The jobs"), **admin},
            },
        },
        "/api/v1/crawl/{id}": {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": _STR}],
            "get": {
                "operationId": "getCrawl",
                "tags": ["crawl"],
                "summary": "One job's progress (admin)",
                "responses": {"200": _json(_ref("Job"), "The job"), **admin, "404": _err("NotFound")},
            },
        },
        "/api/v1/crawl/{id}/{action}": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": _STR},
                {"name": "action", "in": "path", "required": True, "schema": {"type": "string", "enum": ["pause", "resume", "cancel"]}},
            ],
            "post": {
                "operationId": "controlCrawl",
                "tags": ["crawl"],
                "summary": "Pause, resume or cancel a job (admin)",
                "responses": {
                    "200": _json(_ref("Job"), "The job after the action"),
                    **admin,
                    "404": _err("NotFound"),
                    "409": _err("Conflict"),
                },
            },
        },
        "/api/v1/crawl/events": {
            "get": {
                "operationId": "crawlEvents",
                "tags": ["crawl"],
                "summary": "Live progress of every job as Server-Sent Events (admin)",
                "description": _SSE_DESCRIPTION + " Each `data:` line is a JobList.",
                "responses": {"200": _SSE_RESPONSE, **admin, "503": _err("Busy")},
            }
        },
        "/api/v1/crawl/{id}/events": {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": _STR}],
            "get": {
                "operationId": "crawlJobEvents",
                "tags": ["crawl"],
                "summary": "Live progress of one job as Server-Sent Events (admin)",
                "description": _SSE_DESCRIPTION + " Each `data:` line is a Job; an `end` event follows the last one when the job is done or cancelled, and the stream ends.",
                "responses": {"200": _SSE_RESPONSE, **admin, "404": _err("NotFound"), "503": _err("Busy")},
            }
        },
        "/api/v1/status": {
            "get": {
                "operationId": "status",
                "tags": ["peer"],
                "summary": "This peer: index, DHT, crawl and publish figures",
                "responses": {"200": _json(_ref("Status"), "Figures (more fields than listed may appear)")},
            }
        },
        "/api/v1/peers": {
            "get": {
                "operationId": "peers",
                "tags": ["peer"],
                "summary": "This peer and the peers it knows",
                "responses": {"200": _json(_ref("PeerList"), "Peers, this one first")},
            }
        },
        "/api/v1/index": {
            "parameters": [
                _q("url", {"type": "string", "minLength": 1, "maxLength": MAX_URL_CHARS}, "an absolute http(s) URL (any spelling that canonicalizes to the indexed one)", required=True),
            ],
            "get": {
                "operationId": "indexLookup",
                "tags": ["index"],
                "summary": "Look up one URL in this peer's index (admin)",
                "responses": {"200": _json(_ref("IndexRecord"), "The document's record"), "400": _err("BadRequest"), **admin, "404": _err("NotFound")},
            },
            "delete": {
                "operationId": "indexRemoveUrl",
                "tags": ["index"],
                "summary": "Remove one URL from this peer's index and withdraw its postings from the network (admin)",
                "responses": {"200": _json(_ref("Removed"), "Removed"), "400": _err("BadRequest"), **admin, "404": _err("NotFound")},
            },
        },
        "/api/v1/index/hosts": {
            "get": {
                "operationId": "indexHosts",
                "tags": ["index"],
                "summary": "Documents per host in this peer's index (admin)",
                "parameters": [
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_INDEX_LIMIT, "default": 100}, "hosts per page"),
                    _q("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INDEX_OFFSET, "default": 0}, "hosts to skip"),
                ],
                "responses": {"200": _json(_ref("IndexHosts"), "Hosts, most documents first"), "400": _err("BadRequest"), **admin},
            },
        },
        "/api/v1/index/hosts/{host}": {
            "parameters": [{"name": "host", "in": "path", "required": True, "description": "host[:port], as listed by /api/v1/index/hosts", "schema": {"type": "string", "maxLength": MAX_HOST_CHARS}}],
            "get": {
                "operationId": "indexHostDocuments",
                "tags": ["index"],
                "summary": "One host's documents in this peer's index, by URL (admin)",
                "parameters": [
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_INDEX_LIMIT, "default": 100}, "documents per page"),
                    _q("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INDEX_OFFSET, "default": 0}, "documents to skip"),
                ],
                "responses": {"200": _json(_ref("HostDocuments"), "The host's documents"), "400": _err("BadRequest"), **admin, "404": _err("NotFound")},
            },
            "delete": {
                "operationId": "indexRemoveHost",
                "tags": ["index"],
                "summary": "Remove every document of a host from this peer's index and withdraw their postings (admin)",
                "responses": {"200": _json(_ref("Removed"), "Removed"), "400": _err("BadRequest"), **admin, "404": _err("NotFound")},
            },
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "tags": ["meta"],
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
            }
        },
        "/api/v1/docs": {
            "get": {
                "operationId": "apiDocs",
                "tags": ["meta"],
                "summary": "This document as a readable HTML page",
                "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": _STR}}}},
            }
        },
        "/yacysearch.json": {
            "get": {
                "operationId": "yacySearchJson",
                "tags": ["compat"],
                "summary": "YaCy-compatible search (JSON)",
                "parameters": _YACY_PARAMS,
                "responses": {"200": _json(_ref("YacySearch"), "YaCy's result shape"), "400": _err("BadRequest")},
            }
        },
        "/yacysearch.rss": {
            "get": {
                "operationId": "yacySearchRss",
                "tags": ["compat"],
                "summary": "YaCy-compatible search (RSS 2.0 with OpenSearch elements)",
                "parameters": _YACY_PARAMS,
                "responses": {
                    "200": {"description": "RSS 2.0 feed", "content": {"application/rss+xml": {"schema": _STR}}},
                    "400": {"description": "Bad parameters (plain-text message)", "content": {"text/plain": {"schema": _STR}}},
                },
            }
        },
        "/opensearch.xml": {
            "get": {
                "operationId": "openSearchDescription",
                "tags": ["compat"],
                "summary": "OpenSearch 1.1 description, so browsers can add this peer as a search engine",
                "responses": {"200": {"description": "OpenSearch description", "content": {OPENSEARCH_TYPE: {"schema": _STR}}}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "yasearch API",
            "version": __version__,
            "summary": "Peer-to-peer web search: search, suggestions, crawl jobs, peer status",
            "description": (
                "The JSON API of one yasearch peer. Admin routes (crawl) answer loopback clients only, "
                "unless the peer has an admin token: then send `Authorization: Bearer <token>`. "
                "Every JSON error is `{\"error\": {\"code\", \"message\"}}`. "
                "The peer-to-peer protocol under /p2p/v1 is for peers and is not described here."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": "search", "description": "Searching and completions"},
            {"name": "crawl", "description": "Crawl jobs (admin)"},
            {"name": "index", "description": "This peer's local index: browse, look up, remove (admin)"},
            {"name": "peer", "description": "This peer and the network"},
            {"name": "compat", "description": "YaCy and OpenSearch compatible routes"},
            {"name": "meta", "description": "This description"},
        ],
        "paths": paths,
        "components": {"schemas": copy.deepcopy(SCHEMAS), "responses": copy.deepcopy(RESPONSES)},
    }


def document(base: str | None = None) -> dict[str, Any]:
    doc = spec()
    if base:
        doc["servers"] = [{"url": base}]
    return doc


# -- the readable page -------------------------------------------------------------------

_METHODS = ("get", "post", "put", "patch", "delete")

_CSS = """
:root{color-scheme:light dark;--fg:#1b1b1f;--bg:#fff;--muted:#5f6368;--line:#dadce0;--code:#f1f3f4;--accent:#1a5fb4}
@media (prefers-color-scheme:dark){:root{--fg:#e8eaed;--bg:#17181a;--muted:#9aa0a6;--line:#3c4043;--code:#24262a;--accent:#8ab4f8}}
body{font:15px/1.5 system-ui,sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;max-width:60rem;padding:1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid var(--line)}
code,pre{font:13px/1.4 ui-monospace,monospace;background:var(--code);border-radius:4px}code{padding:0 .25rem}
pre{padding:.5rem;overflow-x:auto}section.op{border:1px solid var(--line);border-radius:6px;padding:.5rem 1rem;margin:1rem 0}
.m{font-weight:700;text-transform:uppercase;color:var(--accent)}table{border-collapse:collapse;width:100%;font-size:14px}
td,th{border-top:1px solid var(--line);padding:.25rem .5rem;text-align:left;vertical-align:top}.muted{color:var(--muted)}
a{color:var(--accent)}details{margin:.25rem 0}
"""


def _schema_text(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    t = schema.get("type", "")
    t = " | ".join(t) if isinstance(t, list) else t
    if "enum" in schema:
        t += " (" + ", ".join(json.dumps(v) for v in schema["enum"]) + ")"
    bits = []
    for key, label in (("minimum", "min"), ("maximum", "max"), ("maxLength", "max length"), ("default", "default")):
        if key in schema:
            bits.append(f"{label} {json.dumps(schema[key])}")
    return t + (f"; {', '.join(bits)}" if bits else "")


def _schema_html(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = escape(schema["$ref"].rsplit("/", 1)[-1])
        return f'<a href="#schema-{name}">{name}</a>'
    return escape(_schema_text(schema))


def render_html(doc: dict[str, Any]) -> str:
    info = doc["info"]
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        f"<title>{escape(info['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(info['title'])} <span class=muted>{escape(info['version'])}</span></h1>",
        "<p>" + re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(info["description"])) + "</p>",
        '<p>Machine-readable: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> (OpenAPI 3.1)</p>',
        "<nav><ul>",
    ]
    ops: list[tuple[str, str, dict[str, Any], list[dict[str, Any]]]] = []
    for path, item in doc["paths"].items():
        for method in _METHODS:
            if method in item:
                ops.append((path, method, item[method], item.get("parameters", [])))
    for path, method, op, _ in ops:
        out.append(f'<li><a href="#{escape(op["operationId"])}"><code>{method.upper()} {escape(path)}</code></a> {escape(op.get("summary", ""))}</li>')
    out.append("</ul></nav>")
    for tag in doc.get("tags", []):
        tagged = [o for o in ops if tag["name"] in o[2].get("tags", [])]
        if not tagged:
            continue
        out.append(f"<h2>{escape(tag['name'])}: {escape(tag.get('description', ''))}</h2>")
        for path, method, op, shared_params in tagged:
            out.append(f'<section class=op id="{escape(op["operationId"])}">')
            out.append(f"<h3><span class=m>{method}</span> <code>{escape(path)}</code></h3><p>{escape(op.get('summary', ''))}</p>")
            params = shared_params + op.get("parameters", [])
            if params:
                out.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>")
                for p in params:
                    req = " <b>required</b>" if p.get("required") else ""
                    out.append(
                        f"<tr><td><code>{escape(p['name'])}</code>{req}</td><td>{escape(p['in'])}</td>"
                        f"<td>{escape(_schema_text(p.get('schema', {})))}</td><td>{escape(p.get('description', ''))}</td></tr>"
                    )
                out.append("</table>")
            body = op.get("requestBody")
            if body:
                for ctype, media in body.get("content", {}).items():
                    out.append(f"<p>Request body (<code>{escape(ctype)}</code>): {_schema_html(media['schema'])}</p>")
            out.append("<table><tr><th>status</th><th>response</th></tr>")
            for status, resp in op.get("responses", {}).items():
                if "$ref" in resp:
                    name = resp["$ref"].rsplit("/", 1)[-1]
                    resp = doc["components"]["responses"][name]
                kinds = ", ".join(
                    f"<code>{escape(ct)}</code> {_schema_html(m.get('schema', {}))}" for ct, m in resp.get("content", {}).items()
                )
                out.append(f"<tr><td>{escape(status)}</td><td>{escape(resp.get('description', ''))} {kinds}</td></tr>")
            out.append("</table></section>")
    out.append("<h2>Schemas</h2>")
    for name, schema in doc["components"]["schemas"].items():
        out.append(f'<details id="schema-{escape(name)}"><summary><code>{escape(name)}</code> {escape(schema.get("description", ""))}</summary>')
        out.append(f"<pre>{escape(json.dumps(schema, indent=2))}</pre></details>")
    out.append("</body></html>")
    return "\n".join(out)


# -- handlers -------------------------------------------------------------------------------


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(base_url(request)), dumps=lambda o: json.dumps(o, indent=1))


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=render_html(document(base_url(request))), content_type="text/html")


async def docs_redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/api/v1/docs")


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi_json)
    app.router.add_get("/api/v1/docs", docs_page)
    app.router.add_get("/api", docs_redirect)
    app.router.add_get("/api/v1", docs_redirect)
