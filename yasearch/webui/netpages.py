"""The network and status pages: this peer, the peers it knows, their figures."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from yasearch.status import backlog_note
from yasearch.history import FIGURES
from yasearch.webui import netviz
from yasearch.webui.filters import safe_href
from yasearch.webui.render import PEER, render


def _peer_row(p: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """One row of the peers table. Everything but the numbers came from another peer:
    strings are coerced, the URL becomes a link only if it is http(s)."""

    def count(v: Any) -> int | None:
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

    is_self = bool(p.get("self"))
    stats = p.get("stats") if isinstance(p.get("stats"), dict) else {}
    postings = status.get("postings_held") if is_self else p.get("postings_held", stats.get("postings_held"))
    url = str(p.get("url") or "")
    last_seen = p.get("last_seen")
    return {
        "peer_id": str(p.get("peer_id") or ""),
        "name": str(p.get("name") or ""),
        "url": url,
        "href": safe_href(url) if url else "#",
        "version": str(p.get("version") or ""),
        "documents": count(p.get("documents")),
        "postings": count(postings),
        "self": is_self,
        "reach": "client-only" if p.get("reach") == "client-only" else "public",
        "observed": str(p.get("observed") or ""),
        "last_seen": last_seen if isinstance(last_seen, (int, float)) and not isinstance(last_seen, bool) else 0,
    }


async def network_page(request: web.Request) -> web.Response:
    peer = request.app[PEER]
    status = await peer.status()
    rows = [_peer_row(p, status) for p in await peer.peers()]
    # this peer first, then the most recently seen
    rows.sort(key=lambda r: (not r["self"], -r["last_seen"], r["peer_id"]))
    others = [r for r in rows if not r["self"]]
    return render(
        request,
        "network.html",
        active="network",
        page_title="Network",
        info=status,
        publish=status.get("publish") or {},
        dht=status.get("dht") or {},
        net=status.get("network") or {},
        peers=rows,
        network_documents=sum(r["documents"] or 0 for r in rows),
        others=len(others),
        ring=netviz.id_ring(rows),
        sparklines=[
            {"name": name, "label": label, "line": netviz.sparkline(peer.history.series(name))}
            for name, label in FIGURES.items()
        ],
        history_span=_history_span(peer.history.times()),
    )


def _history_span(times: list[float]) -> str:
    """How long the sparklines cover, e.g. '5 min', for their caption."""
    if len(times) < 2:
        return ""
    span = times[-1] - times[0]
    return f"{int(span)} s" if span < 120 else f"{int(span // 60)} min"


# -- status --------------------------------------------------------------------


def _flatten(section: dict[str, Any]) -> dict[str, Any]:
    """One level of nesting (``network.p2p.requests``) becomes ``p2p.requests``: a
    status card lists figures, not dicts."""
    out: dict[str, Any] = {}
    for k, v in section.items():
        if isinstance(v, dict):
            out.update({f"{k}.{sub}": x for sub, x in v.items()})
        else:
            out[k] = v
    return out


async def status_page(request: web.Request) -> web.Response:
    peer = request.app[PEER]
    status = await peer.status()
    peers = await peer.peers()
    overview = {k: v for k, v in status.items() if not isinstance(v, (dict, list))}
    sections = {k: _flatten(v) for k, v in status.items() if isinstance(v, dict)}
    return render(
        request,
        "status.html",
        active="status",
        page_title="Status",
        info=status,
        overview=overview,
        sections=sections,
        peers=peers,
        backlog_note=backlog_note(status),
    )

