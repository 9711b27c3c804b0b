"""The DHT simulation: real DhtNodes (handshake, routing table, lookups) exchanging
their real datagrams over the in-memory network of ``bench/memnet.py``, on a
virtual clock (``python -m bench dhtsim`` runs the same at 10 to 1,000 nodes).

Small k (4) and alpha (2) so that a 60-node network is big compared to k: a node's
routing table then rarely holds a key's k closest nodes itself, and finding them
takes the iterative lookup. Kademlia does not promise the k closest every time (the
closest nodes of a key need not know a node just across a subtree boundary when
their bucket for it is full; with k = 4 that happens in about 1 lookup of 300), so
the test demands every lookup's 3 closest (a term's replica set) and nearly every
lookup's k. Times below are virtual (emulated network time), never wall-clock.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.memnet import VirtualClockLoop
from bench.simnet import LookupStats, SimNetwork
from yasearch.analysis import term_key
from yasearch.dht import xor_closest

N = 60
K = 4


def run(scenario: Callable[[SimNetwork], Awaitable[Any]], **kw: Any) -> Any:
    """Build a network of ``N`` nodes (or ``kw["n"]``) and run ``scenario`` on it, on a virtual clock."""
    n = kw.pop("n", N)
    params = {"seed": 5, "ksize": K, "alpha": 2, **kw}

    async def main() -> Any:
        sim = SimNetwork(**params)
        try:
            await sim.join(n)
            return await scenario(sim)
        finally:
            await sim.close()

    saved = random.getstate()
    random.seed(params["seed"])  # refresh_buckets draws IDs from the module RNG
    try:
        with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
            return runner.run(main())
    finally:
        random.setstate(saved)


async def lookups(sim: SimNetwork, count: int, rng: random.Random) -> list[tuple[LookupStats, bool]]:
    """``count`` lookups of random keys from random nodes; with each, whether the
    asker's routing table already held the key's k closest nodes before it asked."""
    out = []
    for _ in range(count):
        node, key = rng.choice(sim.nodes), rng.randbytes(20)
        table = {c.id for c in node.protocol.router.contacts()} | {node.node_id}
        knew = set(xor_closest(sim.ids(), key, K)) <= table
        _, stats = await sim.lookup(node, key, K)
        out.append((stats, knew))
    return out


def test_lookups_find_the_true_k_closest_nodes_within_a_log_bound_of_rounds() -> None:
    results = run(lambda sim: lookups(sim, 60, random.Random(1)))
    assert all(s.top3 for s, _ in results)
    assert sum(1 for s, _ in results if s.exact) >= len(results) - 2
    # the answers were not in the asker's table already: routing did the work
    assert sum(1 for _, knew in results if not knew) >= len(results) // 2
    rounds = [s.rounds for s, _ in results]
    assert max(rounds) <= math.ceil(math.log2(N))
    assert sum(rounds) / len(rounds) <= math.log2(N) / 2 + 1
    assert max(rounds) >= 3  # some lookups did need to walk towards the key


def test_after_a_tenth_of_the_nodes_crash_lookups_skip_them_and_stay_exact() -> None:
    async def scenario(sim: SimNetwork) -> tuple[set[bytes], list[LookupStats], set[bytes]]:
        gone = {n.node_id for n in sim.leave(N // 10)}
        results, found = [], set()
        rng = random.Random(2)
        for _ in range(40):
            nodes, stats = await sim.lookup(rng.choice(sim.nodes), rng.randbytes(20), K)
            found |= {n.id for n in nodes}
            results.append(stats)
        return gone, results, found

    gone, results, found = run(scenario)
    assert not gone & found
    assert all(s.top3 for s in results)
    # crashed contacts still fill buckets (evicted after 3 failures): a few miss one of k
    assert sum(1 for s in results if s.exact) >= len(results) * 0.8
    # lookups that met a crashed node waited for its RPC timeout (1 s, virtual)
    assert max(s.time for s in results) >= 1.0


def test_the_resolver_names_the_replica_set_of_a_term_as_all_node_ids_do() -> None:
    async def scenario(sim: SimNetwork) -> list[tuple[list[bytes], list[bytes]]]:
        rng = random.Random(3)
        out = []
        for i in range(30):
            term = f"term{i}"
            got, _ = await sim.responsible(rng.choice(sim.nodes), term_key(term), term, 3)
            out.append((got, xor_closest(sim.ids(), term_key(term), 3)))
        return out

    for got, truth in run(scenario):
        assert got == truth


def test_the_network_delays_each_datagram_by_the_link_latency() -> None:
    async def scenario(sim: SimNetwork) -> tuple[float, bool]:
        a, b = sim.nodes
        loop = asyncio.get_running_loop()
        t = loop.time()
        ok, _ = await a.protocol.ping(b.address, a.node_id)
        return loop.time() - t, ok

    rtt, ok = run(scenario, n=2, latency=0.05, jitter=0.01)
    assert ok
    assert 0.1 <= rtt <= 0.12


def test_the_virtual_clock_waits_for_real_work_in_threads_instead_of_jumping() -> None:
    async def scenario() -> tuple[str, float, float]:
        loop = asyncio.get_running_loop()
        timer = asyncio.ensure_future(asyncio.sleep(1000.0, "timer"))
        work = asyncio.ensure_future(asyncio.to_thread(time.sleep, 0.05))
        done, _ = await asyncio.wait({timer, work}, return_when=asyncio.FIRST_COMPLETED)
        first = "timer" if timer in done else "thread"
        at_thread = loop.time()
        await timer
        return first, at_thread, loop.time()

    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        first, at_thread, at_timer = runner.run(scenario())
    assert first == "thread"
    assert at_thread < 1000.0 <= at_timer  # then idle: the clock jumped to the timer
