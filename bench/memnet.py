"""An in-memory datagram network with latency and loss, on a virtual clock.

What the DHT simulation (:mod:`bench.dhtsim`, ``tests/test_dhtsim.py``) runs on: the
real :class:`yasearch.dht.DhtNode` / :class:`~yasearch.dht.DhtProtocol` objects of
many nodes in one event loop, exchanging the real RPC datagrams (the handshake,
``find_node``, ``peer_info``...). Only the UDP socket is replaced:

- :class:`MemTransport` is an ``asyncio.DatagramTransport`` (``sendto``, ``close``,
  ``is_closing``, ``get_extra_info``, ``abort``) registered in a :class:`MemNet` under
  its address. ``sendto`` hands the datagram to the net, which delivers it to the
  protocol registered at the destination after the link's one-way delay (``latency``
  plus a uniform ``jitter``, drawn from a seeded RNG per datagram), or drops it with
  probability ``loss``. A datagram to an address nobody holds (a node that left)
  vanishes, as UDP does.
- :class:`MemServer` is the DHT's server whose ``listen`` attaches the protocol to a
  :class:`MemTransport` instead of binding a socket (``DhtNode.server_class`` is the
  seam).
- :class:`VirtualClockLoop` is an event loop whose clock only moves when nothing is
  ready to run: it then jumps to the next timer. Delays, RPC timeouts and
  retransmissions are timers, so a lookup's time is the emulated network time
  (round trips and timeouts), whatever the CPU costs; a 1,000-node network runs as
  fast as the CPU can do the work, and the figures do not depend on the machine's
  load. While a thread of the loop's executor is busy (``asyncio.to_thread``) the
  clock waits for it in real time instead of jumping.

Wall-clock reads inside the DHT (``time.monotonic`` for the recently-dead TTL, the
handshake retry interval, cookie epochs and the per-source rate limit) are not
virtualised; the simulation runs slower than its virtual clock, so those windows
only last longer in virtual time than configured.
"""

from __future__ import annotations

import asyncio
import random
import selectors
from collections.abc import Callable
from typing import Any

from yasearch.dht import DhtServer

Address = tuple[str, int]


def rpc_name(datagram: bytes) -> str:
    """The RPC a request datagram calls: ``0x00, msg id (20), msgpack [name, args]``
    with a short name is ``... 0x92 0xa0|len name``; anything else is "?"."""
    if len(datagram) < 23 or datagram[21] != 0x92 or datagram[22] & 0xE0 != 0xA0:
        return "?"
    return datagram[23 : 23 + (datagram[22] & 0x1F)].decode("ascii", "replace")


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """A selector loop whose ``time()`` is virtual: idle waits jump instead of sleeping.

    asyncio asks the selector to wait exactly until the next timer; here that wait
    returns at once (real I/O is still polled) and the clock advances by it.
    """

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        super().__init__(selector)
        self._virtual = 0.0
        self._in_executor = 0
        self._select_real = self._selector.select  # type: ignore[attr-defined]
        self._selector.select = self._select  # type: ignore[attr-defined]

    def time(self) -> float:
        return self._virtual

    def _select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None or timeout <= 0 or self._in_executor:
            return self._select_real(timeout)
        self._virtual += timeout
        return self._select_real(0)

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        fut = super().run_in_executor(executor, func, *args)
        self._in_executor += 1

        def done(_: asyncio.Future[Any]) -> None:
            self._in_executor -= 1

        fut.add_done_callback(done)
        return fut


class MemNet:
    """Addresses -> protocols, and the links between them (latency, jitter, loss).

    Counts every datagram sent (``sent``, ``bytes``), those lost on the way
    (``lost``) and those sent to an address nobody holds (``undeliverable``);
    ``requests_from[address]`` counts requests (first byte 0) an address sent,
    ``requests_by[(address, name)]`` the same per RPC.
    """

    def __init__(self, *, latency: float = 0.05, jitter: float = 0.01, loss: float = 0.0, seed: int = 0) -> None:
        if latency < 0 or jitter < 0 or not 0 <= loss < 1:
            raise ValueError("latency and jitter must be >= 0, loss in [0, 1)")
        self.latency = latency
        self.jitter = jitter
        self.loss = loss
        self.rng = random.Random(seed)
        self.endpoints: dict[Address, MemTransport] = {}
        self.sent = 0
        self.bytes = 0
        self.lost = 0
        self.undeliverable = 0
        self.requests_from: dict[Address, int] = {}
        self.requests_by: dict[tuple[Address, str], int] = {}  # (sender, RPC name) -> requests

    def attach(self, address: Address, protocol: asyncio.DatagramProtocol) -> "MemTransport":
        if address in self.endpoints:
            raise OSError(98, f"address {address[0]}:{address[1]} already in use")
        transport = MemTransport(self, address, protocol)
        self.endpoints[address] = transport
        protocol.connection_made(transport)
        return transport

    def delay(self) -> float:
        """One datagram's one-way delay."""
        return self.latency + (self.rng.random() * self.jitter if self.jitter else 0.0)

    def send(self, src: Address, data: bytes, dst: Address) -> None:
        self.sent += 1
        self.bytes += len(data)
        if data[:1] == b"\x00":
            self.requests_from[src] = self.requests_from.get(src, 0) + 1
            key = (src, rpc_name(data))
            self.requests_by[key] = self.requests_by.get(key, 0) + 1
        if self.loss and self.rng.random() < self.loss:
            self.lost += 1
            return
        asyncio.get_running_loop().call_later(self.delay(), self._deliver, src, data, dst)

    def _deliver(self, src: Address, data: bytes, dst: Address) -> None:
        transport = self.endpoints.get(dst)
        if transport is None or transport.is_closing():
            self.undeliverable += 1
            return
        transport.protocol.datagram_received(data, src)

    def detach(self, address: Address) -> None:
        self.endpoints.pop(address, None)


class MemTransport(asyncio.DatagramTransport):
    """One node's endpoint on a :class:`MemNet` (the ``DatagramTransport`` interface)."""

    def __init__(self, net: MemNet, address: Address, protocol: asyncio.DatagramProtocol) -> None:
        super().__init__()
        self.net = net
        self.address = address
        self.protocol = protocol
        self._closing = False

    def sendto(self, data: bytes, addr: Address | None = None) -> None:  # type: ignore[override]
        if self._closing or addr is None:
            return
        self.net.send(self.address, bytes(data), (str(addr[0]), int(addr[1])))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return self.address
        return default  # no "socket": nothing to tune

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.net.detach(self.address)
        asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return 0


class MemServer(DhtServer):
    """The DHT server on a :class:`MemNet`: ``listen`` attaches instead of binding."""

    def __init__(self, net: MemNet, ksize: int, alpha: int, node_id: bytes, **kw: Any) -> None:
        super().__init__(ksize, alpha, node_id, **kw)
        self.net = net

    async def listen(self, port: int, interface: str = "0.0.0.0") -> int:  # type: ignore[override]
        if not port:
            raise ValueError("a simulated node needs an explicit port")
        self.protocol = self._create_protocol()
        self.transport = self.net.attach((interface, port), self.protocol)
        return port
