"""Field limits of a document record and a posting, wherever one comes from.

Generous for honest peers, small enough that a hostile one cannot make a single
row huge. :mod:`yasearch.wire` declares them on the p2p messages (validated once,
where a message enters); the publisher trims its own records to them, so what it
sends is what a holder accepts. The JSON API may share them.
"""

from __future__ import annotations

from yasearch.analysis import MAX_TERM_CHARS

__all__ = [
    "MAX_TERM_CHARS",
    "MAX_ORIGIN_CHARS",
    "MAX_TF",
    "MAX_FLAGS",
    "MAX_DOC_LENGTH",
    "MAX_URL_CHARS",
    "MAX_TITLE_CHARS",
    "MAX_DESCRIPTION_CHARS",
    "MAX_LANGUAGE_CHARS",
    "MAX_HOST_CHARS",
    "MAX_UNIX_TIME",
]

#: A record's ``origin`` as a lookup reply states it (a node ID is 40 characters).
MAX_ORIGIN_CHARS = 64
#: Occurrences of a term in one document.
MAX_TF = 10_000_000
#: Field flags of a posting fit in one byte (see :mod:`yasearch.records`).
MAX_FLAGS = 0xFF
#: A document's analyzed length, in tokens.
MAX_DOC_LENGTH = 100_000_000
MAX_URL_CHARS = 2048
MAX_TITLE_CHARS = 1024
MAX_DESCRIPTION_CHARS = 4096
MAX_LANGUAGE_CHARS = 32
MAX_HOST_CHARS = 255
#: ``crawled_at`` is a Unix time; anything beyond the year 5138 is not one.
MAX_UNIX_TIME = 1e11
