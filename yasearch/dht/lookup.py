"""Node lookups: kademlia's iterative spider crawl, returning only live peers.

A lookup asks the alpha closest not-yet-asked peers for their neighbours of the
target until the k closest have all answered. Replies are untrusted input: their node
lists are parsed entry by entry here, and a peer that timed out stays out of the
result even if a later reply mentions it again (fix 2 in :mod:`yasearch.dht`).

Nodes named in replies are strangers: they may be asked during the lookup, but
each one that answered must prove its key (the handshake, :mod:`.handshake`) before
it can be part of the result; an ID nobody can prove (chosen next to a key, or a
real ID at someone else's address) is dropped and the lookup goes on without it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kademlia.crawling import NodeSpiderCrawl, RPCFindResponse
from kademlia.node import Node

from .info import is_node_id, is_port
from .protocol import DhtProtocol


def _parse_node_list(raw: object, limit: int = 64) -> list[Node]:
    """Node tuples from a find_node reply, skipping anything malformed.

    Upstream does ``Node(*tuple)`` on whatever arrived, so one bad entry from one peer
    crashes the whole lookup.
    """
    nodes: list[Node] = []
    if not isinstance(raw, (list, tuple)):
        return nodes
    for item in raw[:limit]:
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            continue
        nid, ip, port = item
        if is_node_id(nid) and isinstance(ip, str) and 0 < len(ip) <= 64 and is_port(port):
            nodes.append(Node(nid, ip, port))
    return nodes


class LiveNodeSpiderCrawl(NodeSpiderCrawl):
    """A node lookup that never returns peers known to be unresponsive (fix 2).

    Upstream removes a peer that timed out from the heap, but the next reply that lists
    it pushes it back, already marked contacted, so it is returned as if alive. Here a
    node is not pushed if it failed during this lookup, is recently dead, or is us.
    """

    def __init__(self, protocol: DhtProtocol, node: Node, peers: list[Node], ksize: int, alpha: int) -> None:
        self._failed: set[bytes] = set()
        self._imposters: set[tuple[bytes, str, int]] = set()  # (id, ip, port) that failed the handshake
        self._self_id: bytes = protocol.source_node.id
        super().__init__(protocol, node, [p for p in peers if self._usable_with(protocol, p)], ksize, alpha)

    def _usable_with(self, protocol: DhtProtocol, n: Node) -> bool:
        if n.id == self._self_id or n.id in self._failed or (n.id, n.ip, n.port) in self._imposters:
            return False
        if n.id in protocol.clients:  # client-only: never responsible for a key
            return False
        return not protocol.is_recently_dead(n.id)

    def _usable(self, n: Node) -> bool:
        return self._usable_with(self.protocol, n)

    async def _nodes_found(self, responses: dict[bytes, Any]) -> list[Node]:
        toremove = []
        answered: list[Node] = []
        for peerid, response in responses.items():
            response = RPCFindResponse(response)
            if not response.happened():
                toremove.append(peerid)
                self._failed.add(peerid)
            else:
                node = self.nearest.get_node(peerid)
                if node is not None:
                    answered.append(node)
                self.nearest.push([n for n in _parse_node_list(response.response[1]) if self._usable(n)])
        proven = await asyncio.gather(*(self.protocol.verify_node(n) for n in answered))
        for node, ok in zip(answered, proven):
            if not ok:
                toremove.append(node.id)
                self._imposters.add((node.id, node.ip, node.port))
        self.nearest.remove(toremove)
        if self.nearest.have_contacted_all():
            return [n for n in self.nearest if self._usable(n)]
        return await self.find()
