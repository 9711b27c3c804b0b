"""The peer's fault registry: which of its stores cannot write now, since when, and why.

Every SQLite store (shard store, publish outbox, crawl frontier, recrawl
schedule) reports into one :class:`Faults` through the ``health`` callback of
its :class:`~yasearch.crawler.sqlite.SqliteThread`: the error of a write that
found the disk full makes the store *faulty*, the next committed write makes it
healthy again. :mod:`yasearch.status` reads :meth:`Faults.snapshot` (next to the
index's own fault) for ``/api/v1/status``: ``"state": "degraded"`` while any part
is faulty. One registry per peer (several peers share a process in the tests).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from yasearch.crawler.sqlite import Health, StorageFullError, is_disk_full

__all__ = ["Faults", "Health", "StorageFullError", "is_disk_full"]

log = logging.getLogger(__name__)


class Faults:
    """Part name -> (error, since) of each part that cannot write now."""

    def __init__(self) -> None:
        self._faults: dict[str, tuple[str, float]] = {}
        #: Times each part turned faulty, and healthy again (figures for status).
        self.counts: dict[str, dict[str, int]] = {}

    def report(self, part: str, error: BaseException | None) -> None:
        """``error``: the part failed to write; None: a write of it committed."""
        counts = self.counts.setdefault(part, {"faults": 0, "recoveries": 0})
        if error is None:
            if self._faults.pop(part, None) is not None:
                counts["recoveries"] += 1
                log.warning("%s writes again: healthy", part)
            return
        if part not in self._faults:
            counts["faults"] += 1
            log.warning("%s cannot write (%s): degraded until a write succeeds", part, error)
            self._faults[part] = (str(error), time.time())

    def reporter(self, part: str) -> Health:
        """The ``health`` callback of one store."""
        return lambda error: self.report(part, error)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{part: {"error", "since"}}`` of the parts that cannot write now."""
        return {part: {"error": error, "since": since} for part, (error, since) in self._faults.items()}
