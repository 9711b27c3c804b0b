"""Routes of the browser UI.

Every page is rendered on the server, so search works without JavaScript; the crawl
console adds a small script that talks to the JSON API (``/api/v1/crawl``) for
live progress. Crawled titles and URLs are hostile input: templates autoescape
everything, and the only value let through as markup is ``SearchHit.snippet_html``,
which the search module escapes itself before adding ``<mark>`` and which the
``snippet`` filter re-checks (see :func:`safe_snippet`).
"""

from __future__ import annotations

import hmac
import logging
import html
import math
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from yasearch.webui import netviz
from yasearch.auth import admin_allowed, same_origin
from yasearch.api import MAX_URLS
from yasearch.crawlconsole import SEED_FILE_MAX_BYTES
from yasearch.history import FIGURES
from yasearch.webui import searchview
from yasearch.query import QueryError

if TYPE_CHECKING:
    from yasearch.peer import Peer

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

#: The peer and the template environment live on the app, not in module globals,
#: so several peers (tests, the demo) can run in one process.
PEER: web.AppKey["Peer"] = web.AppKey("webui_peer")
JINJA: web.AppKey[jinja2.Environment] = web.AppKey("webui_jinja", jinja2.Environment)

PER_PAGE = 10
#: Deep pages cost the network as much as shallow ones and nobody reads them.
MAX_PAGE = 100
#: Page-number links shown around the current page.
PAGE_WINDOW = 4
#: Failures listed per job on the crawl page (the job keeps the last 20).
FAILURES_SHOWN = 10
ADMIN_COOKIE = "yasearch_admin"  # the cookie yasearch.auth.admin_allowed reads

#: Defence in depth against an escaping bug: no inline script, no foreign origins.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": that makes browsers send "Origin: null" on our own form
    # posts. Result links carry rel="noreferrer", so crawled sites learn nothing.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


# -- helpers -------------------------------------------------------------------


def make_env() -> jinja2.Environment:
    """Autoescape is on for every template, whatever its file name."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a typo in a template fails a test, not silently
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.filters["href"] = safe_href
    env.filters["display_url"] = display_url
    env.filters["snippet"] = safe_snippet
    env.filters["ago"] = relative_time
    env.filters["utc"] = utc_time
    env.filters["short_id"] = short_id
    return env


def format_number(value: Any) -> str:
    """Thousands separators for counters; anything else unchanged."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}" if not value.is_integer() else f"{int(value):,}"
    return str(value)


