"""Caps on what strangers may store: a global shard-store cap, and quotas per source
IP address, so a fresh origin id per request gets no fresh quota and unauthenticated
posts cannot fill the disk. Loopback sources are exempt from the per-address quota
by default (tests and the demo run many peers on one machine); these tests make
them count with ``shard_quota_exempt = []``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import forger
from yasearch.identity import Identity
from yasearch.records import Posting
from yasearch.shard import ShardStore
from yasearch.shard.quotas import Caps

SOURCE = "203.0.113.5"
OTHER = "198.51.100.7"


def _origin(i: int) -> str:
    return f"{i:040x}"


def _batch(prefix: str, n: int, doc: str = "d" * 40) -> list[tuple[str, Posting]]:
    return [(f"{prefix}{i}", Posting(doc_id=doc, tf=1, flags=0, length=5)) for i in range(n)]


def _counts_match(path: Path) -> None:
    """The per-address counts equal the postings of the origins bound to each address."""
    with sqlite3.connect(path) as conn:
        recomputed = dict(conn.execute(
            "SELECT s.source, sum(o.postings) FROM origin_sources s JOIN origins o USING(origin) GROUP BY s.source"
        ).fetchall())
        stored = dict(conn.execute("SELECT source, postings FROM sources").fetchall())
    assert stored == recomputed


async def test_a_fresh_origin_per_request_shares_its_source_address_quota(tmp_path: Path) -> None:
    async with ShardStore(tmp_path / "s.db", caps=Caps(quota_per_source=10, exempt=())) as s:
        accepted = 0
        for i in range(5):  # five "different peers", one address
            r = await s.upsert(_origin(i), _batch(f"t{i}-", 4), source=SOURCE)
            accepted += r.accepted
        assert accepted == 10
        assert (await s.totals())["postings"] == 10
        # another address has its own quota
        assert (await s.upsert(_origin(99), _batch("u", 4), source=OTHER)).accepted == 4
        # updates of postings an origin already holds are not new: still accepted
        assert (await s.upsert(_origin(0), _batch("t0-", 4), source=SOURCE)).accepted == 4
        # a withdrawal frees the address's quota
        assert await s.withdraw(_origin(0), ["d" * 40]) == 4
        assert (await s.upsert(_origin(7), _batch("v", 6), source=SOURCE)).accepted == 4
    _counts_match(tmp_path / "s.db")


async def test_the_store_holds_at_most_max_postings(tmp_path: Path) -> None:
    async with ShardStore(tmp_path / "g.db", caps=Caps(max_postings=10)) as s:
        results = [await s.upsert(_origin(i), _batch(f"t{i}-", 4), source=f"192.0.2.{i}") for i in range(6)]
        assert sum(r.accepted for r in results) == 10
        assert sum(r.refused_full for r in results) == 14
        assert (await s.totals())["postings"] == 10
        # full: updates still go in, new postings do not, even from this peer itself
        assert (await s.upsert(_origin(0), _batch("t0-", 4))).accepted == 4
        assert (await s.upsert(_origin(50), _batch("new", 1))).refused_full == 1
        # expiry or withdrawal makes room again (the cached total follows)
        await s.withdraw(_origin(1), ["d" * 40])
        assert (await s.upsert(_origin(50), _batch("new", 9))).accepted == 4
        assert (await s.totals())["postings"] == 10


async def test_loopback_sources_are_exempt_by_default_but_the_global_cap_is_not(tmp_path: Path) -> None:
    async with ShardStore(tmp_path / "l.db", caps=Caps(max_postings=30, quota_per_source=5)) as s:
        got = [await s.upsert(_origin(i), _batch(f"t{i}-", 5), source="127.0.0.1") for i in range(8)]
        assert sum(r.accepted for r in got) == 30
        assert (await s.upsert(_origin(9), _batch("x", 5), source="::ffff:127.0.0.1")).refused_full == 5


async def test_counts_follow_an_origin_that_moves_and_expiry(tmp_path: Path) -> None:
    async with ShardStore(tmp_path / "m.db", max_age=100.0, caps=Caps(quota_per_source=100, exempt=())) as s:
        await s.upsert(_origin(1), _batch("a", 10), source=SOURCE, ts=1000.0)
        await s.upsert(_origin(1), _batch("b", 5), source=OTHER, ts=1000.0)  # moved: all 15 go with it
        # another origin cannot take origin 1's postings over (signed writes: the owner rule)
        assert (await s.upsert(_origin(2), _batch("a", 3), source=SOURCE, ts=2000.0)).refused_owner == 3
        await s.upsert(_origin(2), _batch("c", 3), source=SOURCE, ts=2000.0)
        _counts_match(tmp_path / "m.db")
        await s.expire(now=1050.0 + 100.0)  # origin 1's go, origin 2's stay
        _counts_match(tmp_path / "m.db")
        assert (await s.totals())["postings"] == 3


async def _post(http, url: str, n: int, prefix: str) -> tuple[int, dict]:
    """A batch signed by a fresh key: a new origin id per request, as a sybil makes them."""
    body = forger.postings(Identity.generate(), [(f"{prefix}{i}", "c" * 40, 1, 0, 5) for i in range(n)])
    async with http.post(url + "/p2p/v1/postings", data=body, headers={"Content-Type": "application/json"}) as r:
        return r.status, await r.json()


async def test_sybil_origins_from_one_address_are_refused_over_http(make_peer, http) -> None:
    peer = await make_peer(shard_quota_per_source=10, shard_quota_exempt=[])
    replies = [await _post(http, peer.url, 4, f"s{i}-") for i in range(4)]
    assert [r[1]["accepted"] for r in replies] == [4, 4, 2, 0]
    assert replies[-1][0] == 429
    assert (await peer.shard.stats())["postings"] == 10


async def test_unauthenticated_posts_cannot_fill_the_store_over_http(make_peer, http) -> None:
    peer = await make_peer(shard_max_postings=12)
    for i in range(5):
        await _post(http, peer.url, 5, f"f{i}-")
    status, reply = await _post(http, peer.url, 5, "last")
    assert status == 429 and reply["accepted"] == 0
    assert (await peer.shard.stats())["postings"] == 12
