"""Outbound policy: which addresses the crawler may connect to.

A crawler that follows links written by strangers is a request forgery engine
unless it refuses to reach what only the machine itself should reach: a link or
a redirect to ``http://127.0.0.1:8090/crawl`` would otherwise fetch (and index,
and publish) the peer's own admin pages, and a name that resolves to a private
address would reach the operator's router or cloud metadata service.

The policy is applied where the address is final, not to the URL's spelling:

* names are checked **after DNS resolution**, by the resolver of the crawler's
  HTTP session (:class:`GuardedResolver`), so the connection goes to an address
  that was checked (no window for DNS rebinding between check and connect), and
  every redirect hop and robots.txt fetch passes through the same resolver;
* IP literals (``http://10.0.0.1/``) never reach a resolver, so
  :meth:`OutboundPolicy.url_allowed` checks them before each request.

Refused are loopback, private (RFC 1918, unique local), link-local, multicast,
reserved, unspecified and shared (CGNAT) addresses, also when written as
IPv4-mapped IPv6. ``allow_private`` (a peer's ``allow_private_networks``)
lifts the rule for crawling one's own network; ``allow_networks`` lifts it for
named networks only (an intranet's range).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(OSError):
    """Every address of a host is refused by the outbound policy."""


@dataclass(frozen=True)
class OutboundPolicy:
    allow_private: bool = False
    #: Networks (CIDR strings) allowed even though they are not public.
    allow_networks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        nets = tuple(ipaddress.ip_network(n, strict=False) for n in self.allow_networks)
        object.__setattr__(self, "_nets", nets)

    def address_allowed(self, address: str | IPAddress) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if self.allow_private:
            return True
        if any(ip in net for net in self._nets):  # type: ignore[attr-defined]
            return True
        return ip.is_global and not ip.is_multicast

    def url_allowed(self, url: str) -> bool:
        """False when the URL's host is an IP literal the policy refuses.

        Host names pass here; the resolver checks what they resolve to."""
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            return False
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return True
        return self.address_allowed(host)


class GuardedResolver(AbstractResolver):
    """A resolver that keeps only the addresses the policy allows."""

    def __init__(self, policy: OutboundPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        infos = await self.inner.resolve(host, port, family)
        allowed = [i for i in infos if self.policy.address_allowed(i["host"])]
        if not allowed:
            raise BlockedAddress(f"{host} resolves only to addresses the outbound policy refuses")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


def guarded_session(policy: OutboundPolicy, *, limit: int = 100, keepalive: float = 15.0) -> aiohttp.ClientSession:
    """The crawler's HTTP session: every connection passes the policy. ``keepalive``:
    seconds an idle connection is kept for the next request (aiohttp's default 15)."""
    connector = aiohttp.TCPConnector(
        limit=limit, ttl_dns_cache=300, resolver=GuardedResolver(policy), keepalive_timeout=keepalive
    )
    return aiohttp.ClientSession(connector=connector, auto_decompress=True)


def is_blocked(exc: BaseException) -> bool:
    """Whether a client exception means "refused by the outbound policy"."""
    if isinstance(exc, BlockedAddress):
        return True
    return isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, BlockedAddress)
