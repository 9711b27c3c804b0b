"""A one-line live progress bar for crawl jobs in a terminal."""

from __future__ import annotations

import sys
from typing import Any, TextIO


def render(job: dict[str, Any], width: int = 30) -> str:
    spec = job.get("spec") or {}
    target = max(int(spec.get("max_pages") or 1), 1)
    done = int(job.get("fetched", 0))
    frac = min(done / target, 1.0) if job.get("state") == "running" else 1.0
    filled = int(frac * width)
    bar = "#" * filled + "." * (width - filled)
    return (
        f"[{bar}] {job.get('state', '?'):9} fetched {done}/{target}  indexed {job.get('indexed', 0)}  "
        f"failed {job.get('failed', 0)}  skipped {job.get('skipped', 0)}  queued {job.get('queued', 0)}  "
        f"{job.get('pages_per_second', 0):.1f} pages/s"
    )


class ProgressLine:
    """Rewrites one line on a TTY; prints a line per change elsewhere (logs stay readable)."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = ""

    def update(self, job: dict[str, Any]) -> None:
        line = render(job)
        if line == self._last:
            return
        self._last = line
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._last:
            self.stream.write("\n")
            self.stream.flush()
