"""Geometry for the network page's SVGs: the Kademlia ID ring and sparklines.

Everything is computed here and drawn by the template as plain SVG, so the
pictures need no JavaScript (and no inline style: colours are presentation
attributes, which the Content-Security-Policy allows).
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Sequence

ID_BITS = 160
ID_SPACE = 1 << ID_BITS
_HEX_ID = re.compile(r"[0-9a-fA-F]{40}")

#: Ring picture: a square viewBox, the ring's centre and radius.
RING_SIZE = 260
RING_R = 100
RING_WIDTH = 16

#: Colour-blind-friendly palette (Okabe-Ito plus two), readable on light and dark.
PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#8c6bb1", "#7f7f7f", "#a6761d"]


def _point(angle_deg: float, r: float, c: float = RING_SIZE / 2) -> tuple[float, float]:
    """0 degrees at the top, clockwise."""
    a = math.radians(angle_deg)
    return round(c + r * math.sin(a), 2), round(c - r * math.cos(a), 2)


def _arc_path(start_deg: float, end_deg: float, r: float = RING_R) -> str:
    """An SVG path along the circle from start to end (clockwise, end > start)."""
    span = end_deg - start_deg
    if span >= 359.99:  # one peer holds everything: two half circles
        x0, y0 = _point(0, r)
        x1, y1 = _point(180, r)
        return f"M {x0} {y0} A {r} {r} 0 1 1 {x1} {y1} A {r} {r} 0 1 1 {x0} {y0}"
    x0, y0 = _point(start_deg, r)
    x1, y1 = _point(end_deg, r)
    large = 1 if span > 180 else 0
    return f"M {x0} {y0} A {r} {r} 0 {large} 1 {x1} {y1}"


def id_ring(peers: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Each peer at angle ID / 2^160 x 360 degrees and its share of the key space.

    A peer's share is the arc from the midpoint to its predecessor to the midpoint
    to its successor: the keys numerically closest to it on the ring. Kademlia
    assigns keys by XOR distance, which this approximates; the shares sum to 100 %.
    Peers whose ID is not 40 hex digits (another peer's claim) are left out.
    """
    nodes = []
    for p in peers:
        pid = str(p.get("peer_id") or "")
        if not _HEX_ID.fullmatch(pid):
            continue
        nodes.append({"peer_id": pid.lower(), "name": str(p.get("name") or ""), "self": bool(p.get("self")), "id": int(pid, 16)})
    nodes.sort(key=lambda n: n["id"])
    # one entry per ID (a peer listed twice would otherwise split its own share)
    unique: list[dict[str, Any]] = []
    for n in nodes:
        if unique and unique[-1]["id"] == n["id"]:
            unique[-1]["self"] = unique[-1]["self"] or n["self"]
            continue
        unique.append(n)
    count = len(unique)
    out = []
    for i, n in enumerate(unique):
        if count == 1:
            lo, hi = n["id"] - ID_SPACE // 2, n["id"] + ID_SPACE // 2
        else:
            prev = unique[i - 1]["id"] - (ID_SPACE if i == 0 else 0)
            nxt = unique[(i + 1) % count]["id"] + (ID_SPACE if i == count - 1 else 0)
            lo, hi = (prev + n["id"]) / 2, (n["id"] + nxt) / 2
        share = (hi - lo) / ID_SPACE
        angle = n["id"] / ID_SPACE * 360
        start, end = lo / ID_SPACE * 360, hi / ID_SPACE * 360
        x, y = _point(angle, RING_R)
        lx, ly = _point(angle, RING_R + RING_WIDTH + 6)
        out.append(
            {
                **n,
                "angle": round(angle, 3),
                "share": share,
                "share_pct": round(share * 100, 3),
                "x": x,
                "y": y,
                "label_x": lx,
                "label_y": ly,
                "arc": _arc_path(start, end),
                "colour": PALETTE[i % len(PALETTE)],
            }
        )
    return {
        "peers": out,
        "size": RING_SIZE,
        "r": RING_R,
        "width": RING_WIDTH,
        "c": RING_SIZE / 2,
        "ticks": [{"deg": d, "x1": _point(d, RING_R - RING_WIDTH / 2 - 2)[0], "y1": _point(d, RING_R - RING_WIDTH / 2 - 2)[1],
                   "x2": _point(d, RING_R - RING_WIDTH / 2 - 8)[0], "y2": _point(d, RING_R - RING_WIDTH / 2 - 8)[1]}
                  for d in (0, 90, 180, 270)],
    }


SPARK_W = 160
SPARK_H = 36
SPARK_PAD = 2


def sparkline(values: Sequence[float], width: int = SPARK_W, height: int = SPARK_H) -> dict[str, Any] | None:
    """Polyline points for a series (oldest first); None with fewer than two values."""
    if len(values) < 2:
        return None
    lo, hi = min(values), max(values)
    span = hi - lo
    step = (width - 2 * SPARK_PAD) / (len(values) - 1)
    inner = height - 2 * SPARK_PAD
    points = []
    for i, v in enumerate(values):
        # a flat series is drawn along the middle
        y = SPARK_PAD + inner / 2 if span == 0 else SPARK_PAD + inner - (v - lo) / span * inner
        points.append(f"{SPARK_PAD + i * step:.1f},{y:.1f}")
    last_x, last_y = points[-1].split(",")
    return {
        "points": " ".join(points),
        "width": width,
        "height": height,
        "min": lo,
        "max": hi,
        "last": values[-1],
        "last_x": last_x,
        "last_y": last_y,
        "count": len(values),
    }
