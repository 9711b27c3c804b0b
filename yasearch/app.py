"""Assembles the aiohttp application: middleware, JSON API, p2p API, web UI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from yasearch import api, compat, middleware, openapi, p2p
from yasearch.httpkit import PEER_KEY

if TYPE_CHECKING:
    from yasearch.peer import Peer


def build_app(peer: "Peer") -> web.Application:
    app = web.Application(client_max_size=peer.config.max_request_bytes)
    middleware.setup(app)
    app[PEER_KEY] = peer
    api.setup(app)
    compat.setup(app)
    openapi.setup(app)
    p2p.setup(app, peer)
    # The UI sits a floor above HTTP: it is imported here, at the composition root,
    # until the composition itself moves above it (the peer builds its app today).
    from yasearch import webui

    webui.setup(app)
    return app
