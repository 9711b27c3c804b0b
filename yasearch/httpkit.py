"""The route table: every route is registered once, with what it accepts and answers.

``route()`` adds a handler to aiohttp's router and records the route's metadata
(:class:`Route`) under one app key. Two readers use that record, so neither keeps
a copy of what the routes declare:

* :mod:`yasearch.middleware` applies the admin rule to routes flagged ``admin``
  (handlers no longer check it themselves, so no handler can forget to);
* :mod:`yasearch.openapi` generates the API description from it and from the
  request/response models, so the document cannot drift from the routes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web

from yasearch.peer import Peer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Answers a refused admin request with a page of its own (UI routes); ``reason``
#: is the refusal's error code, "cross_site" or "forbidden".
Refuse = Callable[[web.Request, str], Awaitable[web.StreamResponse]]

#: The page a browser gets for a 404 outside the API (the web UI sets it, with the site's navigation).
NOT_FOUND_PAGE: web.AppKey[Handler] = web.AppKey("not_found_page")

#: The peer every HTTP module serves (set by yasearch.app.build_app): the one app key.
PEER_KEY: web.AppKey[Peer] = web.AppKey("peer", Peer)


@dataclass(frozen=True, eq=False)
class Route:
    """One route as declared. ``query`` and ``body`` are msgspec Struct types (or,
    for ``body``, content type -> Struct); ``response`` is a Struct type, a content
    type -> schema mapping (a Struct, a type msgspec can describe, or None for an
    undescribed body), or None for plain JSON. ``errors`` lists the error statuses
    the handler itself answers (403 is implied by ``admin``)."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    admin: bool = False
    query: Any = None
    body: Any = None
    response: Any = None
    status: int = 200
    errors: tuple[int, ...] = ()
    description: str = ""
    operation_id: str = ""
    public: bool = True  # described in the OpenAPI document
    refuse: Refuse | None = None
    path_params: Mapping[str, str] = field(default_factory=dict)  # name -> description


#: Every route of the app, keyed by aiohttp's route objects (a GET's HEAD twin included).
ROUTES: web.AppKey[dict[web.AbstractRoute, Route]] = web.AppKey("route_table", dict)


def route(
    app: web.Application,
    method: str,
    path: str,
    handler: Handler,
    *,
    summary: str,
    tag: str,
    **meta: Any,
) -> Route:
    """Register ``handler`` for ``method path`` with aiohttp and record its metadata."""
    info = Route(method=method.upper(), path=path, handler=handler, summary=summary, tag=tag, **meta)
    if ROUTES not in app:
        app[ROUTES] = {}
    resource = app.router.add_resource(path)
    table = app[ROUTES]
    if info.method == "GET":  # as router.add_get does: HEAD answers too
        table[resource.add_route("HEAD", handler)] = info
    table[resource.add_route(info.method, handler)] = info
    return info


def routes(app: web.Application) -> list[Route]:
    """The declared routes in registration order, each once."""
    return list(dict.fromkeys(app.get(ROUTES, {}).values()))


def route_of(request: web.Request) -> Route | None:
    """The declared route a request matched; None for 404/405 and static files."""
    return request.app.get(ROUTES, {}).get(request.match_info.route)


def wants_json(path: str) -> bool:
    """Whether errors on ``path`` are JSON (API and peer routes) or plain text."""
    return path.startswith(("/api/", "/p2p/")) or path.endswith(".json")


_PARAM = re.compile(r"\{(\w+)(?::([^{}]+))?\}")


def path_parameters(path: str) -> list[tuple[str, list[str] | None]]:
    """The ``{name}`` parts of a route path, with the choices of a ``{name:a|b}`` part."""
    out: list[tuple[str, list[str] | None]] = []
    for m in _PARAM.finditer(path):
        choices = m.group(2)
        words = choices.split("|") if choices and re.fullmatch(r"\w+(\|\w+)*", choices) else None
        out.append((m.group(1), words))
    return out


def canonical(path: str) -> str:
    """``/a/{id}/{action:x|y}`` -> ``/a/{id}/{action}``, as aiohttp's ``resource.canonical``."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)
