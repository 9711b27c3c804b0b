"""Assembles the aiohttp application: JSON API, web UI, error handling."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Awaitable, Callable

from aiohttp import web

from yasearch import api, compat, openapi, p2p
from yasearch.errors import ApiError, json_error

if TYPE_CHECKING:
    from yasearch.peer import Peer

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith(("/api/", "/p2p/")) or request.path.endswith(".json")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a clear message: JSON for API clients, never a stack trace."""
    try:
        return await handler(request)
    except ApiError as e:
        if _wants_json(request):
            return json_error(e.status, e.code, e.message)
        return web.Response(status=e.status, text=e.message, content_type="text/plain")
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[api.PEER_KEY].config.max_request_bytes
        return json_error(413, "too_large", f"the body is larger than the limit of {limit} bytes")
    except web.HTTPException as e:
        if not _wants_json(request) or e.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status, "http_error")
        return json_error(e.status, code, e.reason or "error")
    except Exception:
        log.exception("error handling %s %s", request.method, request.path)
        if _wants_json(request):
            return json_error(500, "internal_error", "internal error; the peer's log (run with -v) has the details")
        return web.Response(status=500, text="Internal error; the peer's log has the details.", content_type="text/plain")


def build_app(peer: "Peer") -> web.Application:
    app = web.Application(client_max_size=peer.config.max_request_bytes, middlewares=[error_middleware])
    app[api.PEER_KEY] = peer
    api.setup(app)
    compat.setup(app)
    openapi.setup(app)
    p2p.setup(app, peer)
    from yasearch import webui  # the UI sits on top of the peer; imported here, at the composition root

    webui.setup(app, peer)
    return app
