"""Helpers for tests that start real peers: in-process, or as separate processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any

import aiohttp
import aiohttp.web

from yasearch.config import Config

ROOT = Path(__file__).resolve().parent.parent


def peer_config(data_dir: Path, **kw: Any) -> Config:
    """A config for test peers: any free port, no politeness delay unless asked, one parse process."""
    kw.setdefault("port", 0)
    kw.setdefault("crawl_delay", 0.0)
    kw.setdefault("parse_workers", 0)
    kw.setdefault("commit_interval", 0.2)
    kw.setdefault("allow_private_networks", True)  # the test sites are on loopback
    return Config(data_dir=data_dir, **kw)


def free_port() -> int:
    """A TCP port that was free a moment ago (for peers started as processes)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeerProcess:
    """`yasearch peer` as a child process, killable with SIGKILL like a crash."""

    def __init__(self, data_dir: Path, port: int, *extra: str) -> None:
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"peer-{port}.log"

    async def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        cmd = [sys.executable, "-m", "yasearch", "peer", "--port", str(self.port), "--data-dir", str(self.data_dir), "--no-seeds", "--allow-private-networks", *self.extra]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        await self.wait_ready()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as s:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"peer exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
                try:
                    async with s.get(self.url + "/api/v1/status") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"peer on {self.url} did not come up: {self.log.read_text()[-2000:]}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no cleanup runs, exactly like a crash or power loss."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def terminate(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=30)
        return self.proc.returncode if self.proc else 0


class StaticSite:
    """A few HTML pages on 127.0.0.1 for tests that need something to crawl.

    Records every request path in ``hits`` so tests can tell what was fetched.
    """

    def __init__(self, pages: dict[str, str], delay: float = 0.0) -> None:
        self.pages = pages
        self.delay = delay
        self.hits: list[str] = []
        self.url = ""
        self._runner: aiohttp.web.AppRunner | None = None

    async def _handle(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        self.hits.append(request.path)
        if request.path == "/robots.txt":
            return aiohttp.web.Response(text="User-agent: *\nAllow: /\n")
        if self.delay:
            await asyncio.sleep(self.delay)
        body = self.pages.get(request.path)
        if body is None:
            return aiohttp.web.Response(status=404, text="not found")
        return aiohttp.web.Response(text=body, content_type="text/html")

    async def start(self) -> str:
        app = aiohttp.web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = aiohttp.web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = aiohttp.web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()


def chain_pages(n: int, page: Callable[[int, str], str]) -> dict[str, str]:
    """n pages in a chain "/", "/p1", "/p2", ...: ``page(i, link)`` writes page i's HTML
    around ``link``, the link to the next page ("" on the last one)."""
    pages = {}
    for i in range(n):
        path = "/" if i == 0 else f"/p{i}"
        nxt = f'<a href="/p{i + 1}">next</a>' if i + 1 < n else ""
        pages[path] = page(i, nxt)
    return pages


def linked_pages(n: int, words: list[str] | None = None) -> dict[str, str]:
    """n pages in a chain from "/", each naming a unique word and a shared one."""
    words = words or [f"uniqueword{i}" for i in range(n)]
    return chain_pages(n, lambda i, nxt: (
        f"<html><head><title>Page {i} {words[i]}</title></head>"
        f"<body><h1>Heading {i}</h1><p>common text about zebras and {words[i]}.</p>{nxt}</body></html>"
    ))


async def assert_json_error(resp: aiohttp.ClientResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """``resp`` is the JSON error of the API's shape, ``{"error": {"code", "message"}}``,
    with this status (and code, if given); returns the error object."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def bad_search_params(q: str, limit: str, offset: str, scope: str,
                      bad_limits: tuple[str, ...]) -> list[tuple[dict[str, str], str]]:
    """(query parameters, error code) a search endpoint answers 400 to, its parameters named
    as it names them: no query, a blank one, one too long, bad ``limit`` values (``bad_limits``),
    a negative ``offset``, an unknown ``scope``, no searchable word (punctuation only; a
    query of stopwords only is answered, as a phrase)."""
    return [
        ({}, "missing_query"),
        ({q: "   "}, "missing_query"),
        ({q: "x" * 600}, "query_too_long"),
        *(({q: "a", limit: v}, "bad_parameter") for v in bad_limits),
        ({q: "a", offset: "-1"}, "bad_parameter"),
        ({q: "a", scope: "universe"}, "bad_parameter"),
        ({q: "!!! ???"}, "bad_query"),
    ]


async def eventually(check: Any, timeout: float = 60.0) -> None:
    """Poll real state until ``await check()`` holds (background work, retries)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)
