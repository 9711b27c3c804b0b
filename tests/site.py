"""A local test web site on 127.0.0.1 that records every request.

Built from a dict ``path -> (status, content_type, body)`` plus helpers for robots.txt,
redirects, slow and huge responses and arbitrary handlers. Requests are recorded with
their arrival time (monotonic) so politeness can be asserted from the server's view.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Hit:
    path: str  # path and query as sent
    time: float  # time.monotonic() on arrival
    user_agent: str


@dataclass
class LocalSite:
    pages: dict[str, tuple[int, str, bytes | str]] = field(default_factory=dict)
    robots: str | None = None  # robots.txt body (served as text/plain); None = 404
    robots_status: int = 200
    handlers: dict[str, Handler] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    port: int = 0
    host: str = "127.0.0.1"  # any loopback address (127.0.0.0/8) works

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.request_event = asyncio.Event()

    # -- building ----------------------------------------------------------------

    def page(self, path: str, body: bytes | str, *, status: int = 200,
             content_type: str = "text/html; charset=utf-8") -> "LocalSite":
        self.pages[path] = (status, content_type, body)
        return self

    def html(self, path: str, *, title: str = "", body: str = "", links: list[str] = (),
             head: str = "") -> "LocalSite":
        anchors = "".join(f'<a href="{l}">{l}</a> ' for l in links)
        doc = (f"<!doctype html><html><head><title>{title or path}</title>{head}</head>"
               f"<body><p>{body}</p>{anchors}</body></html>")
        return self.page(path, doc)

    def redirect(self, path: str, target: str, status: int = 301) -> "LocalSite":
        async def h(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": target})
        self.handlers[path] = h
        return self

    def slow(self, path: str, seconds: float, body: str = "<p>slow</p>") -> "LocalSite":
        async def h(request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(seconds)
            return web.Response(text=body, content_type="text/html")
        self.handlers[path] = h
        return self

    def stream(self, path: str, body: Callable[[], AsyncIterator[bytes]]) -> "LocalSite":
        """An HTML page streamed chunk by chunk from ``body()``; a client hanging up ends it."""
        async def h(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8"})
            await resp.prepare(request)
            try:
                async with aclosing(body()) as chunks:
                    async for data in chunks:
                        await resp.write(data)
                await resp.write_eof()
            except (ConnectionResetError, ConnectionError):
                pass
            return resp
        self.handlers[path] = h
        return self

    def huge(self, path: str, size: int, chunk: int = 64 * 1024) -> "LocalSite":
        """A streamed HTML page of ``size`` bytes (the client is expected to stop early)."""
        async def body() -> AsyncIterator[bytes]:
            yield b"<html><head><title>huge</title></head><body>"
            sent = 0
            while sent < size:
                yield b"x" * chunk + b" "
                sent += chunk + 1
        return self.stream(path, body)

    def drip(self, path: str, interval: float, chunks: int = 1000) -> "LocalSite":
        """An HTML page sent one byte every ``interval`` seconds (a slow-drip server)."""
        async def body() -> AsyncIterator[bytes]:
            for _ in range(chunks):
                yield b" "
                await asyncio.sleep(interval)
        return self.stream(path, body)

    # -- serving -----------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(Hit(request.path_qs, time.monotonic(), request.headers.get("User-Agent", "")))
        self.request_event.set()
        if request.path == "/robots.txt" and "/robots.txt" not in self.handlers:
            if self.robots is None:
                return web.Response(status=404, text="no robots")
            return web.Response(status=self.robots_status, text=self.robots, content_type="text/plain")
        handler = self.handlers.get(request.path_qs) or self.handlers.get(request.path)
        if handler is not None:
            return await handler(request)
        entry = self.pages.get(request.path_qs) or self.pages.get(request.path)
        if entry is None:
            return web.Response(status=404, text="not found")
        status, ctype, body = entry
        data = body.encode("utf-8") if isinstance(body, str) else body
        return web.Response(status=status, body=data, headers={"Content-Type": ctype})

    async def start(self) -> "LocalSite":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port)
        await self._site.start()
        server = self._runner.addresses[0]
        self.port = server[1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- inspecting --------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def paths(self) -> list[str]:
        return [h.path for h in self.hits]

    def count(self, path: str) -> int:
        return sum(1 for h in self.hits if h.path == path)

    def gaps(self, include_robots: bool = True) -> list[float]:
        """Seconds between consecutive request arrivals."""
        times = [h.time for h in self.hits if include_robots or h.path != "/robots.txt"]
        return [b - a for a, b in zip(times, times[1:])]


def closed_port() -> int:
    """A port on 127.0.0.1 with (almost certainly) nothing listening: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
