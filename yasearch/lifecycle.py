"""Stopping a long-running command cleanly on SIGTERM (what `kill` and `docker stop`
send) and SIGINT (Ctrl-C): the command's task is cancelled once, its ``finally``
blocks stop the peers and remove temporary data, and the command exits 0."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any


async def until_signal(coro: Coroutine[Any, Any, int]) -> int:
    """Run ``coro``; on the first SIGTERM or SIGINT cancel it and return 0 once it has
    cleaned up. Later signals during the clean-up are ignored (it is bounded)."""
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    signalled = False

    def stop() -> None:
        nonlocal signalled
        if not signalled:
            signalled = True
            task.cancel()

    sigs = (signal.SIGINT, signal.SIGTERM)
    for sig in sigs:
        loop.add_signal_handler(sig, stop)
    try:
        return await task
    except asyncio.CancelledError:
        if signalled:
            return 0
        raise
    finally:
        for sig in sigs:
            loop.remove_signal_handler(sig)
