"""Whoosh codec tweaks for write speed (the on-disk format stays Whoosh's)."""

from __future__ import annotations

from typing import Any

from whoosh.codec.whoosh3 import W3Codec


def fast_codec() -> Any:
    """Whoosh's default codec, tuned for write speed.

    * ``compression=0``: posting blocks are not zlib-compressed (zlib was ~10%
      of indexing time; reading uncompressed blocks is faster too; the index is
      somewhat larger). Readers handle both, block by block.
    * ``length_stats = False``: Whoosh otherwise looks up the field length of
      every posting at commit (a column read per posting, ~20% of commit time)
      to keep per-block min/max lengths, which only feed Whoosh's own
      block-quality pruning in ``Searcher.search``. Scores here come from
      ranking.bm25_scores over ``length`` and never from Whoosh, and with the
      statistic absent Whoosh's pruning bound stays a valid upper bound.
    """
    codec = W3Codec(compression=0)
    codec.length_stats = False
    return codec

