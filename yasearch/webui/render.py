"""What every page of the browser UI shares: templates, rendering, UI routes, the token login.

The peer and the template environment live on the app, not in module globals,
so several peers (tests, the demo) can run in one process.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any, Protocol

import jinja2
from aiohttp import web

from yasearch.units import duration, plural, size
from yasearch.auth import ADMIN_COOKIE, SESSION_SECONDS, over_https, same_origin, session_cookie
from yasearch.httpkit import PEER_KEY, Handler, Refuse, route
from yasearch.webui.filters import display_url, format_number, relative_time, safe_href, safe_snippet, short_id, utc_time

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

#: The peer the UI shows (the app's one peer).
PEER = PEER_KEY
JINJA: web.AppKey[jinja2.Environment] = web.AppKey("webui_jinja", jinja2.Environment)


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
    env.filters["plural"] = lambda n, word: plural(n, word, sep=False)
    env.filters["duration"] = duration
    env.filters["size"] = size
    env.filters["href"] = safe_href
    env.filters["display_url"] = display_url
    env.filters["snippet"] = safe_snippet
    env.filters["ago"] = relative_time
    env.filters["utc"] = utc_time
    env.filters["short_id"] = short_id
    return env


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """A page; the security headers come from yasearch.middleware, as on every response."""
    peer = request.app[PEER]
    context.setdefault("active", "")
    context.setdefault("page_title", "")
    context["peer_name"] = peer.name
    context["version"] = peer.config.version
    html = request.app[JINJA].get_template(template).render(**context)
    resp = web.Response(text=html, content_type="text/html", charset="utf-8", status=status)
    # Search pages and live counters must never come from a stale cache.
    resp.headers["Cache-Control"] = "no-store"
    return resp


def page(app: web.Application, method: str, path: str, handler: Handler, *, admin: bool = False,
         refuse: Refuse | None = None) -> None:
    """A UI route: in the route table (so the admin middleware sees it), not in the API description."""
    route(app, method, path, handler, summary=handler.__doc__ or path, tag="ui", admin=admin, refuse=refuse, public=False)


class Forbidden(Protocol):
    def __call__(self, request: web.Request, *, wrong_token: bool = False, cross_site: bool = False) -> web.Response: ...


def forbidden_page(template: str, active: str, page_title: str) -> Forbidden:
    """A 403 page saying why, with the token form when the peer has a token."""

    def forbidden(request: web.Request, *, wrong_token: bool = False, cross_site: bool = False) -> web.Response:
        return render(
            request,
            template,
            status=403,
            active=active,
            page_title=page_title,
            token_mode=bool(request.app[PEER].config.admin_token),
            wrong_token=wrong_token,
            cross_site=cross_site,
        )

    return forbidden


def refusal_page(forbidden: Forbidden) -> Refuse:
    """What yasearch.middleware answers a refused client of a UI admin route with."""

    async def refuse(request: web.Request, reason: str) -> web.Response:
        return forbidden(request, cross_site=reason == "cross_site")

    return refuse


async def token_login(request: web.Request, done: str, forbidden: Forbidden) -> web.Response:
    """Trade the admin token for a session cookie, so the console's fetch() calls carry it; then to ``done``.

    The cookie is an HMAC session value, not the token (yasearch.auth.session_cookie).
    SameSite=Strict keeps other sites from riding on it; HttpOnly keeps scripts off it;
    Secure when the login came over HTTPS (directly or through a trusted proxy).
    """
    config = request.app[PEER].config
    token = config.admin_token
    cross_site = not same_origin(request)
    if not token or cross_site:
        return forbidden(request, cross_site=cross_site)
    data = await request.post()
    presented = str(data.get("token", ""))
    if not presented or not hmac.compare_digest(presented.encode(), token.encode()):
        return forbidden(request, wrong_token=True)
    resp = web.HTTPSeeOther(done)
    resp.set_cookie(ADMIN_COOKIE, session_cookie(token), httponly=True, samesite="Strict",
                    secure=over_https(request, config.trusted_proxies), path="/", max_age=SESSION_SECONDS)
    raise resp
