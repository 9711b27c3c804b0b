"""The local inverted index: Whoosh on disk, written by one thread, read by a pool.

One job per module, imports only downward (each from the ones above it):

* :mod:`.mapped` - segment files read in place from their memory map (Whoosh copied each one it opened);
* :mod:`.passages` - the stored body as passages compressed one by one, with per-passage term filters;
* :mod:`.schema` - the Whoosh schema and the field groups (posting, phrase);
* :mod:`.fastpath` - postings from :func:`yasearch.analysis.analyze_positions`
  instead of Whoosh's analyzer chain (same terms and positions, ~5x faster);
* :mod:`.codec` - Whoosh codec tweaks for write speed;
* :mod:`.segwriter` - a Whoosh segment writer that keeps postings per term and writes blocks whole;
* :mod:`.impact` - the impact postings (term -> BM25 wtf) a block at a time, for top-k;
* :mod:`.docvalues` - per-segment host and language arrays (facets without stored fields);
* :mod:`.reader` - :class:`ReadView`, one reader thread's view of a commit;
* :mod:`.writer` - the writer thread's state, commits and crash safety;
* :mod:`.writerproc` - the same writer in a child process (``writer_process=True``);
* :mod:`.local` - the :class:`LocalIndex` facade the rest of yasearch uses.
"""

from yasearch.index import mapped  # noqa: F401 - installed before any segment is opened
from yasearch.index.local import IndexClosedError, IndexDegradedError, IndexDirectoryError, LocalIndex
from yasearch.index.reader import ReadView
from yasearch.index.schema import (
    MAX_STORED_BODY_CHARS,
    PHRASE_FIELDS,
    POSTING_FIELDS,
    host_parts,
    make_schema,
)

__all__ = [
    "IndexClosedError",
    "IndexDegradedError",
    "IndexDirectoryError",
    "LocalIndex",
    "MAX_STORED_BODY_CHARS",
    "PHRASE_FIELDS",
    "POSTING_FIELDS",
    "ReadView",
    "host_parts",
    "make_schema",
]
