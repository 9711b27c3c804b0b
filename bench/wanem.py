"""WAN delay, jitter and loss inside one Python process, without netem.

This kernel has no ``netem`` qdisc, so the emulated internet (:mod:`bench.netlab`)
puts the WAN into the peer processes instead: :func:`install` wraps asyncio's
selector transports, which carry every byte a peer sends (aiohttp's client and
server, the DHT's UDP endpoint):

- every TCP ``write``/``writelines`` is handed to the socket ``delay ± jitter``
  seconds later, in order per connection (one queue and one timer per transport;
  ``close``/``write_eof`` wait until the queue is empty);
- a TCP write is "lost" with probability ``loss``: TCP would retransmit it, so it
  arrives one retransmission timeout later (``max(0.2 s, 3 x delay)``: Linux's minimum
  RTO is 200 ms), and everything behind it on that connection waits too;
- every UDP ``sendto`` is dropped with probability ``loss``, else sent after
  ``delay ± jitter`` (datagrams may overtake each other, as on the internet);
- a TCP connect waits two one-way delays first (the SYN, SYN-ACK round trip;
  the kernel's own handshake on the emulated link is instant).

Delay is added on the sending side only, so with every peer shimmed a message
takes one ``delay`` each way (round trip 2 x delay). Not modelled: bandwidth,
queueing, loss of the TCP handshake itself. The shim is test and benchmark machinery: it lives
in ``bench/`` and is switched on for a peer process by the environment variable
:data:`ENV` (read by ``bench/wanshim/sitecustomize.py``, which the lab puts first on
the peer's ``PYTHONPATH``); the product package knows nothing of it.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
from asyncio import selector_events as _se
from typing import Any

#: ``"DELAY_MS,JITTER_MS,LOSS"``, e.g. ``"50,5,0.01"``: switches the shim on.
ENV = "YASEARCH_WANEM"

_installed: "Wan | None" = None


class Wan:
    def __init__(self, delay: float, jitter: float = 0.0, loss: float = 0.0, seed: int | None = None) -> None:
        self.delay, self.jitter, self.loss = delay, jitter, loss
        self.rng = random.Random(seed)
        self.tcp_writes = self.tcp_lost = self.udp_sent = self.udp_dropped = self.connects = 0

    def one_way(self) -> float:
        return max(0.0, self.delay + self.rng.uniform(-self.jitter, self.jitter))

    def rto(self) -> float:
        return max(0.2, 3 * self.delay)


class _Queue:
    """Delayed writes of one TCP transport, written in order."""

    def __init__(self) -> None:
        self.items: collections.deque[tuple[float, bytes]] = collections.deque()
        self.last = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.then: list[str] = []  # "eof", "close" once the queue is empty


def _queue(tr: Any) -> _Queue:
    q = tr.__dict__.get("_wanem_q")
    if q is None:
        q = tr._wanem_q = _Queue()
    return q


def install(wan: Wan) -> None:
    """Wrap the selector transports of this process (once)."""
    global _installed
    if _installed is not None:
        return
    _installed = wan
    tcp = _se._SelectorSocketTransport
    udp = _se._SelectorDatagramTransport
    write, close, write_eof, sendto = tcp.write, tcp.close, tcp.write_eof, udp.sendto

    def flush(tr: Any) -> None:
        q = _queue(tr)
        q.timer = None
        now = tr._loop.time()
        while q.items and q.items[0][0] <= now + 0.0005:
            _at, data = q.items.popleft()
            try:
                write(tr, data)
            except Exception:  # noqa: BLE001 - the connection went away meanwhile
                q.items.clear()
        if q.items:
            q.timer = tr._loop.call_at(q.items[0][0], flush, tr)
        else:
            for what in q.then:
                (write_eof if what == "eof" else close)(tr)
            q.then.clear()

    def delayed_write(self: Any, data: Any) -> None:
        if not data or self._conn_lost:
            return write(self, data)
        q = _queue(self)
        d = wan.one_way()
        wan.tcp_writes += 1
        if wan.rng.random() < wan.loss:
            wan.tcp_lost += 1
            d += wan.rto()
        at = max(self._loop.time() + d, q.last)
        q.last = at
        q.items.append((at, bytes(data)))
        if q.timer is None:
            q.timer = self._loop.call_at(q.items[0][0], flush, self)

    def delayed_writelines(self: Any, lines: Any) -> None:
        delayed_write(self, b"".join(bytes(x) for x in lines))

    def deferred(original: Any, what: str) -> Any:
        def method(self: Any) -> None:
            q = _queue(self)
            if q.items:
                if what not in q.then:
                    q.then.append(what)
                return
            original(self)

        return method

    def delayed_sendto(self: Any, data: Any, addr: Any = None) -> None:
        if wan.rng.random() < wan.loss:
            wan.udp_dropped += 1
            return
        wan.udp_sent += 1
        payload = bytes(data)

        def send() -> None:
            try:
                sendto(self, payload, addr)
            except Exception:  # noqa: BLE001 - closed meanwhile: a lost datagram
                pass

        self._loop.call_later(wan.one_way(), send)

    connect = _se.BaseSelectorEventLoop.sock_connect

    async def delayed_connect(self: Any, sock: Any, address: Any) -> None:
        # TCP's handshake: SYN out, SYN-ACK back, one round trip before the first byte
        wan.connects += 1
        await asyncio.sleep(wan.one_way() + wan.one_way())
        return await connect(self, sock, address)

    _se.BaseSelectorEventLoop.sock_connect = delayed_connect  # type: ignore[method-assign]
    tcp.write = delayed_write
    tcp.writelines = delayed_writelines
    tcp.close = deferred(close, "close")
    tcp.write_eof = deferred(write_eof, "eof")
    udp.sendto = delayed_sendto


def install_from_env() -> Wan | None:
    """:func:`install` as :data:`ENV` says (``"DELAY_MS,JITTER_MS,LOSS[,SEED]"``); None when unset."""
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return None
    parts = [float(x) for x in spec.split(",")]
    delay_ms, jitter_ms, loss = (parts + [0.0, 0.0, 0.0])[:3]
    seed = int(parts[3]) if len(parts) > 3 else None
    wan = Wan(delay_ms / 1000, jitter_ms / 1000, loss, seed)
    install(wan)
    return wan
