"""The Peer: one object that owns every part of a running peer.

Tests start Peers; the CLI starts one; the web UI and the JSON API talk to it
through the methods below and nothing else.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from crawler.types import CrawlSpec
from yasearch import __version__
from yasearch.app import build_app
from yasearch.config import Config
from yasearch.identity import load_or_create
from yasearch.index import LocalIndex
from yasearch.jobs import Job, JobManager
from yasearch.query import parse_query
from yasearch.records import SearchResponse
from yasearch.search import search_local

log = logging.getLogger(__name__)


class Peer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.identity = load_or_create(self.data_dir)
        self.name = config.name or f"peer-{self.identity.hex[:8]}"
        self.index = LocalIndex(
            self.data_dir / "index",
            commit_interval=config.commit_interval,
            commit_batch=config.commit_batch,
            limitmb=config.index_limitmb,
        )
        self.jobs = JobManager(config, self.index)
        self.started_at = 0.0
        self.port = config.port
        self._runner: web.AppRunner | None = None
        self._started = False

    @property
    def peer_id(self) -> str:
        return self.identity.hex

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "", "::") else self.config.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self.started_at = time.time()
        await self.index.open()
        self._runner = web.AppRunner(build_app(self), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            await self.index.close()
            raise OSError(
                e.errno, f"cannot listen on {self.config.host}:{self.config.port} ({e.strerror}); "
                "is another peer running there? choose another --port"
            ) from None
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        if sockets:
            self.port = sockets[0].getsockname()[1]
        await self.jobs.start()
        self._started = True
        log.info("peer %s (%s) listening on %s", self.name, self.peer_id[:12], self.url)

    async def stop(self) -> None:
        """Clean shutdown: stop crawling, commit the index, close everything."""
        if not self._started:
            return
        self._started = False
        await self.jobs.stop()
        if self._runner:
            await self._runner.cleanup()
        await self.index.close()

    async def __aenter__(self) -> "Peer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- public API (used by the JSON API, the web UI and tests) ---------------

    async def search(self, q: str, *, limit: int = 10, offset: int = 0, scope: str = "global") -> SearchResponse:
        """Search. In a network of one, 'global' is answered from the local index."""
        parsed = parse_query(q)
        resp = await search_local(self.index, parsed, limit=limit, offset=offset)
        resp.scope = scope
        return resp

    async def start_crawl(self, spec: CrawlSpec) -> Job:
        return await self.jobs.create(spec)

    async def status(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "name": self.name,
            "version": __version__,
            "url": self.url,
            "uptime_s": round(time.time() - self.started_at, 1),
            "documents": self.index.doc_count(),
            "postings_held": 0,
            "peers_known": 0,
            "crawl": self.jobs.summary(),
            "publish": {"pending": 0, "sent": 0, "failed": 0},
            "index": {"path": str(self.data_dir / "index"), "documents": self.index.doc_count()},
        }

    async def peers(self) -> list[dict[str, Any]]:
        return [
            {
                "peer_id": self.peer_id,
                "name": self.name,
                "url": self.url,
                "version": __version__,
                "documents": self.index.doc_count(),
                "self": True,
                "last_seen": time.time(),
            }
        ]
