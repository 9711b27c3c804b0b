"""Reachability: the address others see this peer at, and whether they can dial it.

A peer behind NAT (or a firewall) can call out but nobody can call in: postings sent
to it, and queries for the terms it would hold, would fail. So before it joins, a
peer whose address is not fixed by configuration asks a few peers it knows of
(its bootstrap addresses and saved neighbours) to *dial it back*:

1. it sends ``POST /p2p/v1/reach {port, nonce}`` (:class:`ReachRequest`) to a peer;
2. that peer dials the asker's own address, the TCP source address of the request
   (never an address named in the body: a peer cannot be made to dial a third party),
   at ``port``: ``POST /p2p/v1/reach/probe {nonce}`` (:class:`ProbeRequest`);
3. it answers the asker with the address it saw it at (:class:`ReachReply`).

The asker believes its own server, not the reply: it is reachable when one of its
nonces arrived at its HTTP server (a forged ``dialed: true`` proves nothing). The
observed address is adopted when a probe arrived for the address it was reported
with (the probe's ``Host`` header names the address dialled), or when two peers
report the same one; a single unconfirmed report is shown, never used.

A peer that asked and was not dialled back runs as a *client-only* peer (a peer
found public earlier steps down only when two peers could not reach it)
(:data:`CLIENT_ONLY`): it publishes and searches like any peer but says so, signed,
in its DHT handshakes and info record (:mod:`yasearch.dht.handshake`), and other
peers never file it in their routing tables, so it is responsible for no term.
``advertise = "host:port"`` in the config skips the check: the peer is public at
that address. A peer bound to loopback is in a network of one machine, public.
A peer nobody answered (the first peer of a network) is ``unknown``, treated as
public, and asks again later (:class:`yasearch.membership.Membership`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from msgspec import Meta, Struct

from yasearch.config import Config
from yasearch.network import Contact, PeerCallError, Transport
from yasearch.wire import PROTOCOL_VERSION, BadMessage, decode, encode

log = logging.getLogger(__name__)

PUBLIC = "public"
CLIENT_ONLY = "client-only"
UNKNOWN = "unknown"
#: Peers asked to dial back at once.
ASK_AT_MOST = 3
#: A nonce is good for this long (seconds); the probe comes while the asker waits.
NONCE_TTL = 30.0
#: Pending nonces kept at most (a flood of asks cannot grow memory).
NONCES_MAX = 64
#: Seconds one dial-back (and one ask) may take.
DIAL_TIMEOUT = 5.0
#: Seconds between checks while nobody answered, and once known (addresses change).
RECHECK_UNKNOWN = 10.0
RECHECK_KNOWN = 1800.0

Nonce = Annotated[str, Meta(min_length=32, max_length=32, pattern="^[0-9a-f]+$")]


class ReachRequest(Struct, forbid_unknown_fields=True):
    """``POST /p2p/v1/reach``: dial me back at my own address, TCP ``port``, with ``nonce``."""

    port: Annotated[int, Meta(ge=1, le=65535)]
    nonce: Nonce
    v: int = PROTOCOL_VERSION


class ReachReply(Struct):
    """The address the asker was seen at, and whether the dial-back got an answer."""

    observed: Annotated[str, Meta(max_length=64)]
    dialed: bool
    v: int = PROTOCOL_VERSION


class ProbeRequest(Struct, forbid_unknown_fields=True):
    """``POST /p2p/v1/reach/probe``: the dial-back itself."""

    nonce: Nonce
    v: int = PROTOCOL_VERSION


class ProbeReply(Struct):
    """Whether the nonce was one this peer is waiting for."""

    known: bool
    v: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Report:
    """One peer's answer: who (its URL), the address it saw us at, our nonce."""

    peer: str
    observed: str
    nonce: str


def parse_advertise(value: str) -> tuple[str, int] | None:
    """``"host:port"`` (IPv6 in brackets) as (host, port); None for "" or a malformed value."""
    host, _, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def decide(reports: Iterable[Report], probes: dict[str, str], port: int) -> tuple[str, str | None]:
    """``(kind, observed address or None)`` from the peers' ``reports`` and the
    ``probes`` that reached our server (nonce -> the ``Host`` they dialled).

    Reachable only if a probe of ours arrived; the observed address only if a probe
    arrived at the address its report named, or two peers report the same one.
    A report whose address is not an IP literal is ignored (hostile or broken).
    """
    good = [r for r in reports if _is_ip(r.observed)]
    if not good:
        return UNKNOWN, None
    arrived = [r for r in good if r.nonce in probes]
    confirmed = [r.observed for r in arrived if probes[r.nonce] == netloc(r.observed, port)]
    if confirmed:
        observed: str | None = confirmed[0]
    else:
        per_address = Counter(r.observed for r in {r.peer: r for r in good}.values())
        top = per_address.most_common(1)
        observed = top[0][0] if top and top[0][1] >= 2 else None
    return (PUBLIC if arrived else CLIENT_ONLY), observed


