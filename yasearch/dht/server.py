"""The UDP endpoint: kademlia's ``Server`` binding a socket for :class:`DhtProtocol`.

Only the binding is kept from upstream; its hourly refresh and value-store API are
unused, :class:`yasearch.dht.node.DhtNode` runs its own maintenance.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from kademlia.network import Server
from kademlia.storage import ForgetfulStorage

from .protocol import DhtProtocol

log = logging.getLogger(__name__)

# Bursts of replies (a lookup asks up to k peers at once, many lookups run concurrently)
# overflow Linux's default 208 KiB UDP receive buffer; ask for more (capped by rmem_max).
UDP_RCVBUF = 1 << 20


class DhtServer(Server):
    """kademlia's Server using :class:`DhtProtocol`; refreshing is left to :class:`DhtNode`."""

    protocol_class = DhtProtocol

    def __init__(
        self,
        ksize: int,
        alpha: int,
        node_id: bytes,
        *,
        protocol_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(ksize=ksize, alpha=alpha, node_id=node_id, storage=ForgetfulStorage())
        self.protocol_kwargs = protocol_kwargs or {}
        self.protocol: DhtProtocol | None = None

    def _create_protocol(self) -> DhtProtocol:
        return self.protocol_class(self.node, self.storage, self.ksize, **self.protocol_kwargs)

    async def listen(self, port: int, interface: str = "0.0.0.0") -> int:  # type: ignore[override]
        """Bind the UDP socket and return the real port (``port=0`` picks a free one).

        Upstream also schedules its hourly refresh here; :class:`DhtNode` runs its own
        maintenance loop instead.
        """
        loop = asyncio.get_running_loop()
        self.transport, self.protocol = await loop.create_datagram_endpoint(
            self._create_protocol, local_addr=(interface, port)
        )
        sock = self.transport.get_extra_info("socket")
        try:
            if sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < UDP_RCVBUF:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
        except OSError as e:  # not fatal: loss is handled by retransmission
            log.debug("cannot enlarge UDP receive buffer: %s", e)
        return int(self.transport.get_extra_info("sockname")[1])

    def stop(self) -> None:
        if self.protocol is not None:
            self.protocol.close()
        super().stop()