def safe_href(url: str) -> str:
    """A crawled URL as a link target: only http(s), so no ``javascript:`` link slips in."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return "#"
    return url if scheme in ("http", "https") else "#"


#: Characters of a node ID shown in tables and result rows (the full ID is in a tooltip).
SHORT_ID = 12


def short_id(peer_id: Any) -> str:
    return str(peer_id or "")[:SHORT_ID]


def relative_time(ts: Any, now: float | None = None) -> str:
    """A Unix time as "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago"; "never" for 0."""
    if not isinstance(ts, (int, float)) or isinstance(ts, bool) or ts <= 0:
        return "never"
    age = (time.time() if now is None else now) - ts
    if age < 5:
        return "just now"  # also a clock a little ahead of ours
    if age < 60:
        return f"{int(age)} s ago"
    if age < 3600:
        return f"{int(age // 60)} min ago"
    if age < 86400:
        return f"{int(age // 3600)} h ago"
    return f"{int(age // 86400)} d ago"


def utc_time(ts: Any) -> str:
    """A Unix time as an ISO 8601 UTC string (for ``<time datetime>`` and tooltips)."""
    if not isinstance(ts, (int, float)) or isinstance(ts, bool) or ts <= 0:
        return ""
    try:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return ""


_MARK = re.compile(r"(<mark>|</mark>)")


def safe_snippet(snippet_html: str) -> Markup:
    """A result's ``snippet_html`` with ``<mark>`` as its only possible markup.

    The search module escapes snippets itself, but results can come from other
    peers, whose HTML is as hostile as a crawled page. So the text between the
    marks is unescaped and escaped again (a no-op for well-escaped text: what
    ``html.escape`` produced round-trips exactly), and the marks are balanced.
    """
    out: list[str] = []
    open_mark = False
    for part in _MARK.split(snippet_html):
        if part == "<mark>":
            if not open_mark:
                out.append(part)
                open_mark = True
        elif part == "</mark>":
            if open_mark:
                out.append(part)
                open_mark = False
        elif part:
            out.append(str(escape(html.unescape(part))))
    if open_mark:
        out.append("</mark>")
    return Markup("".join(out))


def display_url(url: str) -> str:
    """The URL as shown under a result title: without the scheme, which is noise."""
    for prefix in ("https://", "http://"):
        if url.startswith(prefix):
            return url[len(prefix) :]
    return url


def render(
    request: web.Request, template: str, status: int = 200, **context: Any
) -> web.Response:
    peer = request.app[PEER]
    context.setdefault("active", "")
    context.setdefault("page_title", "")
    context["peer_name"] = peer.name
    context["version"] = peer.config.version
    html = request.app[JINJA].get_template(template).render(**context)
    resp = web.Response(text=html, content_type="text/html", charset="utf-8", status=status)
    resp.headers.update(SECURITY_HEADERS)
    # Search pages and live counters must never come from a stale cache.
    resp.headers["Cache-Control"] = "no-store"
    return resp


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


# -- search --------------------------------------------------------------------


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


# -- crawl console -------------------------------------------------------------


def _forbidden(request: web.Request, wrong_token: bool = False) -> web.Response:
    peer = request.app[PEER]
    return render(
        request,
        "forbidden.html",
        status=403,
        active="crawl",
        page_title="Crawl console",
        token_mode=bool(peer.config.admin_token),
        wrong_token=wrong_token,
    )


def _job_view(job: Any) -> dict[str, Any]:
    """Job.to_dict() plus what the table shows, so template and JavaScript agree."""
    d = job.to_dict()
    d["recent_failures"] = list(reversed(d.get("recent_failures", [])))[:FAILURES_SHOWN]
    return d


async def crawl_page(
    request: web.Request, status: int = 200, error: str | None = None, form: dict[str, str] | None = None
) -> web.Response:
    peer = request.app[PEER]
    if not admin_allowed(request, peer.config.admin_token):
        return _forbidden(request)
    return render(
        request,
        "crawl.html",
        status=status,
        active="crawl",
        page_title="Crawl",
        jobs=[_job_view(j) for j in peer.jobs.list()],
        error=error,
        form=form or {},
        default_delay=peer.config.crawl_delay,
        seed_file_limit=f"{SEED_FILE_MAX_BYTES // (1024 * 1024)} MiB",
        max_urls=MAX_URLS,
    )


async def crawl_submit(request: web.Request) -> web.Response:
    """The crawl form without JavaScript: a form post (with a seed list file as
    multipart/form-data), then back to the console."""
    peer = request.app[PEER]
    if not admin_allowed(request, peer.config.admin_token) or not same_origin(request):
        return _forbidden(request)
    # One set of validation rules for the API and this form: the API's own parsers.
    from yasearch import crawlconsole
    from yasearch.api import parse_crawl_spec
    from yasearch.errors import ApiError

    form: dict[str, str] = {}
    try:
        if crawlconsole.is_multipart(request):
            form, seed_urls = await crawlconsole.read_crawl_form(request, form)
        else:
            data = await request.post()
            form, seed_urls = {k: str(data.get(k, "")) for k in crawlconsole.FORM_FIELDS}, []
        spec = parse_crawl_spec(crawlconsole.form_body(form, seed_urls))
    except ApiError as e:
        return await crawl_page(request, e.status, e.message, form)
    job = await peer.start_crawl(spec)
    raise web.HTTPSeeOther(f"/crawl#job-{job.id}")


async def crawl_action(request: web.Request) -> web.Response:
    """Pause/resume/cancel buttons without JavaScript."""
    peer = request.app[PEER]
    if not admin_allowed(request, peer.config.admin_token) or not same_origin(request):
        return _forbidden(request)
    job_id, action = request.match_info["id"], request.match_info["action"]
    job = peer.jobs.get(job_id)
    if job is None:
        return await crawl_page(request, 404, f"There is no crawl job “{job_id[:40]}”.")
    ok = {"pause": peer.jobs.pause, "resume": peer.jobs.resume, "cancel": peer.jobs.cancel}[action](job_id)
    if not ok:
        return await crawl_page(request, 409, f"Cannot {action} job {job_id[:40]}: it is {job.state}.")
    raise web.HTTPSeeOther(f"/crawl#job-{job_id}")


async def crawl_login(request: web.Request) -> web.Response:
    """Trade the admin token for a cookie, so the console's fetch() calls carry it.

    SameSite=Strict keeps other sites from riding on it; HttpOnly keeps scripts off it.
    """
    peer = request.app[PEER]
    token = peer.config.admin_token
    if not token or not same_origin(request):
        return _forbidden(request)
    data = await request.post()
    presented = str(data.get("token", ""))
    if not presented or not hmac.compare_digest(presented.encode(), token.encode()):
        return _forbidden(request, wrong_token=True)
    resp = web.HTTPSeeOther("/crawl")
    resp.set_cookie(
        ADMIN_COOKIE, token, httponly=True, samesite="Strict", secure=request.secure, path="/"
    )
    raise resp


# -- network -------------------------------------------------------------------


async def _peer_names(peer: "Peer") -> dict[str, str]:
    """Peer ID -> name of every known peer, to label where a result came from."""
    try:
        return {str(p.get("peer_id", "")): str(p.get("name") or "") for p in await peer.peers()}
    except Exception:  # noqa: BLE001 - a label is not worth failing a search page for
        return {}


def _peer_row(p: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """One row of the peers table. Everything but the numbers came from another peer:
    strings are coerced, the URL becomes a link only if it is http(s)."""

    def count(v: Any) -> int | None:
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

    is_self = bool(p.get("self"))
    stats = p.get("stats") if isinstance(p.get("stats"), dict) else {}
    postings = status.get("postings_held") if is_self else p.get("postings_held", stats.get("postings_held"))
    url = str(p.get("url") or "")
    last_seen = p.get("last_seen")
    return {
        "peer_id": str(p.get("peer_id") or ""),
        "name": str(p.get("name") or ""),
        "url": url,
        "href": safe_href(url) if url else "#",
        "version": str(p.get("version") or ""),
        "documents": count(p.get("documents")),
        "postings": count(postings),
        "self": is_self,
        "last_seen": last_seen if isinstance(last_seen, (int, float)) and not isinstance(last_seen, bool) else 0,
    }


async def network_page(request: web.Request) -> web.Response:
    peer = request.app[PEER]
    status = await peer.status()
    rows = [_peer_row(p, status) for p in await peer.peers()]
    # this peer first, then the most recently seen
    rows.sort(key=lambda r: (not r["self"], -r["last_seen"], r["peer_id"]))
    others = [r for r in rows if not r["self"]]
    return render(
        request,
        "network.html",
        active="network",
        page_title="Network",
        info=status,
        publish=status.get("publish") or {},
        dht=status.get("dht") or {},
        net=status.get("network") or {},
        peers=rows,
        network_documents=sum(r["documents"] or 0 for r in rows),
        others=len(others),
        ring=netviz.id_ring(rows),
        sparklines=[
            {"name": name, "label": label, "line": netviz.sparkline(peer.history.series(name))}
            for name, label in FIGURES.items()
        ],
        history_span=_history_span(peer.history.times()),
    )


def _history_span(times: list[float]) -> str:
    """How long the sparklines cover, e.g. '5 min', for their caption."""
    if len(times) < 2:
        return ""
    span = times[-1] - times[0]
    return f"{int(span)} s" if span < 120 else f"{int(span // 60)} min"


# -- status --------------------------------------------------------------------


def _flatten(section: dict[str, Any]) -> dict[str, Any]:
    """One level of nesting (``network.p2p.requests``) becomes ``p2p.requests``: a
    status card lists figures, not dicts."""
    out: dict[str, Any] = {}
    for k, v in section.items():
        if isinstance(v, dict):
            out.update({f"{k}.{sub}": x for sub, x in v.items()})
        else:
            out[k] = v
    return out


async def status_page(request: web.Request) -> web.Response:
    peer = request.app[PEER]
    status = await peer.status()
    peers = await peer.peers()
    overview = {k: v for k, v in status.items() if not isinstance(v, (dict, list))}
    sections = {k: _flatten(v) for k, v in status.items() if isinstance(v, dict)}
    return render(
        request,
        "status.html",
        active="status",
        page_title="Status",
        info=status,
        overview=overview,
        sections=sections,
        peers=peers,
    )


def setup(app: web.Application, peer: "Peer") -> None:
    """Mount the UI on the peer's app (called by yasearch.app.build_app)."""
    app[PEER] = peer
    app[JINJA] = make_env()
    app.router.add_get("/", home)
    app.router.add_get("/search", search)
    app.router.add_get("/crawl", crawl_page)
    app.router.add_post("/crawl", crawl_submit)
    app.router.add_post("/crawl/login", crawl_login)
    app.router.add_post("/crawl/{id}/{action:pause|resume|cancel}", crawl_action)
    app.router.add_get("/network", network_page)
    app.router.add_get("/status", status_page)
    from yasearch.webui import indexbrowser  # imported here: it imports this module
    indexbrowser.setup(app)  # the index browser: /index
    app.router.add_static("/static/", STATIC, name="static")
