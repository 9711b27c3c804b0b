"""The index browser: documents per host, look up a URL, remove a URL or a whole host.

Admin-only, by the same rule as the admin API and the crawl console: loopback
clients, or, when the peer has an admin token, clients presenting it (a cookie set
by the login form here, or ``Authorization: Bearer``); yasearch.middleware applies
it and answers refused clients with :func:`refuse`'s page. Removals are POST forms,
refused when cross-site (CSRF), behind a confirmation page
(a GET that changes nothing), and end in a redirect (POST/redirect/GET) whose
query string names what was removed, so reloading the result page removes nothing.

Removing goes through :meth:`Peer.remove_url` / :meth:`Peer.remove_host`: the
documents leave the local index at once and their postings are withdrawn from the
peers that hold them through the publisher's persistent queue.

Input validation is the JSON API's (:func:`yasearch.apiparams.url_param`,
:func:`yasearch.apiparams.host_param`), so the page and the API accept the same things.
Everything shown from the index (titles, URLs, hosts) is hostile crawled input and
is only ever autoescaped; links to crawled URLs go through the ``href`` filter.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from yasearch.apimodels import MAX_HOST_CHARS, MAX_URL_CHARS, index_record
from yasearch.apiparams import host_param, url_param
from yasearch.errors import ApiError
from yasearch.webui.render import PEER, forbidden_page, refusal_page, render, token_login

#: Rows per page of the hosts table and of one host's document list.
HOSTS_PER_PAGE = 50
DOCS_PER_PAGE = 50
#: Page numbers are bounded like everything else that comes from a request.
MAX_PAGE_NUMBER = 1_000_000
PAGE_WINDOW = 3


def index_url(**params: Any) -> str:
    params = {k: v for k, v in params.items() if v not in (None, "", 1) or (k == "n" and v is not None)}
    return "/index" + ("?" + urlencode(params) if params else "")


def host_url(host: str, page: int = 1) -> str:
    params: dict[str, Any] = {"host": host}
    if page > 1:
        params["page"] = page
    return "/index/host?" + urlencode(params)


def remove_url_of(*, url: str | None = None, host: str | None = None) -> str:
    return "/index/remove?" + urlencode({"url": url} if url is not None else {"host": host or ""})


def _page_links(page: int, pages: int, link: Any) -> dict[str, Any] | None:
    """Prev/next and a window of numbered links; None when everything fits on one page."""
    if pages <= 1:
        return None
    first = max(1, min(page - PAGE_WINDOW, pages - 2 * PAGE_WINDOW))
    last = min(pages, first + 2 * PAGE_WINDOW)
    return {
        "prev": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if page < pages else None,
        "numbers": [{"n": n, "url": link(n), "current": n == page} for n in range(first, last + 1)],
        "pages": pages,
    }


def _page_param(request: web.Request) -> int | None:
    raw = request.query.get("page", "1").strip() or "1"
    try:
        page = int(raw)
    except ValueError:
        return None
    return page if 1 <= page <= MAX_PAGE_NUMBER else None


def due_in(ts: float | None, now: float | None = None) -> str:
    """A next visit as "due now", "in 5 min", "in 3 h", "in 2 d"; "not scheduled" for None."""
    if ts is None:
        return "not scheduled"
    left = ts - (time.time() if now is None else now)
    if left <= 0:
        return "due now"
    if left < 3600:
        return f"in {max(1, int(left // 60))} min"
    if left < 86400:
        return f"in {int(left // 3600)} h"
    return f"in {int(left // 86400)} d"


def _recrawl_view(row: Any) -> dict[str, Any] | None:
    """A tracked page's schedule and counts (None: the recrawl does not track it, e.g. imported)."""
    if row is None:
        return None
    return {
        "next_visit": row.next_visit, "due_in": due_in(row.next_visit), "due": row.next_visit <= time.time(),
        "last_change": row.last_change, "last_visit": row.last_visit, "interval_days": row.interval / 86400,
        "revisits": row.revisits, "unchanged": row.unchanged, "changed": row.changed, "failures": row.failures,
    }


def _record_view(rec: Any, recrawl: Any = None) -> dict[str, Any]:
    return {
        **msgspec.structs.asdict(index_record(rec)),
        "host_url": host_url(rec.host) if rec.host else "",
        "lookup_url": index_url(url=rec.url),
        "remove_url": remove_url_of(url=rec.url),
        "recrawl": _recrawl_view(recrawl),
    }


async def _record_views(peer: Any, recs: list[Any]) -> list[dict[str, Any]]:
    rows = await peer.recrawl_pages([r.url for r in recs])
    return [_record_view(r, rows.get(r.url)) for r in recs]


def _host_recrawl_view(f: Any) -> dict[str, Any]:
    return {**dataclasses.asdict(f), "next_due_in": due_in(f.next_visit) if f.tracked else "not scheduled"}


# -- refusals and the login ------------------------------------------------------------


forbidden = forbidden_page("index_forbidden.html", "index", "Index")
refuse = refusal_page(forbidden)


async def index_login(request: web.Request) -> web.Response:
    """The crawl console's token login (same checks, same cookie), back to the index browser."""
    return await token_login(request, "/index", forbidden)


# -- pages ---------------------------------------------------------------------------


