"""The Whoosh schema of the local index, and the field groups the rest of the code reads.

The schema is pickled into the index on disk: changing a field here changes
the on-disk format.
"""

from __future__ import annotations

from typing import Any

from whoosh.columns import VarBytesColumn
from whoosh.fields import COLUMN, ID, KEYWORD, NUMERIC, TEXT, FieldType, Schema
from whoosh.formats import Existence

from yasearch.analysis import make_analyzer
from yasearch.index.passages import FIELD as PASSAGES_FIELD
from yasearch.index.passages import encode as encode_passages
from yasearch.ranking import TEXT_FIELDS
from yasearch.records import IN_ANCHOR, IN_URL

#: Stored body is capped: it is only kept for snippets, and a few huge pages
#: would otherwise dominate the index size.
MAX_STORED_BODY_CHARS = 100_000


#: Whoosh fields that make up a posting, with the flag each sets. ``url_terms``
#: and ``anchor`` (the link texts of inlinks, :mod:`yasearch.anchors`) only set
#: their flag and add nothing to tf (see ranking.TEXT_FIELDS).
POSTING_FIELDS: tuple[tuple[str, int], ...] = TEXT_FIELDS + (("url_terms", IN_URL), ("anchor", IN_ANCHOR))
#: Fields whose term frequencies count towards a posting's tf.
TF_FIELDS = frozenset(name for name, _ in TEXT_FIELDS)

#: The field holding each document's static prior class ("0"-"7", ranking.prior_class),
#: which the read view ORs into the flags of its postings (ReadView.term_tf_flags).
PRIOR_FIELD = "prior"

#: Text fields a phrase can match in.
PHRASE_FIELDS: tuple[str, ...] = tuple(name for name, _ in TEXT_FIELDS)


#: The field of impact postings (see :class:`ImpactField`); indexes created
#: before it existed lack it and are searched without it.
IMPACT_FIELD = "impact"


class ImpactField(FieldType):
    """One posting per (term, document) whose weight is the term's BM25 ``wtf``:
    tf over the text fields plus the default field boosts of its flags.

    It is what top-k evaluation reads (:mod:`yasearch.index.impact`): one posting
    list per term instead of five, and Whoosh's per-block maximum weight is then
    an upper bound of the term's score in that block. The value given to the
    writer is a ``{term: wtf}`` dict; weights are sums of integers and halves,
    exact in the posting blocks' float32.
    """

    def __init__(self) -> None:
        self.format = Existence()
        self.scorable = False
        self.stored = False
        self.unique = False
        self.vector = None
        self.analyzer = None

    def index(self, value: Any, **kwargs: Any) -> Any:
        return [(term.encode("utf-8"), 1, float(wtf), b"") for term, wtf in value.items()]

    def process_text(self, qstring: str, mode: str = "", **kwargs: Any) -> Any:
        return iter([qstring])

    def self_parsing(self) -> bool:
        return False


class PassagesField(COLUMN):
    """The stored body as passages (:mod:`yasearch.index.passages`): one record
    per document in a column of its own, so that the stored record (title, url,
    description, ...) stays small and a snippet decompresses only the passages
    it reads. The value given to the writer is the body; the stored part is
    capped at :data:`MAX_STORED_BODY_CHARS`."""

    def __init__(self) -> None:
        super().__init__(VarBytesColumn())

    def to_column_value(self, value: Any) -> bytes:
        if isinstance(value, bytes):
            return value
        return encode_passages((value or "")[:MAX_STORED_BODY_CHARS])

    def from_column_value(self, value: Any) -> Any:
        return value


def make_schema() -> Schema:
    """The Whoosh schema. Analyzed fields all use the one shared analyzer."""
    analyzer = make_analyzer()
    return Schema(
        doc_id=ID(unique=True, stored=True, sortable=True),
        url=ID(stored=True, sortable=True),
        url_terms=TEXT(analyzer=analyzer, phrase=False),
        anchor=TEXT(analyzer=analyzer, phrase=False),
        prior=ID(),
        host=ID(stored=True),
        host_parts=KEYWORD(lowercase=True),
        title=TEXT(analyzer=analyzer, phrase=True, stored=True),
        headings=TEXT(analyzer=analyzer, phrase=True),
        # the stored body is in PASSAGES_FIELD (indexes before it: stored=True here)
        body=TEXT(analyzer=analyzer, phrase=True),
        description=TEXT(analyzer=analyzer, phrase=True, stored=True),
        language=ID(stored=True),
        crawled_at=NUMERIC(numtype=float, bits=64, stored=True),
        length=NUMERIC(numtype=int, bits=64, stored=True, sortable=True),
        impact=ImpactField(),
        **{PASSAGES_FIELD: PassagesField()},
    )


def added_fields() -> dict[str, FieldType]:
    """Fields added to the schema after indexes were first written: an index
    opened without them gets them (:func:`missing_fields`), empty for old documents."""
    schema = make_schema()
    return {name: schema[name] for name in ("anchor", "prior", PASSAGES_FIELD)}


def missing_fields(schema: Schema) -> dict[str, FieldType]:
    """The :func:`added_fields` ``schema`` lacks (an index written before they existed)."""
    return {name: f for name, f in added_fields().items() if name not in schema}


def retire_stored_body(schema: Schema) -> None:
    """Once an index has :data:`PASSAGES_FIELD`, documents written from then on keep
    their body there only (documents written before keep theirs in the stored record)."""
    if PASSAGES_FIELD in schema and "body" in schema:
        schema["body"].stored = False


def host_parts(host: str) -> list[str]:
    """``a.b.example.com`` -> itself and every parent domain (for ``site:``)."""
    host = host.lower().strip(".")
    if not host:
        return []
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]

