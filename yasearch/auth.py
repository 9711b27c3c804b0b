"""Who may use admin routes: loopback clients, or anyone with the admin token."""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web

from yasearch.errors import ApiError


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
        cookie = request.cookies.get("yasearch_admin", "")
        presented = header[7:] if header.startswith("Bearer ") else cookie
        return bool(presented) and hmac.compare_digest(presented.encode(), token.encode())
    return is_loopback(request.remote)


def require_admin(request: web.Request, token: str | None) -> None:
    if admin_allowed(request, token):
        return
    if token:
        raise ApiError(403, "forbidden", "admin route: send 'Authorization: Bearer <admin_token>'")
    raise ApiError(
        403,
        "forbidden",
        "admin route: only loopback clients may use it; set admin_token in the config to allow remote admins",
    )
