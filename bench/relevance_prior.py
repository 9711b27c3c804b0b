"""The static prior from the link graph, measured before it is built (``--prior``).

A prior folded into ranking must travel with every posting or record to keep
the network ranking like one big index (the wire format carries neither an
inlink count nor a free field for one), so it is first measured here, outside
yasearch: the one-peer system's best :data:`DEPTH` results of each query are
rescored with ``score * (1 + weight * log(1 + inlinks) / log(1 + MAX))``, where
``inlinks`` is the number of distinct pages linking the result, as the peer's
anchor store counted them while crawling (at most ``MAX``), and re-sorted. The
row with weight 0 is the control (the same top-``DEPTH`` path, unchanged order).
"""

from __future__ import annotations

import math
from typing import Any, Awaitable, Callable

#: Results rescored per query.
DEPTH = 30
#: Weights tried (0: the control).
WEIGHTS = (0.0, 0.1, 0.25, 0.5)


def prior_search(peer: Any, weight: float) -> Callable[[str], Awaitable[list[str]]]:
    from yasearch.anchors import MAX_SOURCES_PER_TARGET

    cache: dict[str, int] = {}
    top = math.log1p(MAX_SOURCES_PER_TARGET)

    async def inlinks(doc: str) -> int:
        if doc not in cache:
            cache[doc] = await peer.jobs.anchors.store.inlinks(doc)
        return cache[doc]

    async def search(q: str) -> list[str]:
        resp = await peer.search(q, limit=DEPTH, scope="local")
        scored = []
        for i, h in enumerate(resp.results):
            factor = 1.0 + weight * math.log1p(await inlinks(h.doc_id)) / top
            scored.append((-h.score * factor, i, h.url))
        return [u for _s, _i, u in sorted(scored)][:10]

    return search
