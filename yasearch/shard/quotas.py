"""Caps on what strangers may store here: the whole store, and per source address.

The per-origin quota alone does not bound anything on an open network: origin ids
are free, so a sender that names a fresh origin per request gets a fresh quota per
request. Two caps close that:

* **a global cap** (``max_postings``): new postings are refused once the store holds
  that many, whoever sends them, so unauthenticated posts cannot fill the disk
  (records follow postings, at most one per posting's document, so they are bounded
  too);
* **a per-source quota** (``quota_per_source``): every origin is bound to the IP
  address it last sent from, and an address may hold at most that many postings
  over all the origins bound to it. Fresh origin ids from one address share one
  quota. The counts live in their own table, kept in the same transaction as the
  postings (like the per-origin counts), so a check is O(1) and never drifts.

Sources in ``exempt`` networks (loopback by default: the demo and tests run many
peers on one machine) are not counted per address; the global cap still applies.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_MAX_POSTINGS = 20_000_000
DEFAULT_QUOTA_PER_SOURCE = 4_000_000
DEFAULT_EXEMPT = ("127.0.0.0/8", "::1/128")

SCHEMA = """
CREATE TABLE IF NOT EXISTS origin_sources (
    origin TEXT PRIMARY KEY,
    source TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY,
    postings INTEGER NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Caps:
    max_postings: int = DEFAULT_MAX_POSTINGS
    quota_per_source: int = DEFAULT_QUOTA_PER_SOURCE
    exempt: tuple[str, ...] = DEFAULT_EXEMPT
    _nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_postings < 0 or self.quota_per_source < 0:
            raise ValueError("max_postings and quota_per_source must be >= 0")
        object.__setattr__(self, "_nets", tuple(ipaddress.ip_network(n, strict=False) for n in self.exempt))

    def source_key(self, source: str | None) -> str | None:
        """The address a sender is counted under, or None when it is not counted
        (unknown, or in an exempt network). IPv4-mapped IPv6 counts as its IPv4."""
        if not source:
            return None
        try:
            ip = ipaddress.ip_address(source.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self._nets):
            return None
        return str(ip)


def total_postings(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(sum(postings), 0) FROM origins").fetchone()[0])


def source_held(conn: sqlite3.Connection, source: str) -> int:
    row = conn.execute("SELECT postings FROM sources WHERE source=?", (source,)).fetchone()
    return row[0] if row else 0


def _add(conn: sqlite3.Connection, source: str, delta: int) -> None:
    n = source_held(conn, source) + delta
    if n > 0:
        conn.execute(
            "INSERT INTO sources(source, postings) VALUES (?,?) "
            "ON CONFLICT(source) DO UPDATE SET postings=excluded.postings",
            (source, n),
        )
    else:
        conn.execute("DELETE FROM sources WHERE source=?", (source,))


def bind(conn: sqlite3.Connection, origin: str, source: str, held: int) -> None:
    """Bind ``origin`` to ``source``; its ``held`` postings move to that address's count."""
    row = conn.execute("SELECT source FROM origin_sources WHERE origin=?", (origin,)).fetchone()
    if row is not None and row[0] == source:
        return
    if row is not None and held:
        _add(conn, row[0], -held)
    if held:
        _add(conn, source, held)
    conn.execute(
        "INSERT INTO origin_sources(origin, source) VALUES (?,?) "
        "ON CONFLICT(origin) DO UPDATE SET source=excluded.source",
        (origin, source),
    )


def moved(conn: sqlite3.Connection, changes: Iterable[tuple[str, int, int]]) -> None:
    """Origins' counts changed from ``old`` to ``new``: follow on their addresses."""
    for origin, old, new in changes:
        row = conn.execute("SELECT source FROM origin_sources WHERE origin=?", (origin,)).fetchone()
        if row is None:
            continue
        if new != old:
            _add(conn, row[0], new - old)
        if new <= 0:
            conn.execute("DELETE FROM origin_sources WHERE origin=?", (origin,))
