"""Assembles the HTTP floor's aiohttp application: middleware, JSON API, p2p API.

The web UI, a floor above, is mounted on it by the composition root
(:mod:`yasearch.server`).
"""

from __future__ import annotations

from aiohttp import web

from yasearch import api, archiveapi, compat, metrics, middleware, openapi, p2p
from yasearch.httpkit import PEER_KEY
from yasearch.peer import Peer


def build_app(peer: Peer) -> web.Application:
    app = web.Application(client_max_size=peer.config.max_request_bytes)
    middleware.setup(app)
    app[PEER_KEY] = peer
    api.setup(app)
    archiveapi.setup(app)
    compat.setup(app)
    openapi.setup(app)
    p2p.setup(app)
    metrics.setup(app)
    return app
