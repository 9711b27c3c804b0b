"""Peer info records: what a DHT contact tells us about itself, and its validation.

Everything here arrives over UDP from peers we do not trust and ends up in our UI and
in our routing of postings, so it is reduced to known, typed, bounded fields once, at
the boundary (:func:`validate_info`), and nowhere else.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ID_BYTES = 20

# Bounds on a peer info record: it rides in one UDP datagram (requests are capped at
# 8 KiB by rpcudp) and ends up in our UI, so everything is typed and length-limited.
INFO_NAME_MAX = 64
INFO_URL_MAX = 300
INFO_VERSION_MAX = 32
INFO_STATS_MAX = 16
INFO_STAT_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
INFO_INT_MAX = 2**53
#: What a peer says it is (:mod:`yasearch.reachability`): others file a "client-only"
#: peer in no routing table and make it responsible for no term.
REACH_KINDS = ("public", "client-only")

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class PeerInfo:
    """What we know about another peer: its identity, where its HTTP API is, its size.

    ``last_seen`` is the wall-clock time of the last datagram we got from it (request or
    reply); ``documents`` and ``stats`` are what it last reported (0 / {} until then).
    """

    node_id: str  # hex
    name: str
    http_url: str
    version: str
    documents: int
    last_seen: float
    host: str = ""
    port: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    info_received: bool = False
    #: "public", or "client-only" (see :data:`REACH_KINDS`).
    reach: str = "public"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_node_id(value: object) -> bool:
    """A Kademlia node ID or key: exactly 20 bytes."""
    return isinstance(value, bytes) and len(value) == ID_BYTES


def _clean_str(value: object, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    return _CONTROL_RE.sub("", value).strip()[:limit]


def clean_int(value: object) -> int | None:
    """``value`` if it is a non-negative int (not a bool) up to ``INFO_INT_MAX``, else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= INFO_INT_MAX else None


def is_port(value: object) -> bool:
    """A usable UDP port number (1-65535) from the network or a file."""
    port = clean_int(value)
    return port is not None and 0 < port < 65536


def _clean_url(value: object) -> str | None:
    if not isinstance(value, str) or len(value) > INFO_URL_MAX or _CONTROL_RE.search(value):
        return None
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username or parts.password or parts.query or parts.fragment:
        return None
    return value.rstrip("/")


def validate_info(raw: object) -> dict[str, Any]:
    """Reduce a peer info record from the network to known, typed, bounded fields.

    Unknown keys and values of the wrong type are dropped (not the whole record), so a
    newer peer with extra fields still gets its name and URL across. Strings are
    stripped of control characters and truncated; the URL must be plain http(s).
    """
    out: dict[str, Any] = {}
    if not isinstance(raw, dict):
        return out
    name = _clean_str(raw.get("name"), INFO_NAME_MAX)
    if name:
        out["name"] = name
    version = _clean_str(raw.get("version"), INFO_VERSION_MAX)
    if version:
        out["version"] = version
    url = _clean_url(raw.get("http_url"))
    if url:
        out["http_url"] = url
    docs = clean_int(raw.get("documents"))
    if docs is not None:
        out["documents"] = docs
    if raw.get("reach") in REACH_KINDS:
        out["reach"] = raw["reach"]
    stats_raw = raw.get("stats")
    if isinstance(stats_raw, dict):
        stats: dict[str, int] = {}
        for key, value in stats_raw.items():
            if len(stats) >= INFO_STATS_MAX:
                break
            v = clean_int(value)
            if isinstance(key, str) and INFO_STAT_KEY_RE.match(key) and v is not None:
                stats[key] = v
        if stats:
            out["stats"] = stats
    return out


def is_loopback_or_wildcard(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def resolve_http_url(advertised: str | None, ip: str | None, port: int | None) -> str:
    """The HTTP base URL of a contact: its advertised URL, or ``http://ip:port`` (DESIGN).

    A peer bound to 0.0.0.0 tends to advertise ``http://127.0.0.1:P``, which is wrong
    for anyone on another machine; if the advertised host is loopback/wildcard but the
    datagram came from elsewhere, the host is replaced by the sender's address.
    """
    ip = ip or "127.0.0.1"
    netloc_ip = f"[{ip}]" if ":" in ip else ip
    if not advertised:
        return f"http://{netloc_ip}:{port}"
    parts = urlsplit(advertised)
    if is_loopback_or_wildcard(parts.hostname or "") and not is_loopback_or_wildcard(ip):
        netloc = f"{netloc_ip}:{parts.port}" if parts.port else netloc_ip
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return advertised

