"""UDP hardening: a per-source rate limit and the anti-amplification budget.

UDP source addresses are not authenticated: anyone can send a datagram "from" a
victim's address and have our reply hit the victim. Two limits keep this node from
being a useful reflector or a cheap target:

- :class:`TokenBucket`: incoming datagrams per source address, so one sender cannot
  make us sign, look up and answer without bound.
- :class:`AddressGuard`: until an address has *proven* it receives what we send
  there (it completed the handshake from that address, :mod:`.handshake`), everything
  we send it in answer to its datagrams (replies, and a handshake we start because of
  them) is paid from a credit of ``AMPLIFICATION`` times the bytes it sent us (QUIC,
  RFC 9000 section 8.1). Requests we start on our own (bootstrap, lookups) are not
  budgeted: a reflector is what answers, not what asks.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable

Address = tuple[str, int]

AMPLIFICATION = 3
# Bounds on the per-address state (an attacker may use many source addresses).
MAX_TRACKED = 16384


def _bounded_put(table: OrderedDict, key: object, value: object, limit: int = MAX_TRACKED) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)


def address_key(address: Address) -> Address:
    """The address in one spelling (IPv4-mapped IPv6 as IPv4), so one host has one entry."""
    host, port = address[0], address[1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return (host, port)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (str(ip), port)


class TokenBucket:
    """``rate`` datagrams per second per key, bursts of up to ``burst``.

    Keys are source addresses (host and port: many peers of one test or intranet
    share a host). The table is bounded; a forgotten key starts with a full bucket,
    which costs an attacker nothing it could not get from a fresh port anyway.
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] | None = None) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock or time.monotonic
        self._state: OrderedDict[object, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def allow(self, key: object) -> bool:
        now = self.clock()
        tokens, at = self._state.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        allowed = tokens >= 1.0
        _bounded_put(self._state, key, (tokens - 1.0 if allowed else tokens, now))
        return allowed


class AddressGuard:
    """Validated addresses, and the credit of the others (see the module docstring)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.limiter = TokenBucket(rate, burst)
        self._validated: OrderedDict[Address, None] = OrderedDict()
        self._credit: OrderedDict[Address, int] = OrderedDict()

    def admit(self, address: Address, size: int) -> bool:
        """An incoming datagram: False to drop it (rate limit); otherwise its bytes
        are credited to an unvalidated sender."""
        key = address_key(address)
        if not self.limiter.allow(key):
            return False
        if key not in self._validated:
            _bounded_put(self._credit, key, self._credit.get(key, 0) + AMPLIFICATION * size)
        return True

    def validate(self, address: Address) -> None:
        key = address_key(address)
        _bounded_put(self._validated, key, None)
        self._credit.pop(key, None)

    def is_validated(self, address: Address) -> bool:
        return address_key(address) in self._validated

    def allowance(self, address: Address) -> int | None:
        """Bytes we may still send ``address`` in answer to it; None: no limit."""
        key = address_key(address)
        if key in self._validated:
            return None
        return self._credit.get(key, 0)

    def spend(self, address: Address, size: int) -> bool:
        """Pay ``size`` bytes to ``address`` from its credit; False (nothing paid) if
        the credit is short. Validated addresses always pass."""
        key = address_key(address)
        if key in self._validated:
            return True
        credit = self._credit.get(key, 0)
        if credit < size:
            return False
        self._credit[key] = credit - size
        return True
