"""Repair: find dead peers within seconds and restore r copies of what this peer holds.

The DHT notices a dead peer only when it happens to call it, and the membership
counts a peer as gone only after ``membership_grace`` (60 s) without it, so on
its own a mass failure leaves terms with fewer than r live replicas for minutes,
or for good when no call ever reaches the dead. :class:`Liveness` closes that gap:

* every ``interval`` seconds it pings (a Kademlia PING over UDP, re-sent once
  within its 1 s timeout) the peers that matter to this holder: its ``neighbours``
  XOR-closest peers (the other replicas of the terms it holds are among them), a
  rotating share of the rest (``rotation`` a round), and every suspect: peers an
  HTTP call just failed on (the resolver's view) or a DHT RPC did, peers that
  missed a ping, and the peers already found dead (to see them come back);
* a peer that misses ``misses`` pings in a row, and whose HTTP server does not
  answer either (a loaded peer's UDP replies can be late), is **gone**: the resolver leaves it
  out of every answer (queries ask the next live replica, publishing sends to the
  peer that took its place) and handoff runs at once with the live membership, so
  each term whose replica set lost a peer is pushed, with the origins' signed
  batches, to the peer that is now among its r closest
  (:meth:`yasearch.handoff.Handoff.membership_changed`: one sender per term, a few
  destinations at a time, which keeps a 30 % failure from becoming a storm);
* terms whose every replica from before the failure is gone have no holder left
  to hand them on: their origins send their pages again, only to the new replicas
  (:meth:`yasearch.publisher.Publisher.resend`);
* a gone peer that answers again is a member again (and gets its terms back the
  same way); one that has left the membership is forgotten.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from kademlia.node import Node

from yasearch.analysis import term_key
from yasearch.dht import DhtNode
from yasearch.handoff import Handoff, Ranked
from yasearch.network import Contact, Resolver, Transport
from yasearch.publisher import Publisher

log = logging.getLogger(__name__)


class Liveness:
    """Pings the peers that matter to this holder; reports the dead to routing and handoff.

    ``members`` is the steady membership (other peers, by node ID); ``dht`` pings,
    ``resolver`` is told who is gone and says which peers failed an HTTP call,
    ``handoff`` re-replicates."""

    def __init__(
        self,
        node_id: bytes,
        dht: DhtNode,
        resolver: Resolver,
        handoff: Handoff,
        publisher: Publisher,
        transport: Transport,
        members: Callable[[], dict[bytes, Contact]],
        *,
        interval: float = 2.5,
        misses: int = 3,
        neighbours: int = 12,
        rotation: int = 8,
        confirm_timeout: float = 5.0,
    ) -> None:
        self.node_id = node_id
        self.dht = dht
        self.resolver = resolver
        self.handoff = handoff
        self.publisher = publisher
        self.transport = transport
        self.confirm_timeout = confirm_timeout
        self.members = members
        self.interval = interval
        self.misses = misses
        self.neighbours = neighbours
        self.rotation = rotation
        self._missed: dict[bytes, int] = {}  # node id -> pings missed in a row
        self._gone: set[bytes] = set()
        self._nodes: dict[bytes, Node] = {}  # where to ping a peer (kept after the DHT drops it)
        self._turn = 0
        self._repair: asyncio.Task[None] | None = None
        self._again = False
        self._resent: set[str] = set()  # terms sent again as origin in the current failure
        self._episode: set[bytes] | None = None
        self.resent_docs = 0
        self.pings = 0
        self.found_dead = 0
        self.busy = 0  # peers that missed the pings but answered over HTTP
        self.revived = 0
        self.repairs = 0  # handoff runs started by a change of the live set
        self.repaired_postings = 0

    def gone(self) -> set[bytes]:
        return set(self._gone)

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.interval)
                try:
                    await self.check_once()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the next round tries again
                    log.warning("liveness check failed", exc_info=True)
        finally:
            await self.stop()

    def _targets(self, members: dict[bytes, Contact]) -> list[bytes]:
        """Whom to ping this round: neighbours, a rotating share of the rest, suspects."""
        me = int.from_bytes(self.node_id, "big")
        ranked = sorted(members, key=lambda n: int.from_bytes(n, "big") ^ me)
        picked = set(ranked[: self.neighbours])
        rest = ranked[self.neighbours :]
        if rest:
            start = (self._turn * self.rotation) % len(rest)
            picked.update((rest + rest)[start : start + min(self.rotation, len(rest))])
        self._turn += 1
        proto = self.dht.protocol
        suspects = set(self.resolver.failed()) | proto.recently_dead() | set(proto.failures)
        picked.update(n for n in suspects if n in members)
        picked.update(self._gone)
        picked.update(n for n, c in self._missed.items() if c)
        return [n for n in picked if n != self.node_id and n in self._nodes]

    async def check_once(self) -> bool:
        """One round of pings; True when the set of gone peers changed (and handoff ran)."""
        if not self.dht.running:
            return False
        members = self.members()
        for n in self.dht.protocol.router.contacts():
            self._nodes[n.id] = n
        # peers that left the membership are no longer ours to watch
        left = self._gone - set(members)
        for n in list(self._gone | set(self._missed) | set(self._nodes)):
            if n not in members:
                self._gone.discard(n)
                self._missed.pop(n, None)
                self._nodes.pop(n, None)
        if left:  # not members any more: nothing to route around (and a later rejoin is welcome)
            self.resolver.set_gone(self._gone)
        targets = self._targets(members)
        answers = await asyncio.gather(*(self._ping(n) for n in targets))
        changed = False
        candidates = []
        for node, ok in zip(targets, answers):
            if ok:
                self._missed.pop(node, None)
                if node in self._gone:
                    self._gone.discard(node)
                    self.revived += 1
                    changed = True
                    log.info("peer %s answers again", node.hex()[:12])
                continue
            self._missed[node] = self._missed.get(node, 0) + 1
            if self._missed[node] >= self.misses and node not in self._gone and node in members:
                candidates.append(node)
        # the second opinion, for all candidates at once (a black-holed host takes the timeout)
        busy = await asyncio.gather(*(self._answers_http(members[n]) for n in candidates))
        for node, answered in zip(candidates, busy):
            if answered:
                self._missed.pop(node, None)  # busy, not dead: its UDP replies were late
                self.busy += 1
                continue
            self._gone.add(node)
            self.found_dead += 1
            changed = True
            log.info("peer %s missed %d pings: gone, its terms go to the next live peers",
                     node.hex()[:12], self._missed[node])
        if changed:
            self.resolver.set_gone(self._gone)
            self._repair_soon()
        return changed

    def _repair_soon(self) -> None:
        """Run handoff with the live membership in the background (one run at a time;
        a change during a run makes it run once more), so pings go on meanwhile."""
        self._again = True
        if self._repair is None or self._repair.done():
            self._repair = asyncio.create_task(self._repair_loop(), name="repair")

    async def _repair_loop(self) -> None:
        while self._again:
            self._again = False
            self.repairs += 1
            try:
                self.repaired_postings += await self.handoff.membership_changed(set(self.members()) | {self.node_id})
                await self._orphans()
            except Exception:  # noqa: BLE001 - the next change (or the origins' republish) repairs it
                log.warning("repair handoff failed", exc_info=True)

    async def _orphans(self) -> None:
        """As an origin: send our pages again to the new replicas of terms whose every
        replica from before the failure is gone (no holder is left to hand them on)."""
        base = self.handoff.baseline()
        if base is None:
            return
        if base is not self._episode:
            self._episode, self._resent = base, set()
        live = (set(self.members()) | {self.node_id}) - self._gone
        before, now = Ranked(base), Ranked(live)
        r = self.handoff.replication
        targets: dict[str, list[bytes] | None] = {}
        only: dict[str, set[bytes]] = {}
        for doc_id, terms in await self.publisher.outbox.published_terms():
            for t in terms:
                if t not in targets:
                    key = int.from_bytes(term_key(t), "big")
                    lost = t not in self._resent and not any(n in live for n in before.closest(key, r))
                    targets[t] = now.closest(key, r) if lost else None
                peers = targets[t]
                if peers:
                    only.setdefault(doc_id, set()).update(peers)
        self._resent.update(t for t, peers in targets.items() if peers)
        if only:
            log.info("%d of our pages go again to the new replicas of terms whose every holder died", len(only))
            self.resent_docs += len(only)
            await self.publisher.resend(only)

    async def settle(self) -> None:
        """Until the repair running now (if any) has finished (tests)."""
        while self._repair is not None and not self._repair.done():
            await asyncio.gather(self._repair, return_exceptions=True)

    async def stop(self) -> None:
        if self._repair is not None and not self._repair.done():
            self._repair.cancel()
            await asyncio.gather(self._repair, return_exceptions=True)

    async def _answers_http(self, contact: Contact) -> bool:
        """The second opinion before a peer counts as dead: does its HTTP server answer
        within ``confirm_timeout``? A loaded peer can miss 1 s UDP pings and still
        be there; a dead one refuses the connection (or never answers)."""
        session = self.transport.session
        if session is None:
            return False
        try:
            timeout = aiohttp.ClientTimeout(total=self.confirm_timeout)
            async with session.get(contact.url + "/p2p/v1/info", timeout=timeout) as resp:
                return resp.status < 500
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
            return False

    async def _ping(self, node_id: bytes) -> bool:
        self.pings += 1
        try:
            result: Any = await self.dht.protocol.call_ping(self._nodes[node_id])
        except Exception:  # noqa: BLE001 - a ping that cannot be sent is a missed ping
            return False
        return bool(result and result[0])

    def figures(self) -> dict[str, int]:
        return {"gone": len(self._gone), "pings": self.pings, "found_dead": self.found_dead, "busy": self.busy,
                "revived": self.revived, "repairs": self.repairs, "repaired_postings": self.repaired_postings,
                "resent_docs": self.resent_docs}
