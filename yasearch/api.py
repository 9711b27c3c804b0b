"""The JSON API under /api/v1: search, crawl jobs, status, peers.

Handlers validate everything they receive and hand typed values to the Peer;
the Peer never sees a raw request.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from yasearch.crawler.types import CrawlSpec
from yasearch.crawler.urls import canonicalize
from yasearch.auth import require_admin
from yasearch.errors import ApiError
from yasearch.query import QueryError

if TYPE_CHECKING:
    from yasearch.peer import Peer

PEER_KEY: web.AppKey["Peer"] = web.AppKey("peer")

MAX_URLS = 10_000
MAX_URL_CHARS = 2048
MAX_DEPTH = 100
MAX_PAGES = 1_000_000
MAX_DELAY = 3600.0
MAX_PATTERNS = 50
MAX_PATTERN_CHARS = 500
MAX_LIMIT = 100
MAX_OFFSET = 10_000


def int_param(raw: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"{name} must be an integer, not {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise ApiError(400, "bad_parameter", f"{name} must be between {lo} and {hi}")
    return value


def query_param(raw: str | None, max_chars: int) -> str:
    q = (raw or "").strip()
    if not q:
        raise ApiError(400, "missing_query", "the query parameter q is missing or empty")
    if len(q) > max_chars:
        raise ApiError(400, "query_too_long", f"the query is {len(q)} characters; at most {max_chars} are accepted")
    return q


def scope_param(raw: str | None) -> str:
    scope = raw or "global"
    if scope not in ("global", "local"):
        raise ApiError(400, "bad_parameter", "scope must be 'global' or 'local'")
    return scope


def parse_crawl_spec(body: Any) -> CrawlSpec:
    """Validate a crawl request body; every message names the field at fault."""
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object like {\"urls\": [...], \"depth\": 2}")
    unknown = set(body) - {"urls", "depth", "max_pages", "delay", "allow", "deny", "same_site"}
    if unknown:
        raise ApiError(400, "bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
    urls = body.get("urls")
    if isinstance(urls, str):
        urls = [u for u in re.split(r"\s+", urls) if u and not u.startswith("#")]
    if not isinstance(urls, list) or not urls:
        raise ApiError(400, "bad_urls", "urls must be a non-empty list of http(s) URLs")
    if len(urls) > MAX_URLS:
        raise ApiError(413, "too_many_urls", f"at most {MAX_URLS} URLs per job")
    seeds: list[str] = []
    for u in urls:
        if not isinstance(u, str) or len(u) > MAX_URL_CHARS:
            raise ApiError(400, "bad_urls", f"not a URL (or longer than {MAX_URL_CHARS} characters): {str(u)[:80]!r}")
        canon = canonicalize(u.strip())
        if canon is None:
            raise ApiError(400, "bad_urls", f"not an absolute http(s) URL: {u[:200]!r}")
        if canon not in seeds:
            seeds.append(canon)

    def number(name: str, default: Any, lo: float, hi: float, kind: type) -> Any:
        v = body.get(name, default)
        if v is None and default is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not float(v).is_integer()):
            raise ApiError(400, "bad_parameter", f"{name} must be a{'n integer' if kind is int else ' number'}")
        if not lo <= v <= hi:
            raise ApiError(400, "bad_parameter", f"{name} must be between {lo:g} and {hi:g}")
        return kind(v)

    def patterns(name: str) -> list[str]:
        v = body.get(name, [])
        if isinstance(v, str):
            v = [v] if v else []
        if not isinstance(v, list) or len(v) > MAX_PATTERNS:
            raise ApiError(400, "bad_parameter", f"{name} must be a list of at most {MAX_PATTERNS} regexes")
        for p in v:
            if not isinstance(p, str) or len(p) > MAX_PATTERN_CHARS:
                raise ApiError(400, "bad_parameter", f"{name}: each regex is a string of at most {MAX_PATTERN_CHARS} characters")
            try:
                re.compile(p)
            except re.error as e:
                raise ApiError(400, "bad_parameter", f"{name}: invalid regex {p!r}: {e}") from None
        return list(v)

    same_site = body.get("same_site", False)
    if not isinstance(same_site, bool):
        raise ApiError(400, "bad_parameter", "same_site must be true or false")
    return CrawlSpec(
        urls=seeds,
        depth=number("depth", 2, 0, MAX_DEPTH, int),
        max_pages=number("max_pages", 100, 1, MAX_PAGES, int),
        delay=number("delay", None, 0, MAX_DELAY, float),
        allow=patterns("allow"),
        deny=patterns("deny"),
        same_site=same_site,
    )


async def read_json(request: web.Request, limit: int) -> Any:
    """The JSON body, refused with 413 past ``limit`` bytes (the app's client_max_size)."""
    too_large = ApiError(413, "too_large", f"the body is larger than the limit of {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        raw = await request.read()  # raises HTTPRequestEntityTooLarge past client_max_size
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None


# -- handlers -----------------------------------------------------------------


async def search(request: web.Request) -> web.Response:
    peer = request.app[PEER_KEY]
    q = query_param(request.query.get("q"), peer.config.max_query_chars)
    limit = int_param(request.query.get("limit"), "limit", 10, 1, MAX_LIMIT)
    offset = int_param(request.query.get("offset"), "offset", 0, 0, MAX_OFFSET)
    scope = scope_param(request.query.get("scope"))
    try:
        resp = await peer.search(q, limit=limit, offset=offset, scope=scope,
                                 facets=request.query.get("facets", "true").lower() not in ("false", "0", "no"))
    except QueryError as e:
        raise ApiError(400, "bad_query", str(e)) from None
    return web.json_response(resp.to_dict())


async def crawl_start(request: web.Request) -> web.Response:
    peer = request.app[PEER_KEY]
    require_admin(request, peer.config.admin_token)
    from yasearch import crawlconsole  # imports this module

    if crawlconsole.is_multipart(request):  # the console's form with a seed list file
        spec = parse_crawl_spec(crawlconsole.form_body(*await crawlconsole.read_crawl_form(request)))
    else:
        spec = parse_crawl_spec(await read_json(request, peer.config.max_request_bytes))
    job = await peer.start_crawl(spec)
    return web.json_response({"id": job.id, "state": job.state}, status=201)


async def crawl_list(request: web.Request) -> web.Response:
    peer = request.app[PEER_KEY]
    require_admin(request, peer.config.admin_token)
    return web.json_response({"jobs": [j.to_dict() for j in peer.jobs.list()]})


def _job(request: web.Request) -> Any:
    peer = request.app[PEER_KEY]
    require_admin(request, peer.config.admin_token)
    job = peer.jobs.get(request.match_info["id"])
    if job is None:
        raise ApiError(404, "no_such_job", f"there is no crawl job {request.match_info['id'][:40]!r}")
    return peer, job


async def crawl_get(request: web.Request) -> web.Response:
    _, job = _job(request)
    return web.json_response(job.to_dict())


async def crawl_action(request: web.Request) -> web.Response:
    peer, job = _job(request)
    action = request.match_info["action"]
    ok = {"pause": peer.jobs.pause, "resume": peer.jobs.resume, "cancel": peer.jobs.cancel}[action](job.id)
    if not ok:
        raise ApiError(409, "bad_state", f"cannot {action} a job that is {job.state}")
    return web.json_response(job.to_dict())


async def status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[PEER_KEY].status())


async def peers(request: web.Request) -> web.Response:
    return web.json_response({"peers": await request.app[PEER_KEY].peers()})


# -- the local index (admin): documents per host, look up and remove ----------------

#: Page sizes and offsets of the index listings (admin routes, but still bounded).
MAX_INDEX_LIMIT = 1000
MAX_INDEX_OFFSET = 10_000_000
MAX_HOST_CHARS = 300
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


def record_json(rec: Any) -> dict[str, Any]:
    return {
        "doc_id": rec.doc_id,
        "url": rec.url,
        "title": rec.title,
        "description": rec.description,
        "language": rec.language,
        "length": rec.length,
        "crawled_at": rec.crawled_at,
        "host": rec.host,
    }


def _admin_peer(request: web.Request) -> "Peer":
    peer = request.app[PEER_KEY]
    require_admin(request, peer.config.admin_token)
    return peer


async def index_lookup(request: web.Request) -> web.Response:
    peer = _admin_peer(request)
    url = url_param(request.query.get("url"))
    rec = await peer.lookup_url(url)
    if rec is None:
        raise ApiError(404, "not_indexed", f"not in this peer's index: {url[:200]}")
    return web.json_response(record_json(rec))


async def index_remove_url(request: web.Request) -> web.Response:
    peer = _admin_peer(request)
    url = url_param(request.query.get("url"))
    rec = await peer.lookup_url(url)
    if rec is None or not await peer.remove_url(rec.url):
        raise ApiError(404, "not_indexed", f"not in this peer's index: {url[:200]}")
    return web.json_response({"removed": 1, "url": rec.url, "doc_id": rec.doc_id})


async def index_hosts(request: web.Request) -> web.Response:
    peer = _admin_peer(request)
    limit = int_param(request.query.get("limit"), "limit", 100, 1, MAX_INDEX_LIMIT)
    offset = int_param(request.query.get("offset"), "offset", 0, 0, MAX_INDEX_OFFSET)
    hosts = await peer.documents_by_host()
    return web.json_response(
        {
            "total": len(hosts),
            "documents": sum(n for _, n in hosts),
            "offset": offset,
            "hosts": [{"host": h, "documents": n} for h, n in hosts[offset : offset + limit]],
        }
    )


async def index_host_documents(request: web.Request) -> web.Response:
    peer = _admin_peer(request)
    host = host_param(request.match_info["host"])
    limit = int_param(request.query.get("limit"), "limit", 100, 1, MAX_INDEX_LIMIT)
    offset = int_param(request.query.get("offset"), "offset", 0, 0, MAX_INDEX_OFFSET)
    total, recs = await peer.documents_of_host(host, offset, limit)
    if total == 0:
        raise ApiError(404, "not_indexed", f"no documents of host {host!r} in this peer's index")
    return web.json_response({"host": host, "total": total, "offset": offset, "documents": [record_json(r) for r in recs]})


async def index_remove_host(request: web.Request) -> web.Response:
    peer = _admin_peer(request)
    host = host_param(request.match_info["host"])
    removed = await peer.remove_host(host)
    if not removed:
        raise ApiError(404, "not_indexed", f"no documents of host {host!r} in this peer's index")
    return web.json_response({"removed": removed, "host": host})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/search", search)
    app.router.add_post("/api/v1/crawl", crawl_start)
    app.router.add_get("/api/v1/crawl", crawl_list)
    from yasearch import crawlconsole

    crawlconsole.setup(app)  # /api/v1/crawl/events: before /api/v1/crawl/{id} would match it
    app.router.add_get("/api/v1/crawl/{id}", crawl_get)
    app.router.add_post("/api/v1/crawl/{id}/{action:pause|resume|cancel}", crawl_action)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/peers", peers)
    app.router.add_get("/api/v1/index", index_lookup)
    app.router.add_delete("/api/v1/index", index_remove_url)
    app.router.add_get("/api/v1/index/hosts", index_hosts)
    app.router.add_get("/api/v1/index/hosts/{host}", index_host_documents)
    app.router.add_delete("/api/v1/index/hosts/{host}", index_remove_host)