def _flash(request: web.Request) -> dict[str, str] | None:
    """The message a removal redirected here with (query string; autoescaped when shown)."""
    q = request.query
    if "removed_url" in q:
        return {"kind": "url", "url": q["removed_url"][:MAX_URL_CHARS]}
    if "removed_host" in q:
        try:
            n = max(0, int(q.get("n", "0")))
        except ValueError:
            n = 0
        return {"kind": "host", "host": q["removed_host"][:MAX_HOST_CHARS], "n": str(n)}
    return None


async def index_page(request: web.Request) -> web.Response:
    peer = request.app[PEER]
    status = 200
    error: str | None = None
    lookup: dict[str, Any] | None = None
    raw_url = request.query.get("url", "").strip()
    if raw_url:
        try:
            url = url_param(raw_url)
        except ApiError as e:
            status, error = 400, e.message
        else:
            rec = await peer.lookup_url(url)
            record = (await _record_views(peer, [rec]))[0] if rec else None
            lookup = {"url": url, "record": record}  # "not in the index" is an answer: 200
    page = _page_param(request)
    if page is None:
        page, status, error = 1, 400, f"The page number must be a whole number between 1 and {MAX_PAGE_NUMBER:,}."
    hosts = await peer.documents_by_host()
    pages = max(1, math.ceil(len(hosts) / HOSTS_PER_PAGE))
    page = min(page, pages)
    shown = hosts[(page - 1) * HOSTS_PER_PAGE : page * HOSTS_PER_PAGE]
    due = await peer.recrawl_due_by_host()
    return render(
        request,
        "index_browser.html",
        status=status,
        active="index",
        page_title="Index",
        flash=_flash(request),
        error=error,
        query_url=raw_url[:MAX_URL_CHARS],
        lookup=lookup,
        hosts=[
            {"host": h, "documents": n, "due": due.get(h, 0), "url": host_url(h), "remove_url": remove_url_of(host=h)}
            for h, n in shown
        ],
        host_count=len(hosts),
        document_count=sum(n for _, n in hosts),
        due_count=sum(due.values()),
        first=(page - 1) * HOSTS_PER_PAGE + 1,
        pager=_page_links(page, pages, lambda n: index_url(page=n)),
    )


async def host_page(request: web.Request) -> web.Response:
    peer = request.app[PEER]
    try:
        host = host_param(request.query.get("host"))
    except ApiError as e:
        return render(request, "index_host.html", status=400, active="index", page_title="Index", error=e.message, host="", docs=[], total=0, first=0, pager=None, remove_url="", recrawl=None)
    page = _page_param(request)
    if page is None:
        return render(request, "index_host.html", status=400, active="index", page_title=host, error="That page number is not valid.", host=host, docs=[], total=0, first=0, pager=None, remove_url="", recrawl=None)
    total, recs = await peer.documents_of_host(host, (page - 1) * DOCS_PER_PAGE, DOCS_PER_PAGE)
    pages = max(1, math.ceil(total / DOCS_PER_PAGE))
    if total and page > pages:  # past the end: show the last page
        page = pages
        total, recs = await peer.documents_of_host(host, (page - 1) * DOCS_PER_PAGE, DOCS_PER_PAGE)
    return render(
        request,
        "index_host.html",
        status=200 if total else 404,
        active="index",
        page_title=host,
        error=None,
        host=host,
        docs=await _record_views(peer, recs),
        recrawl=_host_recrawl_view(await peer.recrawl_host(host)),
        total=total,
        first=(page - 1) * DOCS_PER_PAGE + 1,
        pager=_page_links(page, pages, lambda n: host_url(host, n)),
        remove_url=remove_url_of(host=host),
    )


async def confirm_page(request: web.Request) -> web.Response:
    """What a removal would remove, with the button that does it (a GET: changes nothing)."""
    peer = request.app[PEER]
    ctx: dict[str, Any] = {"active": "index", "page_title": "Remove from the index", "error": None, "record": None, "host": "", "count": 0}
    try:
        if "host" in request.query:
            ctx["host"] = host_param(request.query.get("host"))
            ctx["count"], _ = await peer.documents_of_host(ctx["host"], 0, 0)
            if not ctx["count"]:
                ctx["error"] = f"No documents of host “{ctx['host']}” are in the index."
        else:
            url = url_param(request.query.get("url"))
            rec = await peer.lookup_url(url)
            if rec is None:
                ctx["error"] = f"“{url}” is not in the index."
            else:
                ctx["record"] = _record_view(rec)
    except ApiError as e:
        return render(request, "index_confirm.html", status=400, **{**ctx, "error": e.message})
    return render(request, "index_confirm.html", status=404 if ctx["error"] else 200, **ctx)


async def remove_submit(request: web.Request) -> web.Response:
    """The confirmed removal: POST (same-origin, admin), then back to /index with a message."""
    peer = request.app[PEER]
    data = await request.post()
    try:
        if data.get("host"):
            host = host_param(str(data.get("host")))
            n = await peer.remove_host(host)
            raise web.HTTPSeeOther(index_url(removed_host=host, n=n))
        url = url_param(str(data.get("url", "")))
    except ApiError as e:
        return render(request, "index_confirm.html", status=400, active="index", page_title="Remove from the index", error=e.message, record=None, host="", count=0)
    rec = await peer.lookup_url(url)
    if rec is None or not await peer.remove_url(rec.url):
        raise web.HTTPSeeOther(index_url(url=url))  # shows "not in the index"
    raise web.HTTPSeeOther(index_url(removed_url=rec.url))
