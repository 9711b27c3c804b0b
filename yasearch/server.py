"""The composition root: a peer, its HTTP app with the web UI, and its TCP site.

The HTTP site binds first: with port 0 the operating system picks a free port,
and the peer's Kademlia node must listen on the same port number over UDP, so
the peer starts only once the port is known. When the peer stops (or fails to
start) the site goes too.

    peer = await start_peer(config)       # the CLI, the demo, benchmarks
    async with serve(config) as peer: ... # scripts and tests
    server = PeerServer(config)           # when the app itself is needed (tests)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from yasearch import webui
from yasearch.app import build_app
from yasearch.config import Config, ConfigError
from yasearch.logsetup import ACCESS_FORMAT, access_logger
from yasearch.peer import Peer


def build_site_app(peer: Peer) -> web.Application:
    """The whole site of a peer: the HTTP floor's app with the web UI mounted on it."""
    app = build_app(peer)
    webui.setup(app)
    return app


class PeerServer:
    """One peer behind its HTTP site."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.peer = Peer(config)
        self.app = build_site_app(self.peer)
        self._runner: web.AppRunner | None = None

    async def start(self) -> Peer:
        """Bind the site, then start the peer on the bound port; returns the peer.
        A config that exposes admin routes without a token raises ConfigError."""
        exposed = self.config.exposure_error()
        if exposed:
            raise ConfigError(exposed)
        host, port = self.config.host, self.config.port
        if self.config.access_log:
            self._runner = web.AppRunner(
                self.app, access_log=access_logger(self.config.access_log), access_log_format=ACCESS_FORMAT
            )
        else:
            self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await self.close_site()
            raise OSError(
                e.errno, f"cannot listen on {host}:{port} ({e.strerror}); "
                "is another peer running there? choose another --port"
            ) from None
        self.peer.on_stop.append(self.close_site)
        try:
            await self.peer.start(http_port=self._runner.addresses[0][1])
        except BaseException:
            await self.close_site()
            raise
        return self.peer

    async def close_site(self) -> None:
        """Stop serving HTTP (Peer.stop calls this; tests call it to simulate a crash)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def stop(self) -> None:
        """Stop the peer; the site closes with it."""
        await self.peer.stop()
        await self.close_site()


async def start_peer(config: Config) -> Peer:
    """A started peer serving HTTP; ``await peer.stop()`` stops both."""
    return await PeerServer(config).start()


@contextlib.asynccontextmanager
async def serve(config: Config) -> AsyncIterator[Peer]:
    """``async with serve(config) as peer``: a started peer, stopped on exit."""
    server = PeerServer(config)
    await server.start()
    try:
        yield server.peer
    finally:
        await server.stop()
