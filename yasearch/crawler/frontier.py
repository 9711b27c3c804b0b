"""In-memory crawl frontier with per-host politeness.

Politeness lives here rather than in the workers so that a worker never holds a
concurrency slot while sleeping for a host: :meth:`Frontier.get` only hands out URLs
whose host may be contacted now, round-robin over hosts, and otherwise sleeps until
the earliest host becomes ready or new work arrives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from .urls import host_of

log = logging.getLogger(__name__)


class Frontier:
    def __init__(self, default_delay: float, per_host_concurrency: int = 1) -> None:
        self._default_delay = max(0.0, default_delay)
        self._per_host = max(1, per_host_concurrency)
        self._queues: dict[str, deque[tuple[str, int]]] = {}
        self._ring: deque[str] = deque()  # hosts with queued URLs, round-robin order
        self._inflight: dict[str, int] = {}
        self._next_ok: dict[str, float] = {}  # host -> monotonic time of next allowed request
        self._delays: dict[str, float] = {}
        #: Hosts whose effective delay is known (their robots.txt was read). Until
        #: then a host gets one request at a time, or a Crawl-delay would be learnt
        #: only after several workers had already fired at it together.
        self._confirmed: set[str] = set()
        self._seen: set[str] = set()
        self._queued = 0
        self._closed = False
        self._wake = asyncio.Event()

    # -- bookkeeping -------------------------------------------------------------

    def __len__(self) -> int:
        return self._queued

    @property
    def closed(self) -> bool:
        return self._closed

    def seen(self, url: str) -> bool:
        return url in self._seen

    def mark_seen(self, url: str) -> None:
        self._seen.add(url)

    def delay_for(self, host: str) -> float:
        return self._delays.get(host, self._default_delay)

    def set_host_delay(self, host: str, delay: float) -> None:
        """Raise a host's delay (e.g. robots Crawl-delay); the larger value wins.

        Also marks the host's delay as known, which lifts the one-request limit of
        hosts not yet vetted when their delay is 0.
        """
        changed = host not in self._confirmed
        self._confirmed.add(host)
        if delay > self.delay_for(host):
            self._delays[host] = delay
            changed = True
        if changed:
            self._notify()

    def note_request(self, host: str, at: float) -> None:
        """A request to ``host`` was made at monotonic time ``at`` outside the
        frontier (robots.txt): the next one waits for the host's delay after it."""
        self._next_ok[host] = max(self._next_ok.get(host, 0.0), at + self.delay_for(host))

    def _limit(self, host: str) -> int:
        if host not in self._confirmed or self.delay_for(host) > 0:
            return 1
        return self._per_host

    def _notify(self) -> None:
        # Wake every waiter once; each re-checks and the losers wait on a fresh event.
        self._wake.set()
        self._wake = asyncio.Event()

    # -- producer side -----------------------------------------------------------

    def add(self, url: str, depth: int) -> bool:
        """Queue ``url`` unless it was seen before; True if it was queued."""
        if url in self._seen or self._closed:
            return False
        self._seen.add(url)
        self.push(url, depth)
        return True

    def push(self, url: str, depth: int) -> None:
        """Queue ``url`` without the seen check.

        For URLs the caller has already claimed with :meth:`mark_seen` (so that no
        other worker queues them) and then persisted before queuing.
        """
        if self._closed:
            return
        self._seen.add(url)
        host = host_of(url)
        q = self._queues.get(host)
        if q is None:
            q = self._queues[host] = deque()
        if not q:
            self._ring.append(host)
        q.append((url, depth))
        self._queued += 1
        self._notify()

    # -- consumer side -----------------------------------------------------------

    def _try_take(self, now: float) -> tuple[tuple[str, int] | None, float | None]:
        """One pass over the ring: a ready URL, or the earliest time one may be ready."""
        earliest: float | None = None
        for _ in range(len(self._ring)):
            host = self._ring.popleft()
            q = self._queues[host]
            if self._inflight.get(host, 0) < self._limit(host):
                ready_at = self._next_ok.get(host, 0.0)
                if ready_at <= now:
                    item = q.popleft()
                    self._queued -= 1
                    self._inflight[host] = self._inflight.get(host, 0) + 1
                    if q:
                        self._ring.append(host)
                    else:
                        del self._queues[host]
                    return item, None
                earliest = ready_at if earliest is None else min(earliest, ready_at)
            self._ring.append(host)
        return None, earliest

    async def get(self) -> tuple[str, int] | None:
        """The next (url, depth) whose host may be fetched now; None once closed.

        The caller must call :meth:`done` for every URL it receives.
        """
        while not self._closed:
            item, earliest = self._try_take(time.monotonic())
            if item is not None:
                return item
            wake = self._wake
            timeout = None if earliest is None else max(0.0, earliest - time.monotonic())
            try:
                async with asyncio.timeout(timeout):
                    await wake.wait()
            except TimeoutError:
                pass
        return None

    async def claim(self, host: str) -> None:
        """Take a slot of ``host`` outside the queues (a redirect hop to it).

        Waits, like :meth:`get`, until the host has a free slot and its politeness
        gap has passed. Release it with :meth:`release`.
        """
        while True:
            now = time.monotonic()
            ready_at = self._next_ok.get(host, 0.0)
            free = self._inflight.get(host, 0) < self._limit(host)
            if free and ready_at <= now:
                self._inflight[host] = self._inflight.get(host, 0) + 1
                return
            wake = self._wake
            timeout = max(0.0, ready_at - now) if free else None
            try:
                async with asyncio.timeout(timeout):
                    await wake.wait()
            except TimeoutError:
                pass

    async def wait_turn(self, host: str) -> None:
        """Sleep until the politeness gap of ``host`` has passed (caller holds its slot)."""
        while (wait := self._next_ok.get(host, 0.0) - time.monotonic()) > 0:
            await asyncio.sleep(wait)

    def done(self, url: str, *, contacted: bool = True) -> None:
        """Release the host slot of ``url``.

        ``contacted=False`` (e.g. robots disallowed) releases the slot without
        starting a new politeness gap, since no request reached the host.
        """
        self.release(host_of(url), contacted=contacted)

    def release(self, host: str, *, contacted: bool = True) -> None:
        """Release a slot of ``host`` (see :meth:`done`)."""
        n = self._inflight.get(host, 0) - 1
        if n > 0:
            self._inflight[host] = n
        else:
            self._inflight.pop(host, None)
        if contacted:
            self._next_ok[host] = max(
                self._next_ok.get(host, 0.0), time.monotonic() + self.delay_for(host)
            )
        self._notify()

    def close(self) -> None:
        """Stop handing out work and wake every waiter (they get None)."""
        self._closed = True
        self._notify()
