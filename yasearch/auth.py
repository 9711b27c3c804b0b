"""Who may use admin routes: loopback clients, or anyone with the admin token.

Three rules beyond that:

* Loopback is trusted only when nothing says the request was relayed: a reverse
  proxy on the same machine connects from loopback for every client, so a
  ``Forwarded``, ``X-Forwarded-For`` or ``X-Real-IP`` header takes that trust away.
* The admin cookie the login forms set is a session value, an HMAC of an expiry
  time and a nonce under the admin token: a leaked cookie does not leak the token,
  and it stops working when it expires or the token changes.
* The cookie is ``Secure`` when the request came over HTTPS: the connection
  itself, or ``X-Forwarded-Proto: https`` from one of the ``trusted_proxies``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Iterable

from aiohttp import web

from yasearch.errors import ApiError

#: The cookie the login forms set (webui) and admin_allowed reads.
ADMIN_COOKIE = "yasearch_admin"
#: How long an admin session cookie is good for.
SESSION_SECONDS = 12 * 3600
#: Headers a reverse proxy adds; their presence means the TCP peer is not the client.
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


def proxied(request: web.Request) -> bool:
    """Whether a proxy relayed the request (then ``request.remote`` is the proxy's address)."""
    return any(name in request.headers for name in PROXY_HEADERS)


def over_https(request: web.Request, trusted_proxies: Iterable[str]) -> bool:
    """Whether the client's request came over HTTPS: this connection, or a trusted proxy saying so."""
    if request.secure:
        return True
    if request.remote not in set(trusted_proxies):
        return False
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https"


def _session_mac(token: str, expires: int, nonce: str) -> str:
    msg = f"yasearch admin session\0{expires}\0{nonce}".encode()
    return hmac.new(token.encode(), msg, hashlib.sha256).hexdigest()


def session_cookie(token: str, now: float | None = None) -> str:
    """A fresh admin session value ``expires.nonce.mac`` (never the token itself)."""
    expires = int((time.time() if now is None else now) + SESSION_SECONDS)
    nonce = secrets.token_urlsafe(16)
    return f"{expires}.{nonce}.{_session_mac(token, expires, nonce)}"


def valid_session(token: str, value: str, now: float | None = None) -> bool:
    """Whether ``value`` is a session cookie made under ``token`` that has not expired."""
    parts = value.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 12:
        return False
    expires, nonce, mac = int(parts[0]), parts[1], parts[2]
    if expires < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(mac.encode(), _session_mac(token, expires, nonce).encode())


def admin_allowed(request: web.Request, token: str | None) -> bool:
    """With a token configured, only the token (or a session made with it) counts;
    loopback is not trusted then, nor when a proxy relayed the request."""
    if token:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return hmac.compare_digest(header[7:].encode(), token.encode())
        return valid_session(token, request.cookies.get(ADMIN_COOKIE, ""))
    return is_loopback(request.remote) and not proxied(request)


def same_origin(request: web.Request) -> bool:
    """Refuse cross-site requests from browsers (CSRF).

    Browsers name the requesting site in ``Sec-Fetch-Site``, which page scripts
    cannot forge; when it is there it decides. (``Origin`` alone is not enough:
    a browser sends ``Origin: null`` for a same-origin form post when the page's
    referrer policy withholds the referrer.) Older browsers without it are checked
    by ``Origin``. Clients that send neither header (curl, scripts, peers) are not
    browsers a foreign page could drive, so they pass; the admin check still
    applies to them. Without this, any web page a user visits could post to the
    user's loopback peer, which trusts loopback clients. (A page that rebinds its
    own name to loopback is "same-origin" to the browser: the Host allowlist of
    :mod:`yasearch.middleware` refuses it.)
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin == f"{request.scheme}://{request.host}"


def refusal(request: web.Request, token: str | None) -> ApiError | None:
    """Why an admin request is refused (None: it is not). Cross-site browser
    requests are refused for anything but reads, whoever sends them."""
    if request.method not in ("GET", "HEAD", "OPTIONS") and not same_origin(request):
        return ApiError(403, "cross_site", "admin route: cross-site requests from browsers are refused")
    if admin_allowed(request, token):
        return None
    if token:
        return ApiError(403, "forbidden", "admin route: send 'Authorization: Bearer <admin_token>'")
    if proxied(request):
        return ApiError(
            403,
            "forbidden",
            "admin route: a request relayed by a proxy is not a loopback client; set admin_token to allow remote admins",
        )
    return ApiError(
        403,
        "forbidden",
        "admin route: only loopback clients may use it; set admin_token in the config to allow remote admins",
    )
