"""The DHT: Kademlia membership and routing on UDP, built on ``kademlia`` 2.2.3.

What this package is for
------------------------
yasearch shards its global inverted index by term key over the peers whose node IDs
are XOR-closest to the key. This package answers exactly one question for the rest of
the peer: *which live peers are closest to this 160-bit key?* (:meth:`DhtNode.closest_peers`),
and keeps a small record of who the other peers are (name, HTTP URL, document count:
:meth:`DhtNode.known_peers`). Postings never travel through kademlia's key/value store
(one value per key, 8 KiB requests, anyone may overwrite, memory only); they go over
HTTP to the peers this package names.

Why subclasses instead of ``kademlia`` as is
--------------------------------------------
kademlia 2.2.3 has defects that make lookups wrong or slow; each is fixed in a
subclass (and covered by ``tests/test_dht.py``):

1. ``RoutingTable.find_neighbors`` walks buckets with ``TableTraverser``, which stops
   after the first k contacts it meets (not the k closest) and never goes back to the
   left once the right side is exhausted, so it can return wrong peers or none at all
   although the table holds contacts (upstream issue #28, unmerged PR #52).
   :class:`RoutingTable` sorts all contacts by XOR distance instead.
2. A lookup drops a peer that timed out, but re-learns it from the next reply that
   mentions it; as it is already marked "contacted" it is never re-asked and ends up in
   the result. :class:`DhtProtocol` keeps a short-lived *recently dead* set fed by RPC
   timeouts, and :class:`LiveNodeSpiderCrawl` and the routing table filter it out until
   the peer contacts us itself.
3. ``welcome_if_new`` hands stored values to a new node (and computes the key node as
   ``digest(key)`` although stored keys are already digests). The value store is now
   off altogether: STORE is refused and nothing is handed over (it made a 50-byte ping
   bring back kilobytes, a UDP amplifier).
4. The RPC timeout is fixed at 5 s (a lookup after peers died took 10-35 s); it is a
   parameter here, 1 s by default.
5. One missed reply evicts a contact (UDP loses packets; a busy peer answers late).
   Here a contact is evicted after ``max_failures`` consecutive failures (3), and any
   reply resets the count.

Found while testing, fixed as well: a request is re-sent once halfway through its
timeout (a lost datagram must not mark a live peer dead), the UDP receive buffer is
enlarged (bursts of replies overflowed the default one on loopback), joining refreshes
every bucket as the paper says (with small k, whole regions of the ID space otherwise
stayed unknown and lookups returned wrong peers), and malformed datagrams, requests and
node lists are dropped instead of raising inside tasks or aborting a lookup.

Trust between strangers (``docs/security.md``)
----------------------------------------------
Node IDs are bound to Ed25519 keys (:mod:`yasearch.identity`); a contact enters the
routing table only after proving its key in a handshake (:mod:`.handshake`), the
handshake carries the network name (peers of different networks never admit each
other), peer info records are signed, the table limits contacts per /24 (/48) for
global addresses, and the UDP endpoint rate-limits each source and never sends an
unproven address more than 3x the bytes it sent (:mod:`.guard`).

Layers
------
One layer of the paper per module, as in the ``kademlia`` package; each imports only
the ones above it in this list:

- :mod:`.info`: peer info records and their validation (untrusted input, bounded);
- :mod:`.routing`: the routing table (k-buckets, subnet limits) and the recently dead set;
- :mod:`.guard`: per-source rate limit and anti-amplification credit;
- :mod:`.handshake`: the messages proving key possession, signed info records;
- :mod:`.rpc`: rpcudp's datagram plumbing, hardened (retransmission, hostile datagrams);
- :mod:`.protocol`: the RPCs, admission after the handshake, liveness counting;
- :mod:`.server`: the UDP socket the protocol runs on;
- :mod:`.lookup`: node lookups (the iterative spider crawl);
- :mod:`.node`: :class:`DhtNode`, what the peer owns (see its module for the wiring).
"""

from .info import PeerInfo, resolve_http_url, validate_info
from .lookup import LiveNodeSpiderCrawl
from .node import DhtNode
from .protocol import DhtProtocol
from .routing import RecentlyDead, RoutingTable, xor_closest
from .server import DhtServer

__all__ = [
    "DhtNode",
    "DhtProtocol",
    "DhtServer",
    "LiveNodeSpiderCrawl",
    "PeerInfo",
    "RecentlyDead",
    "RoutingTable",
    "resolve_http_url",
    "validate_info",
    "xor_closest",
]
