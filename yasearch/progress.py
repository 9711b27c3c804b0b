"""Crawl progress for the terminal: a live one-line bar, or plain lines in a pipe."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from typing import Any, TextIO


def _counts(job: dict[str, Any]) -> str:
    return (
        f"indexed {job.get('indexed', 0)}  failed {job.get('failed', 0)}  "
        f"skipped {job.get('skipped', 0)}  queued {job.get('queued', 0)}"
    )


def render(job: dict[str, Any], width: int = 30) -> str:
    spec = job.get("spec") or {}
    done = int(job.get("fetched", 0))
    target = max(int(spec.get("max_pages") or 0) or done, 1)  # an import has no max_pages
    frac = min(done / target, 1.0) if job.get("state") in ("running", "paused") else 1.0
    filled = int(frac * width)
    bar = "#" * filled + "." * (width - filled)
    return (
        f"[{bar}] {job.get('state', '?'):9} fetched {done}/{target}  {_counts(job)}  "
        f"{float(job.get('pages_per_second') or 0):.1f} pages/s"
    )


def summary(job: dict[str, Any], elapsed: float | None = None) -> str:
    """One line for the end of a job: state and totals."""
    took = f" in {elapsed:.1f} s" if elapsed is not None else ""
    failures = job.get("failures") or {}
    why = " (" + ", ".join(f"{k} {v}" for k, v in sorted(failures.items())) + ")" if failures else ""
    skips = job.get("skip_reasons") or {}
    skipped = " (" + ", ".join(f"{k} {v}" for k, v in sorted(skips.items())) + ")" if skips else ""
    return (
        f"crawl {job.get('id', '?')} {job.get('state', '?')}{took}: fetched {job.get('fetched', 0)}, "
        f"indexed {job.get('indexed', 0)}, failed {job.get('failed', 0)}{why}, skipped {job.get('skipped', 0)}{skipped}"
    )


async def watch(client: Any, job: dict[str, Any]) -> dict[str, Any] | None:
    """Show a job's progress until it ends; its last state, or None when the user stopped watching."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    bar = ProgressLine()
    state: dict[str, Any] = job
    try:
        while True:
            state = await client.request("GET", f"/api/v1/crawl/{job['id']}")
            bar.update(state)
            if state["state"] not in ("running", "paused"):
                break
            await asyncio.sleep(0.5)
    except (KeyboardInterrupt, asyncio.CancelledError):
        bar.close()
        print(f"stopped watching; job {job['id']} goes on in the peer", file=sys.stderr)
        return None
    finally:
        bar.close()
    print(summary(state, loop.time() - started), flush=True)
    return state


class ProgressLine:
    """Rewrites one line on a TTY.

    Elsewhere (a pipe, a log file) it prints a plain line when the counters or
    the state change, at most one per ``interval`` seconds while running, so
    logs stay readable.
    """

    def __init__(self, stream: TextIO | None = None, *, interval: float = 1.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.interval = interval
        self._last = ""
        self._last_key = ""
        self._last_state = ""
        self._last_time = float("-inf")

    def update(self, job: dict[str, Any]) -> None:
        line = render(job)
        if self.tty:
            if line == self._last:
                return
            width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
            self.stream.write("\r\x1b[2K" + line[:width])
            self._last = line
        else:
            state = str(job.get("state"))
            key = f"{state} {job.get('fetched', 0)} {_counts(job)}"
            now = time.monotonic()
            same_state = state == self._last_state
            if key == self._last_key or (same_state and now - self._last_time < self.interval):
                return
            self._last_key, self._last_state, self._last_time, self._last = key, state, now, line
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._last:
            self.stream.write("\n")
            self.stream.flush()
        self._last = ""
