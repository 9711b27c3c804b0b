"""Who may use admin routes: loopback clients, or anyone with the admin token."""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web

from yasearch.errors import ApiError

#: The cookie the login forms set (webui) and admin_allowed reads.
ADMIN_COOKIE = "yasearch_admin"


def is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


def admin_allowed(request: web.Request, token: str | None) -> bool:
    """With a token configured, only the token counts (loopback is not trusted then:
    a reverse proxy on the same machine would make every client look local)."""
    if token:
        header = request.headers.get("Authorization", "")
        cookie = request.cookies.get(ADMIN_COOKIE, "")
        presented = header[7:] if header.startswith("Bearer ") else cookie
        return bool(presented) and hmac.compare_digest(presented.encode(), token.encode())
    return is_loopback(request.remote)


def same_origin(request: web.Request) -> bool:
    """Refuse cross-site requests from browsers (CSRF).

    Browsers name the requesting site in ``Sec-Fetch-Site``, which page scripts
    cannot forge; when it is there it decides. (``Origin`` alone is not enough:
    a browser sends ``Origin: null`` for a same-origin form post when the page's
    referrer policy withholds the referrer.) Older browsers without it are checked
    by ``Origin``. Clients that send neither header (curl, scripts, peers) are not
    browsers a foreign page could drive, so they pass; the admin check still
    applies to them. Without this, any web page a user visits could post to the
    user's loopback peer, which trusts loopback clients.
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
    return ApiError(
        403,
        "forbidden",
        "admin route: only loopback clients may use it; set admin_token in the config to allow remote admins",
    )
