"""A small HTTP client for the CLI commands that talk to a running peer."""

from __future__ import annotations

import os
from typing import Any

import aiohttp

DEFAULT_PEER = os.environ.get("YASEARCH_PEER", "http://127.0.0.1:8090")


class PeerError(RuntimeError):
    """The peer could not be reached or refused the request; the message says what to do."""


class PeerClient:
    def __init__(self, base_url: str = DEFAULT_PEER, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token or os.environ.get("YASEARCH_TOKEN")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "PeerClient":
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._session = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session:
            await self._session.close()

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        assert self._session is not None
        try:
            async with self._session.request(method, self.base_url + path, **kw) as resp:
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    data = None
                if resp.status >= 400:
                    msg = (data or {}).get("error", {}).get("message") if isinstance(data, dict) else None
                    raise PeerError(f"{self.base_url} answered {resp.status}: {msg or resp.reason}")
                return data
        except aiohttp.ClientConnectionError:
            raise PeerError(
                f"cannot reach a peer at {self.base_url}; start one with `yasearch peer` or pass --peer URL"
            ) from None
