"""What every request goes through: error handling, the Host allowlist, the admin rule, security headers.

* :func:`error_middleware`: every failure becomes a clear message, JSON for API
  and peer clients, never a stack trace; a store that found the disk full is a
  503 ``storage_full`` with ``Retry-After``, not a 500.
* :func:`host_middleware`: refuses (421) a request whose ``Host`` is not one of
  this peer's names, on every route: what a DNS-rebinding page sends.
* :func:`admin_middleware`: routes declared with ``admin=True`` in the route table
  (:mod:`yasearch.httpkit`) are checked here, once, by :func:`yasearch.auth.refusal`;
  handlers do not repeat the check, so a new admin route cannot forget it. API
  routes are refused with a JSON 403, UI routes with their own HTML page.
* :func:`security_headers`: an ``on_response_prepare`` hook, so the headers are on
  every response (JSON, errors, 404s, static files, event streams), not only on
  pages a helper rendered.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from yasearch.auth import refusal
from yasearch.errors import ApiError, json_error
from yasearch.faults import is_disk_full
from yasearch.httpkit import NOT_FOUND_PAGE, PEER_KEY, Handler, Route, route_of, wants_json

log = logging.getLogger(__name__)

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


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a clear message: JSON for API clients, never a stack trace."""
    try:
        return await handler(request)
    except ApiError as e:
        if wants_json(request.path):
            return json_error(e.status, e.code, e.message)
        return web.Response(status=e.status, text=e.message, content_type="text/plain")
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[PEER_KEY].config.max_request_bytes
        return json_error(413, "too_large", f"the body is larger than the limit of {limit} bytes")
    except HttpProcessingError as e:  # a malformed body part (multipart headers, say) read by the handler
        status = e.code if 400 <= e.code < 500 else 400
        message = "the request body could not be read: malformed " + ("multipart/form-data" if "multipart" in request.content_type else "body")
        if wants_json(request.path):
            return json_error(status, "bad_request", message)
        return web.Response(status=status, text=message, content_type="text/plain")
    except web.HTTPException as e:
        if e.status == 404 and not wants_json(request.path) and NOT_FOUND_PAGE in request.app:
            return await request.app[NOT_FOUND_PAGE](request)
        if not wants_json(request.path) or e.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status, "http_error")
        return json_error(e.status, code, e.reason or "error")
    except Exception as e:
        if is_disk_full(e):  # the store rolled back and reported the fault: not a crash
            log.warning("%s %s: %s", request.method, request.path, e)
            return storage_full(request)
        log.exception("error handling %s %s", request.method, request.path)
        if wants_json(request.path):
            return json_error(500, "internal_error", "internal error; the peer's log (run with -v) has the details")
        return web.Response(status=500, text="Internal error; the peer's log has the details.", content_type="text/plain")


#: Seconds a client is asked to wait (``Retry-After``) while a store's disk is full.
RETRY_AFTER_FULL = 30


def storage_full(request: web.Request) -> web.Response:
    """503 with ``Retry-After``: a store cannot write now (a full disk), nothing was stored."""
    message = "this peer's disk is full: nothing was stored; try again later"
    if wants_json(request.path):
        response = json_error(503, "storage_full", message)
    else:
        response = web.Response(status=503, text=message, content_type="text/plain")
    response.headers["Retry-After"] = str(RETRY_AFTER_FULL)
    return response


#: Names that always mean this machine (browsers never rebind them).
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _split_host(host: str) -> tuple[str, str]:
    """``Host`` header -> (lowercase name without a trailing dot, port or "")."""
    host = host.strip().lower()
    if host.startswith("["):  # [v6] or [v6]:port
        end = host.find("]")
        name, rest = host[1 : end if end > 0 else len(host)], host[end + 1 :] if end > 0 else ""
        return name, rest[1:] if rest.startswith(":") else rest
    name, _, port = host.partition(":")
    return name.rstrip("."), port


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(host: str | None, public_names: Iterable[str]) -> bool:
    """Whether a ``Host`` header names this peer.

    Loopback names and IP literals pass: a browser sends a literal address only
    when the page itself was loaded from that address, so it cannot be a rebound
    name (and other peers dial each other by address). Other names must be among
    ``public_names`` (``name`` for any port, ``name:port`` for that port only). A
    request without ``Host`` (HTTP/1.0 tools) comes from no browser and passes.
    """
    if host is None:
        return True
    name, port = _split_host(host)
    if name in LOOPBACK_NAMES or _is_ip(name):
        return True
    for allowed in public_names:
        a_name, a_port = _split_host(allowed)
        if a_name == name and (not a_port or a_port == port):
            return True
    return False


@web.middleware
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse requests for a name that is not this peer's (DNS rebinding), on every route."""
    config = request.app[PEER_KEY].config
    names = [*config.public_names, *([config.host] if config.host else [])]
    if not host_allowed(request.headers.get("Host"), names):
        raise ApiError(
            421,
            "unknown_host",
            f"this peer does not answer to the name {request.headers.get('Host', '')[:100]!r}; "
            "use its address, localhost, or a name listed in its public_names setting",
        )
    return await handler(request)


@web.middleware
async def admin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The admin rule for every route the route table flags ``admin``."""
    info = route_of(request)
    if info is not None and info.admin:
        refused = refusal(request, request.app[PEER_KEY].config.admin_token)
        if refused is not None:
            if info.refuse is not None:
                return await info.refuse(request, refused.code)
            raise refused
    return await handler(request)


#: Called with (route, status, seconds) after every request to a declared route (metrics).
OBSERVERS: web.AppKey[list[Callable[[Route, int, float], None]]] = web.AppKey("observers", list)


@web.middleware
async def timing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Times every request to a declared route for the observers (outside the error
    middleware, so errors are counted with the status they were answered with)."""
    info = route_of(request)
    observers = request.app.get(OBSERVERS)
    if info is None or not observers:
        return await handler(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        for observe in observers:
            observe(info, status, time.perf_counter() - started)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: a header a handler set itself (say, a page's own CSP) wins."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def setup(app: web.Application) -> None:
    """Install them all; the error middleware outermost (inside the timing), so a refusal is JSON too."""
    app.middlewares.extend([timing_middleware, error_middleware, host_middleware, admin_middleware])
    app.on_response_prepare.append(security_headers)
