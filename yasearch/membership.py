"""Membership: joining the network, the steady view of who is in it, and upkeep.

The DHT knows which peers answer right now; routing and handoff need a steadier
view (see :meth:`Membership.stable_members`). This module keeps that view, reacts
when it changes (save neighbours, re-resolve, hand off held postings) and runs the
periodic upkeep of a member: republishing our postings and expiring postings
their origins stopped republishing.

It is given the parts it works with (the DHT node, the resolver, handoff, the
publisher, the shard store and a few config values), not the Peer.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from typing import Any

from yasearch.config import Config
from yasearch.dht import DhtNode
from yasearch.handoff import Handoff
from yasearch.network import Contact, Resolver
from yasearch.publisher import Publisher
from yasearch.reachability import Reachability
from yasearch.repair import Liveness
from yasearch.shard import ShardStore

log = logging.getLogger(__name__)

#: A peer's self-reported document count counts for at most this many times the
#: (lower) median of all reported counts, ours included ...
CLAMP_FACTOR = 10
#: ... but never less than this (a small network of small peers is not distorted).
CLAMP_FLOOR_DOCUMENTS = 1_000
#: A peer's reported average document length (tokens) counts up to this.
MAX_AVERAGE_LENGTH = 20_000


def clamped_totals(own: tuple[int, int], others: list[tuple[int, int]]) -> tuple[int, int]:
    """(documents, total length) over this peer (``own``, its own true figures) and
    the ``others``' self-reported ones, each of those clamped: its documents to
    ``CLAMP_FACTOR`` x the lower median of everyone's counts (at least
    ``CLAMP_FLOOR_DOCUMENTS``), its average length to ``MAX_AVERAGE_LENGTH``. So one
    peer announcing 2**53 documents moves N by a bounded factor, not to 2**53."""
    documents, total_length = own
    if not others:
        return documents, total_length
    cap = max(CLAMP_FLOOR_DOCUMENTS, CLAMP_FACTOR * statistics.median_low([own[0]] + [d for d, _ in others]))
    for docs, length in others:
        docs = min(docs, cap)
        documents += docs
        total_length += min(length, docs * MAX_AVERAGE_LENGTH)
    return documents, total_length


def bootstrap_addrs(entries: list[str]) -> list[tuple[str, int]]:
    """``HOST:PORT`` entries (IPv6 hosts in brackets) as (host, port); malformed ones are skipped."""
    out = []
    for entry in entries:
        host, _, port = entry.rpartition(":")
        if host and port.isdigit():
            out.append((host.strip("[]"), int(port)))
    return out


class Membership:
    def __init__(
        self,
        node_id: bytes,
        dht: DhtNode,
        resolver: Resolver,
        handoff: Handoff,
        publisher: Publisher,
        shard: ShardStore,
        config: Config,
        reach: Reachability | None = None,
        *,
        liveness: Liveness | None = None,
    ) -> None:
        self.node_id = node_id
        self.reach = reach
        self.dht = dht
        self.resolver = resolver
        self.handoff = handoff
        self.publisher = publisher
        self.shard = shard
        self.config = config
        self.liveness = liveness  # pings the peers that matter, repairs after failures (yasearch.repair)
        self._stable: dict[bytes, tuple[Contact, float]] = {}  # see stable_members()
        self._loops: list[asyncio.Task[Any]] = []

    def start(self) -> None:
        """Join through the configured bootstrap peers and run the membership loops."""
        self._loops = [
            asyncio.create_task(self._join(), name="join"),
            asyncio.create_task(self._watch_membership(), name="membership"),
            asyncio.create_task(self._upkeep(), name="upkeep"),
            asyncio.create_task(self._recheck_reachability(), name="reachability"),
        ]
        if self.liveness is not None:
            self._loops.append(asyncio.create_task(self.liveness.run(), name="liveness"))

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []

    async def _join(self) -> None:
        try:
            addrs = bootstrap_addrs(self.config.bootstrap)
            # before the first handshake: a client-only peer says so in it (yasearch.reachability)
            await self.check_reachability(addrs + self.dht.load_neighbours())
            await self.dht.bootstrap(addrs)
            await self.dht.refresh_info()
            await self.dht.save_neighbours()
        except Exception:  # noqa: BLE001 - the maintenance loop retries
            log.warning("could not join the network yet", exc_info=log.isEnabledFor(logging.DEBUG))

    async def check_reachability(self, addrs: list[tuple[str, int]]) -> None:
        """Ask peers at ``addrs`` to dial us back; run client-only when none could."""
        if self.reach is None or not self.reach.asks or not addrs:
            return
        await self.dht.set_client_only(await self.reach.check(addrs) == "client-only")

    async def _recheck_reachability(self) -> None:
        """Ask again: often while nobody answered (the first peer of a network has
        nobody to ask), rarely once known (an address or a NAT can change)."""
        if self.reach is None or not self.reach.asks:
            return
        while True:
            await asyncio.sleep(self.reach.recheck_after())
            peers = [p for p in self.dht.known_peers() if p.reach != "client-only"]
            addrs = [(p.host, p.port) for p in peers if p.host and p.port]
            try:
                await self.check_reachability(addrs)
            except Exception:  # noqa: BLE001 - asked again next round
                log.warning("reachability check failed", exc_info=True)

    async def join(self, addrs: list[tuple[str, int]]) -> int:
        """Join through these peers now (tests, the demo); returns contacts known."""
        await self.check_reachability(addrs)
        n = await self.dht.bootstrap(addrs)
        await self.dht.refresh_info()
        self.resolver.invalidate()
        return n

    async def _watch_membership(self, interval: float = 2.0) -> None:
        """When peers join or leave, routes change: save neighbours, re-resolve and
        hand off held postings to peers that became responsible.

        A join counts at once; a departure only after the peer has been missing for
        ``membership_grace`` seconds, so a busy peer that misses a few pings is not a change
        (on a loaded network such flaps made every peer hand off and republish
        all the time). A change is handled by the holders' handoff alone; origins
        republish on their periodic schedule (``republish_interval``), not on every
        change. Handoff runs in one background task at a time, so this loop never
        waits on it.
        """

        def members() -> set[bytes]:
            return set(self.stable_members()) | {self.node_id}

        known = members()
        await self.handoff.membership_changed(known)
        redistribute: asyncio.Task[None] | None = None
        again = False

        async def redistribute_loop() -> None:
            nonlocal again
            while True:
                again = False
                try:
                    await self.handoff.membership_changed(members())
                except Exception:  # noqa: BLE001 - republishing repairs it later
                    log.warning("handoff failed", exc_info=True)
                if not again:
                    return

        try:
            while True:
                await asyncio.sleep(interval)
                now = members()
                if now == known:
                    continue
                log.info("membership changed (%d -> %d peers): handoff", len(known), len(now))
                known = now
                await self.dht.save_neighbours()
                self.resolver.invalidate()
                if redistribute is None or redistribute.done():
                    redistribute = asyncio.create_task(redistribute_loop(), name="redistribute")
                else:
                    again = True
        finally:
            if redistribute is not None and not redistribute.done():
                redistribute.cancel()
                await asyncio.gather(redistribute, return_exceptions=True)

    def stable_members(self) -> dict[bytes, Contact]:
        """The other peers, counting one as gone only after ``membership_grace`` s.

        The DHT's own view drops a peer for a while after a few missed UDP replies;
        on a busy network that flaps. Routing (which peers hold which terms) and
        handoff use this steadier view, so a slow peer still gets its postings
        (sends to it are retried) instead of a peer that is not responsible."""
        now = time.monotonic()
        if self.dht.running:
            me = self.node_id.hex()
            for p in self.dht.known_peers():
                if p.node_id != me and p.reach != "client-only":
                    node = bytes.fromhex(p.node_id)
                    self._stable[node] = (Contact(node, p.http_url.rstrip("/")), now)
        clients = {bytes.fromhex(p.node_id) for p in self.dht.known_clients()} if self.dht.running else set()
        for node, (_c, seen) in list(self._stable.items()):
            if now - seen > self.config.membership_grace or node in clients:
                del self._stable[node]
        return {node: c for node, (c, _seen) in self._stable.items()}

    def network_totals(self, documents: int, total_length: int) -> tuple[int, int]:
        """(documents, total length) over this peer (the figures given), the steady
        membership and the client-only peers that talked to us.

        Uses the peers of :meth:`stable_members` and their last info records, so a
        peer that misses a few pings does not make N (and every IDF) jump between
        two queries; their figures are clamped (:func:`clamped_totals`). Client-only
        peers hold no term but publish their pages: their documents are in every df,
        so they count in N too (without them a df could exceed N, and every IDF
        would be off)."""
        others: list[tuple[int, int]] = []
        if self.dht.running:
            members = list(self.stable_members())
            members += [c for c in (bytes.fromhex(p.node_id) for p in self.dht.known_clients()) if c not in members]
            for node in members:
                info = self.dht.info_of(node)
                if info:
                    others.append((int(info.get("documents", 0)), int(dict(info.get("stats", {})).get("total_length", 0))))
        return clamped_totals((documents, total_length), others)

    async def _upkeep(self, interval: float = 60.0) -> None:
        """Periodic republishing (keeps our postings alive on their holders) and
        expiry of postings other peers stopped republishing."""
        last_republish = last_expire = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            try:
                if now - last_republish >= self.config.republish_interval:
                    last_republish = now
                    await self.publisher.republish()
                if now - last_expire >= min(3600.0, self.config.shard_max_age / 4):
                    last_expire = now
                    expired = await self.shard.expire()
                    if expired:
                        log.info("expired %d postings no longer republished by their origins", expired)
            except Exception:  # noqa: BLE001 - retried next round
                log.warning("upkeep failed", exc_info=True)
