"""A small HTTP client for the CLI commands that talk to a running peer."""

from __future__ import annotations

import os
from typing import Any

import aiohttp

DEFAULT_PEER = os.environ.get("YASEARCH_PEER", "http://127.0.0.1:8090")


def peer_url(text: str) -> str:
    """``--peer`` as given: a URL, or ``HOST:PORT`` like ``--bootstrap`` takes (http is meant)."""
    text = text.strip().rstrip("/")
    _, sep, port = text.rpartition(":")
    return "http://" + text if "://" not in text and sep and port.isdigit() else text


class PeerError(RuntimeError):
    """The peer could not be reached or refused the request; the message says what to do."""


class PeerClient:
    def __init__(self, base_url: str = DEFAULT_PEER, token: str | None = None) -> None:
        self.base_url = peer_url(base_url)
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
        """One API call; every failure becomes a :class:`PeerError` with a hint."""
        assert self._session is not None
        url = self.base_url + path
        if not url.startswith(("http://", "https://")):
            raise PeerError(f"not a peer URL: {self.base_url!r} (expected something like {DEFAULT_PEER})")
        try:
            async with self._session.request(method, url, **kw) as resp:
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    data = None
                if resp.status >= 400:
                    err = data.get("error") if isinstance(data, dict) else None
                    msg = err.get("message") if isinstance(err, dict) else None
                    raise PeerError(f"{self.base_url} answered {resp.status}: {msg or resp.reason}")
                if not isinstance(data, dict):
                    raise PeerError(f"{self.base_url} did not answer with JSON; is it a yasearch peer?")
                return data
        except aiohttp.InvalidURL:
            raise PeerError(f"not a peer URL: {self.base_url!r} (expected something like {DEFAULT_PEER})") from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise PeerError(f"the peer at {self.base_url} did not answer in time; is it overloaded?") from None
        except aiohttp.ClientConnectionError:
            raise PeerError(
                f"cannot reach a peer at {self.base_url}; start one with `yasearch peer` or pass --peer URL"
            ) from None
        except aiohttp.ClientError as e:
            raise PeerError(f"talking to the peer at {self.base_url} failed: {e}") from None


    async def download(self, path: str, out: Any) -> int:
        """Stream a GET's body into the binary file ``out``; returns the bytes written."""
        assert self._session is not None
        written = 0
        try:
            async with self._session.get(self.base_url + path, timeout=aiohttp.ClientTimeout(total=None)) as resp:
                if resp.status >= 400:
                    raise PeerError(f"{self.base_url} answered {resp.status} to {path}")
                async for chunk in resp.content.iter_chunked(256 * 1024):
                    out.write(chunk)
                    written += len(chunk)
        except aiohttp.ClientConnectionError:
            raise PeerError(f"cannot reach a peer at {self.base_url}; start one with `yasearch peer` or pass --peer URL") from None
        return written

    async def upload(self, path: str, file: Any) -> Any:
        """POST the binary file ``file`` streamed as the body; the JSON answer."""
        return await self.request(
            "POST", path, data=file, headers={"Content-Type": "application/octet-stream"},
            timeout=aiohttp.ClientTimeout(total=None),
        )
