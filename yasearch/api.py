"""The JSON API under /api/v1: search, crawl jobs, status, peers, the local index.

Handlers validate everything they receive with the models of
:mod:`yasearch.apimodels` and hand typed values to the Peer; the Peer never sees
a raw request. Admin routes are declared ``admin=True`` in the route table and
checked by :mod:`yasearch.middleware`, not here.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from aiohttp import web

from yasearch import apimodels as m
from yasearch import crawlconsole
from yasearch.apiparams import host_param, parse_crawl_spec, parse_query, query_text, url_param
from yasearch.errors import ApiError
from yasearch.httpkit import PEER_KEY, route
from yasearch.query import QueryError

__all__ = ["parse_crawl_spec", "setup"]  # parse_crawl_spec: the CLI starts crawls with it too


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
    except RecursionError:
        raise ApiError(400, "bad_json", "the JSON is nested too deeply") from None


# -- handlers -----------------------------------------------------------------


def _json(value: Any, status: int = 200) -> web.Response:
    """A response model (or plain data) as JSON."""
    return web.json_response(msgspec.to_builtins(value), status=status)


async def search(request: web.Request) -> web.Response:
    peer = request.app[PEER_KEY]
    params = parse_query(request.query, m.SearchQuery)
    q = query_text(params.q, peer.config.max_query_chars)
    try:
        resp = await peer.search(q, limit=params.limit, offset=params.offset, scope=params.scope,
                                 facets=params.facets)
    except QueryError as e:
        raise ApiError(400, "bad_query", str(e)) from None
    return web.json_response(resp.to_dict())


async def crawl_start(request: web.Request) -> web.Response:
    peer = request.app[PEER_KEY]
    if crawlconsole.is_multipart(request):  # the console's form with a seed list file
        specs = crawlconsole.crawl_specs(*await crawlconsole.read_crawl_form(request))
    else:
        specs = [parse_crawl_spec(await read_json(request, peer.config.max_request_bytes))]
    jobs = [await peer.start_crawl(spec) for spec in specs]
    return _json(m.CrawlStarted(id=jobs[0].id, state=jobs[0].state, jobs=[j.id for j in jobs]), status=201)


async def crawl_list(request: web.Request) -> web.Response:
    return web.json_response({"jobs": [j.to_dict() for j in request.app[PEER_KEY].list_jobs()]})


def _job(request: web.Request) -> Any:
    job = request.app[PEER_KEY].get_job(request.match_info["id"])
    if job is None:
        raise ApiError(404, "no_such_job", f"there is no crawl job {request.match_info['id'][:40]!r}")
    return job


async def crawl_get(request: web.Request) -> web.Response:
    return web.json_response(_job(request).to_dict())


async def crawl_action(request: web.Request) -> web.Response:
    job = _job(request)
    action = request.match_info["action"]
    if not request.app[PEER_KEY].control_job(job.id, action):
        raise ApiError(409, "bad_state", f"cannot {action} a job that is {job.state}")
    return web.json_response(job.to_dict())


async def crawl_delete(request: web.Request) -> web.Response:
    job = _job(request)
    if not await request.app[PEER_KEY].delete_job(job.id):
        raise ApiError(409, "bad_state", f"cannot delete a job that is {job.state}; cancel it first")
    return web.json_response(job.to_dict())


async def status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[PEER_KEY].status())


async def peers(request: web.Request) -> web.Response:
    return web.json_response({"peers": await request.app[PEER_KEY].peers()})


# -- the local index (admin): documents per host, look up and remove ----------------


def _url(request: web.Request) -> str:
    return url_param(parse_query(request.query, m.UrlQuery).url)


async def index_lookup(request: web.Request) -> web.Response:
    url = _url(request)
    rec = await request.app[PEER_KEY].lookup_url(url)
    if rec is None:
        raise ApiError(404, "not_indexed", f"not in this peer's index: {url[:200]}")
    return _json(m.index_record(rec))


async def index_remove_url(request: web.Request) -> web.Response:
    peer = request.app[PEER_KEY]
    url = _url(request)
    rec = await peer.lookup_url(url)
    if rec is None or not await peer.remove_url(rec.url):
        raise ApiError(404, "not_indexed", f"not in this peer's index: {url[:200]}")
    return _json(m.Removed(removed=1, url=rec.url, doc_id=rec.doc_id))


async def index_hosts(request: web.Request) -> web.Response:
    page = parse_query(request.query, m.IndexPageQuery)
    hosts = await request.app[PEER_KEY].documents_by_host()
    shown = hosts[page.offset : page.offset + page.limit]
    return _json(
        m.IndexHosts(
            total=len(hosts),
            documents=sum(n for _, n in hosts),
            offset=page.offset,
            hosts=[m.HostCount(host=h, documents=n) for h, n in shown],
        )
    )


async def index_host_documents(request: web.Request) -> web.Response:
    host = host_param(request.match_info["host"])
    page = parse_query(request.query, m.IndexPageQuery)
    total, recs = await request.app[PEER_KEY].documents_of_host(host, page.offset, page.limit)
    if total == 0:
        raise ApiError(404, "not_indexed", f"no documents of host {host!r} in this peer's index")
    return _json(m.HostDocuments(host=host, total=total, offset=page.offset, documents=[m.index_record(r) for r in recs]))


async def index_remove_host(request: web.Request) -> web.Response:
    host = host_param(request.match_info["host"])
    removed = await request.app[PEER_KEY].remove_host(host)
    if not removed:
        raise ApiError(404, "not_indexed", f"no documents of host {host!r} in this peer's index")
    return _json(m.Removed(removed=removed, host=host))


_ID = {"id": "the job's ID"}
_HOST = {"host": "host[:port], as listed by /api/v1/index/hosts"}


def setup(app: web.Application) -> None:
    route(app, "GET", "/api/v1/search", search, tag="search", summary="Search the network (or only this peer)",
          query=m.SearchQuery, response=m.SearchResponse, errors=(400,))
    route(app, "POST", "/api/v1/crawl", crawl_start, tag="crawl", admin=True, summary="Start a crawl job (admin)",
          description=(
              "JSON, or multipart/form-data with the crawl form's fields as text and a seed list file "
              f"(`seeds`: UTF-8, one URL per line, `#` comments, at most 1 MiB and {m.MAX_URLS:,} URLs; per-line "
              "options such as `depth=3 same_site` start one job per distinct option set, listed in `jobs`)."
          ),
          body={"application/json": m.CrawlRequest, "multipart/form-data": m.CrawlForm},
          response=m.CrawlStarted, status=201, errors=(400, 413))
    route(app, "GET", "/api/v1/crawl", crawl_list, tag="crawl", admin=True,
          summary="Every crawl job with its progress, newest first (admin)", response=m.JobList)
    crawlconsole.setup(app)  # /api/v1/crawl/events: before /api/v1/crawl/{id} would match it
    route(app, "GET", "/api/v1/crawl/{id}", crawl_get, tag="crawl", admin=True, summary="One job's progress (admin)",
          response=m.Job, errors=(404,), path_params=_ID)
    route(app, "POST", "/api/v1/crawl/{id}/{action:pause|resume|cancel}", crawl_action, tag="crawl", admin=True,
          summary="Pause, resume or cancel a job (admin)", response=m.Job, errors=(404, 409), path_params=_ID)
    route(app, "DELETE", "/api/v1/crawl/{id}", crawl_delete, tag="crawl", admin=True,
          summary="Forget a finished job and its frontier; answers its last record (admin)",
          response=m.Job, errors=(404, 409), path_params=_ID)
    route(app, "GET", "/api/v1/status", status, tag="peer", summary="This peer: index, DHT, crawl and publish figures",
          response=m.Status)
    route(app, "GET", "/api/v1/peers", peers, tag="peer", summary="This peer and the peers it knows", response=m.PeerList)
    route(app, "GET", "/api/v1/index", index_lookup, tag="index", admin=True,
          summary="Look up one URL in this peer's index (admin)", query=m.UrlQuery, response=m.IndexRecord, errors=(400, 404))
    route(app, "DELETE", "/api/v1/index", index_remove_url, tag="index", admin=True,
          summary="Remove one URL from this peer's index and withdraw its postings from the network (admin)",
          query=m.UrlQuery, response=m.Removed, errors=(400, 404))
    route(app, "GET", "/api/v1/index/hosts", index_hosts, tag="index", admin=True,
          summary="Documents per host in this peer's index (admin)", query=m.IndexPageQuery, response=m.IndexHosts,
          errors=(400,))
    route(app, "GET", "/api/v1/index/hosts/{host}", index_host_documents, tag="index", admin=True,
          summary="One host's documents in this peer's index, by URL (admin)", query=m.IndexPageQuery,
          response=m.HostDocuments, errors=(400, 404), path_params=_HOST)
    route(app, "DELETE", "/api/v1/index/hosts/{host}", index_remove_host, tag="index", admin=True,
          summary="Remove every document of a host from this peer's index and withdraw their postings (admin)",
          response=m.Removed, errors=(400, 404), path_params=_HOST)
