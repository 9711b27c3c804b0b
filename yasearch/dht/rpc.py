"""The datagram layer under the RPCs: rpcudp's request/reply plumbing, hardened.

rpcudp trusts every datagram and lets a bad one raise inside a task; here malformed
datagrams are dropped, each request is re-sent once halfway through its timeout (a
lost datagram must not make a live peer look dead), every incoming datagram passes
the per-source rate limit, and replies to unproven addresses are paid from their
anti-amplification credit (:mod:`.guard`). Background work runs as tracked tasks, so
``close`` can cancel it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable
from typing import Any

import umsgpack
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol
from rpcudp.exceptions import MalformedMessage

from .guard import Address, AddressGuard

log = logging.getLogger(__name__)

# Same cap as rpcudp: a request must fit one datagram comfortably.
REQUEST_MAX_BYTES = 8192


class RpcEndpoint(KademliaProtocol):
    """kademlia's protocol class with hardened datagram handling (subclassed by
    :class:`yasearch.dht.protocol.DhtProtocol`, which holds the RPCs themselves).

    Attribute access matters here: rpcudp turns *any* unknown attribute into a remote
    call, so every attribute used is created in ``__init__``.
    """

    def __init__(
        self, source_node: Node, storage: Any, ksize: int, *, rpc_timeout: float, rate: float, burst: float
    ) -> None:
        super().__init__(source_node, storage, ksize)
        self._wait_timeout = rpc_timeout  # fix 4: rpcudp's default is 5 s
        self.guard = AddressGuard(rate, burst)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._retransmits: dict[bytes, asyncio.TimerHandle] = {}
        self.closed = asyncio.Event()  # set once the socket is really closed (port free again)
        self.counters: dict[str, int] = {
            "retransmits": 0, "requests_in": 0, "rate_limited": 0, "replies_withheld": 0,
        }

    # -- bookkeeping ---------------------------------------------------------

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, keeping a reference so ``stop`` can cancel it."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("dht background task failed: %r", task.exception())

    async def drain(self) -> None:
        """Wait for the background tasks started so far (tests, orderly shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> None:
        """Cancel background tasks and fail outstanding RPCs, so nothing waits on a closed socket."""
        for task in list(self._tasks):
            task.cancel()
        for msg_id in list(self._outstanding):
            self._settle(msg_id, (False, None))
        for handle in self._retransmits.values():
            handle.cancel()
        self._retransmits.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    # -- plumbing -------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        """rpcudp's remote-call magic (``self.find_node(addr, ...)`` calls ``rpc_find_node``
        over there), routed through :meth:`_call_remote`, which retransmits."""
        if name.startswith("_") or name.startswith("rpc_"):
            raise AttributeError(name)

        def func(address: tuple[str, int], *args: Any) -> asyncio.Future[tuple[bool, Any]]:
            return self._call_remote(address, name, args)

        return func

    def _call_remote(
        self, address: Address, name: str, args: tuple[Any, ...], *, budgeted: bool = False
    ) -> asyncio.Future[tuple[bool, Any]]:
        """Send one request; the future resolves to ``(True, reply)`` or ``(False, None)``.

        Unlike rpcudp, the datagram is sent a second time (same message id) halfway
        through the timeout if no reply came. UDP drops packets under bursts; without
        this a single lost datagram would make a live peer "recently dead" (fix 2) and
        drop it from lookups for ``dead_ttl``. A dead peer still costs one timeout. All
        our RPCs are idempotent, so a request handled twice does no harm.

        ``budgeted``: sent because of the receiver's own datagram (a handshake it did
        not ask for), so each copy is paid from its anti-amplification credit; without
        credit the copy is not sent (and the call times out).
        """
        if self.transport is None:
            raise RuntimeError("DHT protocol is not connected")
        data = umsgpack.packb([name, list(args)])
        if len(data) > REQUEST_MAX_BYTES:
            raise MalformedMessage(f"request {name} is {len(data)} bytes, over {REQUEST_MAX_BYTES}")
        msg_id = os.urandom(20)
        txdata = b"\x00" + msg_id + data
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bool, Any]] = loop.create_future()
        timer = loop.call_later(self._wait_timeout, self._timeout, msg_id)
        self._outstanding[msg_id] = (future, timer)
        self._retransmits[msg_id] = loop.call_later(
            self._wait_timeout / 2, self._retransmit, msg_id, txdata, address, budgeted
        )
        if not budgeted or self.guard.spend(address, len(txdata)):
            self.transport.sendto(txdata, address)
        return future

    def _retransmit(self, msg_id: bytes, txdata: bytes, address: Address, budgeted: bool) -> None:
        self._retransmits.pop(msg_id, None)
        if msg_id in self._outstanding and self.transport is not None and not self.transport.is_closing():
            if budgeted and not self.guard.spend(address, len(txdata)):
                return
            self.counters["retransmits"] += 1
            self.transport.sendto(txdata, address)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Every datagram passes the per-source rate limit first (:mod:`.guard`)."""
        if not self.guard.admit(addr, len(data)):
            self.counters["rate_limited"] += 1
            return
        self.spawn(self._solve_datagram(data, addr))

    async def _solve_datagram(self, datagram: bytes, address: Any) -> None:
        """Upstream lets a garbage datagram raise inside a task; drop it quietly instead."""
        if len(datagram) < 22:
            return
        try:
            data = umsgpack.unpackb(datagram[21:])
        except Exception as e:
            log.debug("dropping malformed datagram from %s: %r", address, e)
            return
        msg_id = datagram[1:21]
        if datagram[:1] == b"\x00":
            await self._accept_request(msg_id, data, address)
        elif datagram[:1] == b"\x01":
            self._accept_response(msg_id, data, address)

    async def _accept_request(self, msg_id: bytes, data: Any, address: Any) -> None:
        """Dispatch ``rpc_*`` calls, ignoring malformed ones instead of raising in a task."""
        if not isinstance(data, list) or len(data) != 2:
            return
        funcname, args = data
        if not isinstance(funcname, str) or not isinstance(args, (list, tuple)) or len(args) > 8:
            return
        func = getattr(type(self), f"rpc_{funcname}", None)
        if func is None or not callable(func):
            return
        self.counters["requests_in"] += 1
        try:
            response = getattr(self, f"rpc_{funcname}")(address, *args)
            if asyncio.iscoroutine(response):
                response = await response
            txdata = self._fit_reply(msg_id, response, address)
        except Exception as e:
            log.debug("rpc_%s from %s failed: %r", funcname, address, e)
            return
        if txdata is None:
            self.counters["replies_withheld"] += 1
        elif self.transport is not None:
            self.transport.sendto(txdata, address)

    def _fit_reply(self, msg_id: bytes, response: Any, address: Address) -> bytes | None:
        """The reply datagram within the asker's anti-amplification credit, paid.

        A node list (``find_node``) is cut from its far end until it fits; anything
        else that does not fit is withheld (the asker times out). Validated
        addresses get the whole reply.
        """
        allowance = self.guard.allowance(address)
        txdata = b"\x01" + msg_id + umsgpack.packb(response)
        if allowance is None:
            return txdata
        if isinstance(response, list) and response and all(isinstance(n, tuple) for n in response):
            while response and len(txdata) > allowance:
                response = response[:-1]
                txdata = b"\x01" + msg_id + umsgpack.packb(response)
        return txdata if self.guard.spend(address, len(txdata)) else None

    def _settle(self, msg_id: bytes, result: tuple[bool, Any]) -> None:
        """Resolve an outstanding request once, by its reply or its timeout, whichever
        comes first; the other one (and a pending retransmit) then finds nothing to do."""
        retx = self._retransmits.pop(msg_id, None)
        if retx is not None:
            retx.cancel()
        entry = self._outstanding.pop(msg_id, None)
        if entry is None:
            return
        future, timer = entry
        timer.cancel()
        if not future.done():
            future.set_result(result)

    def _accept_response(self, msg_id: bytes, data: Any, address: Any) -> None:
        self._settle(msg_id, (True, data))

    def _timeout(self, msg_id: bytes) -> None:
        """Upstream logs every timeout at ERROR and crashes on a cancelled future."""
        self._settle(msg_id, (False, None))
