"""One page fetch: manual redirects, bounded body, failures classified, never raises.

Failure reasons are short stable strings because they are counted per job and shown
in the UI: ``dns``, ``refused``, ``timeout``, ``http_<code>`` (exact status, e.g.
``http_404``, ``http_500``), ``too_many_redirects``, ``bad_url``, ``bad_encoding``,
``blocked`` (an address the outbound policy refuses: loopback, private, ...),
``error``; and the *skip* reasons ``not_html`` and ``robots`` (see :data:`SKIP_REASONS`).
A conditional request (``validators``) answered 304 has the reason ``not_modified``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from .outbound import is_blocked
from .types import CrawlerSettings
from .urls import canonicalize

log = logging.getLogger(__name__)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Outcomes that are not the site's fault and must not count as failures.
SKIP_REASONS = frozenset({"not_html", "robots", "not_modified"})
_CHUNK = 64 * 1024
_ACCEPT = "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8,*/*;q=0.1"


@dataclass
class FetchResult:
    url: str  # requested (canonical) URL
    final_url: str  # canonical URL after redirects
    status: int = 0  # 0 when no HTTP response was received
    content_type: str = ""
    body: bytes = b""
    truncated: bool = False
    charset: str | None = None
    reason: str | None = None  # None = success
    redirects: int = 0
    #: Validators of the final response, for the next conditional GET.
    etag: str = ""
    last_modified: str = ""
    #: The final response's status line parts and headers (a WARC record needs them).
    http_version: str = "1.1"
    reason_phrase: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def skipped(self) -> bool:
        return self.reason in SKIP_REASONS


HopCheck = Callable[[str], Awaitable[bool]]


def classify_exception(exc: BaseException) -> str:
    """Map a client exception onto a short failure reason."""
    if is_blocked(exc):
        return "blocked"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns"
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_err = exc.os_error
        if isinstance(os_err, socket.gaierror):
            return "dns"
        if isinstance(os_err, ConnectionRefusedError):
            return "refused"
        if isinstance(os_err, TimeoutError):
            return "timeout"
        return "error"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, (aiohttp.InvalidURL, ValueError)):
        return "bad_url"
    if isinstance(exc, aiohttp.ClientPayloadError):
        msg = str(exc).lower()
        if "encoding" in msg or "decode" in msg or "decompress" in msg:
            return "bad_encoding"
        return "error"
    return "error"


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    settings: CrawlerSettings,
    *,
    hop_allowed: HopCheck | None = None,
    validators: tuple[str, str] | None = None,
) -> FetchResult:
    """Fetch ``url``; the result's ``reason`` says why it is not a usable page.

    Redirects are followed by hand so that every hop is canonicalised and can be
    vetted by ``hop_allowed`` (robots.txt and URL rules of the target) and by the
    outbound policy, which aiohttp's automatic redirects would bypass. The whole
    fetch runs under ``settings.fetch_deadline``. ``validators`` (ETag,
    Last-Modified of an earlier visit, either may be empty) make it a
    conditional GET.
    """
    result = FetchResult(url=url, final_url=url)
    try:
        async with asyncio.timeout(settings.fetch_deadline):
            return await _fetch(session, url, settings, hop_allowed, result, validators)
    except TimeoutError:
        result.reason = "timeout"
        return result


async def _fetch(
    session: aiohttp.ClientSession,
    url: str,
    settings: CrawlerSettings,
    hop_allowed: HopCheck | None,
    result: FetchResult,
    validators: tuple[str, str] | None = None,
) -> FetchResult:
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.connect_timeout, sock_read=settings.read_timeout
    )
    headers = {"User-Agent": settings.user_agent, "Accept": _ACCEPT}
    if validators is not None:
        etag, last_modified = validators
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
    current = url
    try:
        for hop in range(settings.max_redirects + 1):
            if not settings.outbound.url_allowed(current):
                result.final_url = current
                result.reason = "blocked"
                return result
            async with session.get(
                current, headers=headers, allow_redirects=False, timeout=timeout
            ) as resp:
                result.status = resp.status
                result.final_url = current
                result.etag = resp.headers.get("ETag", "")
                result.last_modified = resp.headers.get("Last-Modified", "")
                result.http_version = f"{resp.version.major}.{resp.version.minor}" if resp.version else "1.1"
                result.reason_phrase = resp.reason or ""
                result.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
                location = resp.headers.get("Location")
                if resp.status in REDIRECT_STATUSES and location:
                    target = canonicalize(location, base=current)
                    if target is None:
                        result.reason = "bad_url"
                        return result
                    if hop >= settings.max_redirects:
                        result.reason = "too_many_redirects"
                        return result
                    if hop_allowed is not None and not await hop_allowed(target):
                        result.final_url = target
                        result.reason = "robots"
                        return result
                    result.redirects += 1
                    current = target
                    continue
                if resp.status == 304 and validators is not None:
                    result.reason = "not_modified"
                    return result
                if not 200 <= resp.status < 300:
                    result.reason = f"http_{resp.status}"
                    return result
                raw_type = resp.headers.get("Content-Type")
                # No Content-Type at all: sniffing is more trouble than it is
                # worth; assume HTML like browsers mostly do.
                ctype = resp.content_type if raw_type else "text/html"
                result.content_type = ctype
                if ctype not in HTML_TYPES:
                    result.reason = "not_html"
                    return result
                try:
                    result.charset = resp.charset
                except Exception:
                    result.charset = None
                body = bytearray()
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    body += chunk
                    if len(body) > settings.max_body_bytes:
                        del body[settings.max_body_bytes :]
                        result.truncated = True
                        # do not drain the rest: drop the connection instead
                        resp.close()
                        break
                result.body = bytes(body)
                return result
        result.reason = "too_many_redirects"
        return result
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        result.reason = classify_exception(exc)
        if result.reason == "error":
            log.debug("fetch %s failed: %r", current, exc)
        return result
