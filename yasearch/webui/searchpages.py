"""The search pages: the home page and the result pages.

Every page is rendered on the server, so search works without JavaScript.
"""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from yasearch.query import QueryError
from yasearch.webui import searchview
from yasearch.webui.render import PEER, render

PER_PAGE = 10
#: Deep pages cost the network as much as shallow ones and nobody reads them.
MAX_PAGE = 100
#: Page-number links shown around the current page.
PAGE_WINDOW = 4


def search_url(q: str, page: int = 1, scope: str = "") -> str:
    params: dict[str, str | int] = {"q": q}
    if page > 1:
        params["page"] = page
    if scope:
        params["scope"] = scope
    return "/search?" + urlencode(params)


def pagination(q: str, page: int, total: int, scope: str) -> dict[str, Any] | None:
    """Prev/next and a window of page numbers; None when one page holds everything."""
    pages = min(MAX_PAGE, math.ceil(total / PER_PAGE))
    if pages <= 1 and page <= 1:
        return None
    first = max(1, min(page - PAGE_WINDOW, pages - 2 * PAGE_WINDOW))
    last = min(pages, first + 2 * PAGE_WINDOW)
    return {
        "prev": search_url(q, page - 1, scope) if page > 1 else None,
        "next": search_url(q, page + 1, scope) if page < pages else None,
        "numbers": [{"n": n, "url": search_url(q, n, scope), "current": n == page} for n in range(first, last + 1)],
    }



async def home(request: web.Request) -> web.Response:
    if request.query.get("q", "").strip():
        # A browser keyword search or an old link: the results page is /search.
        raise web.HTTPFound(search_url(request.query["q"].strip()))
    return await _home(request)


async def _home(request: web.Request) -> web.Response:
    peer = request.app[PEER]
    status = await peer.status()
    return render(
        request,
        "home.html",
        active="search",
        documents=status.get("documents", 0),
        max_query_chars=peer.config.max_query_chars,
    )


async def search(request: web.Request) -> web.Response:
    peer = request.app[PEER]
    q = request.query.get("q", "").strip()
    if not q:
        return await _home(request)
    scope = request.query.get("scope", "")
    ctx: dict[str, Any] = {
        "active": "search",
        "q": q,
        "scope": scope,
        "page_title": q[:80],
        "max_query_chars": peer.config.max_query_chars,
    }

    def error(message: str) -> web.Response:
        return render(request, "results.html", status=400, error=message, resp=None, **ctx)

    if scope not in ("", "global", "local"):
        return error("The scope must be 'global' or 'local'.")
    raw_page = request.query.get("page", "1").strip() or "1"
    try:
        page = int(raw_page)
    except ValueError:
        return error(f"The page number must be a whole number, not “{raw_page[:20]}”.")
    if not 1 <= page <= MAX_PAGE:
        return error(f"The page number must be between 1 and {MAX_PAGE}.")
    if len(q) > peer.config.max_query_chars:
        return error(
            f"The query is {len(q):,} characters long; at most {peer.config.max_query_chars:,} are accepted. "
            "Try fewer or shorter words."
        )
    try:
        resp = await peer.search(q, limit=PER_PAGE, offset=(page - 1) * PER_PAGE, scope=scope or "global",
                                 facets=True)
    except QueryError as e:
        return error(str(e) or "The query could not be understood.")
    except Exception:  # noqa: BLE001 - a message, never a stack trace
        logging.getLogger(__name__).exception("search for %r failed", q[:200])
        return render(
            request, "results.html", status=500, resp=None,
            error="The search failed inside this peer. Try again in a moment; the peer's log has the details.",
            **ctx,
        )
    first = (page - 1) * PER_PAGE + 1
    return render(
        request,
        "results.html",
        error=None,
        resp=resp,
        facets=searchview.facet_view(q, scope, resp.facets),
        more_links=searchview.more_from_host_links(q, scope, resp.results),
        help_links=searchview.no_result_help(q, scope) if not resp.results else [],
        origins=await _peer_names(peer),
        self_id=peer.peer_id,
        page=page,
        first=first,
        last=first + len(resp.results) - 1,
        pages=pagination(q, page, resp.total, scope),
        first_page_url=search_url(q, 1, scope),
        **ctx,
    )



async def _peer_names(peer: Any) -> dict[str, str]:
    """Peer ID -> name of every known peer, to label where a result came from."""
    try:
        return {str(p.get("peer_id", "")): str(p.get("name") or "") for p in await peer.peers()}
    except Exception:  # noqa: BLE001 - a label is not worth failing a search page for
        return {}