class Reachability:
    """This peer's kind (public, client-only or unknown) and its observed address.

    ``transport`` makes the HTTP calls (the peer's, with its outbound policy);
    ``port`` is called for the HTTP port (known once the site is bound).
    """

    def __init__(self, config: Config, transport: Transport, port: Callable[[], int]) -> None:
        self.config = config
        self.transport = transport
        self._port = port
        self.advertised = parse_advertise(config.advertise)
        host = config.host
        local = host in ("localhost", "::1") or host.startswith("127.")
        #: Whether this peer finds out its kind by asking (no ``advertise``, not loopback).
        self.asks = self.advertised is None and not local
        self.kind = UNKNOWN if self.asks else PUBLIC
        self.observed: str | None = netloc(*self.advertised) if self.advertised else None
        self.reported: list[str] = []  # what the peers asked last said (shown, not trusted)
        self.checked_at = 0.0
        self.dialbacks = 0  # dial-backs this peer did for others
        self._nonces: dict[str, float] = {}
        self._probes: dict[str, str] = {}

    def recheck_after(self) -> float:
        return RECHECK_UNKNOWN if self.kind == UNKNOWN else RECHECK_KNOWN

    def figures(self) -> dict[str, Any]:
        """For ``status``: kind, observed address, how it was decided."""
        return {
            "kind": self.kind if self.kind != UNKNOWN else PUBLIC,
            "checked": self.kind != UNKNOWN,
            "observed": self.observed,
            "advertise": self.config.advertise or None,
            "reported": list(self.reported),
            "checked_at": self.checked_at,
            "dialbacks": self.dialbacks,
        }

    # -- asking ---------------------------------------------------------------------

    async def check(self, addrs: Iterable[tuple[str, int]]) -> str:
        """Ask up to :data:`ASK_AT_MOST` of ``addrs`` (HTTP port = DHT port) to dial us
        back; update and return our kind. Nobody answering leaves the kind as it was
        (``unknown`` stays unknown; a known kind is kept rather than guessed)."""
        if not self.asks:
            return self.kind
        targets = list(dict.fromkeys((h, p) for h, p in addrs))[:ASK_AT_MOST]
        asked = await asyncio.gather(*(self._ask(h, p) for h, p in targets))
        reports = [r for r in asked if r is not None]
        self.reported = sorted({r.observed for r in reports})
        kind, observed = decide(reports, self._probes, self._port())
        self._probes.clear()
        if kind == UNKNOWN:
            return self.kind
        if kind == CLIENT_ONLY and self.kind == PUBLIC and len({r.peer for r in reports}) < 2:
            # a public peer steps down only when two peers could not reach it: one busy
            # or lying peer must not take it out of every routing table
            return self.kind
        if kind != self.kind:
            log.info("reachability: %s (observed address %s)", kind, observed or "unconfirmed")
        self.kind, self.observed, self.checked_at = kind, observed, time.time()
        return kind

    async def _ask(self, host: str, port: int) -> Report | None:
        nonce = os.urandom(16).hex()
        now = time.monotonic()
        self._nonces = {n: t for n, t in self._nonces.items() if t > now}
        if len(self._nonces) >= NONCES_MAX:
            return None
        self._nonces[nonce] = now + NONCE_TTL
        url = f"http://{netloc(host, port)}"
        try:
            raw = await self.transport.call(
                Contact(bytes(20), url), "/p2p/v1/reach", encode(ReachRequest(port=self._port(), nonce=nonce)),
                timeout=2 * DIAL_TIMEOUT,
            )
            reply = decode(raw, ReachReply)
        except (PeerCallError, BadMessage) as e:
            log.debug("reachability: %s did not answer: %s", url, e)
            return None
        finally:
            self._nonces.pop(nonce, None)
        return Report(url, reply.observed, nonce)

    def probed(self, nonce: str, host: str) -> bool:
        """Our server got a dial-back probe (``host``: its Host header); True if the
        nonce is one we are waiting for."""
        if self._nonces.get(nonce, 0.0) < time.monotonic():
            return False
        self._probes[nonce] = host
        return True

    # -- answering --------------------------------------------------------------------

    async def dial_back(self, remote: str | None, req: ReachRequest) -> ReachReply:
        """Another peer asks to be dialled back: probe ``remote`` (its own TCP source
        address, never one it names) at ``req.port``; tell it where it was seen."""
        if not remote or not _is_ip(remote):
            return ReachReply(observed="", dialed=False)
        self.dialbacks += 1
        url = f"http://{netloc(remote, req.port)}"
        try:
            raw = await self.transport.call(
                Contact(bytes(20), url), "/p2p/v1/reach/probe", encode(ProbeRequest(nonce=req.nonce)),
                timeout=DIAL_TIMEOUT,
            )
            dialed = decode(raw, ProbeReply).known
        except (PeerCallError, BadMessage):
            dialed = False
        return ReachReply(observed=remote, dialed=dialed)
