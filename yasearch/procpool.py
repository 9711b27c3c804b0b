"""The parse workers: a process pool that never outlives the process that made it.

``ProcessPoolExecutor`` workers started by the forkserver hold both ends of
their call queue, the forkserver's liveness pipe and the resource tracker's
pipe. If the peer dies without shutting the pool down (SIGKILL, a crash), the
workers wait on their queue forever and keep the forkserver and the resource
tracker alive with them. So every worker watches its owner's pid (a pidfd on
Linux, polling elsewhere) and exits when the owner is gone; :func:`close_pool`
shuts the pool down and waits (bounded) for the workers on a clean stop.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import select
import threading
import time
from concurrent.futures import ProcessPoolExecutor


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_owner(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        while pid_alive(pid):
            time.sleep(1.0)
    else:
        select.select([fd], [], [])  # readable once the process has exited
    os._exit(0)


def _worker_init(owner: int) -> None:
    if not pid_alive(owner):
        os._exit(0)
    threading.Thread(target=_watch_owner, args=(owner,), name="owner-watch", daemon=True).start()


def parse_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes that exit with this process.

    forkserver: workers must not inherit the writer threads and sockets of the peer.
    """
    ctx = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),))


async def close_pool(pool: ProcessPoolExecutor, timeout: float = 5.0) -> None:
    """Cancel queued work, let the workers exit; after ``timeout`` seconds give up waiting
    (a worker stuck in a parse is ended by the pool's own shutdown at interpreter exit)."""
    pool.shutdown(wait=False, cancel_futures=True)
    try:
        await asyncio.wait_for(asyncio.to_thread(pool.shutdown, wait=True), timeout)
    except asyncio.TimeoutError:
        pass
