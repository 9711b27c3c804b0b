"""A small in-memory history of a peer's figures, for the network page's sparklines.

The peer samples a few numbers (documents, postings held, publish sent/pending, DHT
contacts) every :data:`SAMPLE_INTERVAL` seconds into a ring buffer of
:data:`MAX_SAMPLES` samples (an hour at the default interval). Nothing is persisted:
after a restart the lines start again.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Iterable, Mapping

SAMPLE_INTERVAL = 10.0
MAX_SAMPLES = 360

#: The figures sampled, in the order the network page shows them: name -> label.
FIGURES: dict[str, str] = {
    "documents": "Documents",
    "postings_held": "Postings held",
    "publish_sent": "Postings sent",
    "publish_pending": "Publish pending",
    "dht_contacts": "DHT contacts",
}


class History:
    """A bounded ring buffer of (time, {figure: number}) samples."""

    def __init__(self, maxlen: int = MAX_SAMPLES) -> None:
        self._samples: deque[tuple[float, dict[str, float]]] = deque(maxlen=maxlen)

    def add(self, figures: Mapping[str, float], at: float | None = None) -> None:
        clean = {
            k: float(v) for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        self._samples.append((time.time() if at is None else at, clean))

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def maxlen(self) -> int:
        return self._samples.maxlen or 0

    def times(self) -> list[float]:
        return [t for t, _ in self._samples]

    def series(self, name: str) -> list[float]:
        """One figure over time, oldest first (samples without it are skipped)."""
        return [f[name] for _, f in self._samples if name in f]

    def names(self) -> Iterable[str]:
        seen: dict[str, None] = {}
        for _, f in self._samples:
            seen.update(dict.fromkeys(f))
        return list(seen)
