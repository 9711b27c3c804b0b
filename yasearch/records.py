"""Records that cross module boundaries: documents, postings, search answers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Field flags of a posting: where, besides the body, a term occurs.
IN_TITLE = 1
IN_HEADINGS = 2
IN_URL = 4
IN_DESCRIPTION = 8
#: The term is in the anchor text of links other pages point at this one with
#: (:mod:`yasearch.anchors`). Like IN_URL it adds no tf and no length.
IN_ANCHOR = 16
#: Bits 5-7 of every posting's flags: the document's static prior class, 0-7
#: (yasearch.ranking.prior_class of its inlinks), the same in all its postings,
#: so it travels with them to every peer.
PRIOR_SHIFT = 5
PRIOR_MASK = 0b111 << PRIOR_SHIFT


@dataclass
class Document:
    """One indexed page, keyed by the hash of its canonical URL."""

    doc_id: str
    url: str
    host: str
    title: str = ""
    headings: str = ""
    body: str = ""
    description: str = ""
    language: str = ""
    crawled_at: float = 0.0
    #: Link texts of other pages pointing here, one per line (yasearch.anchors).
    anchor: str = ""
    #: Distinct pages the crawling peer saw linking here (yasearch.anchors; bounded).
    inlinks: int = 0


@dataclass(frozen=True)
class Posting:
    """What ranking needs to know about one term in one document.

    The same record is produced by the local index and (later) shipped between
    peers, so that every peer scores with identical inputs.
    """

    doc_id: str
    tf: int  # occurrences over all text fields
    flags: int  # IN_TITLE | IN_HEADINGS | IN_URL | IN_DESCRIPTION | IN_ANCHOR
    length: int  # document length in analyzed tokens


@dataclass
class DocRecord:
    """What a result row shows about a document."""

    doc_id: str
    url: str
    title: str
    description: str = ""
    language: str = ""
    length: int = 0
    crawled_at: float = 0.0
    origin: str = "local"
    host: str = ""


@dataclass
class SearchHit:
    url: str
    title: str
    snippet: str  # plain text
    snippet_html: str  # HTML-escaped text with <mark> around query terms; safe to embed
    score: float
    origin: str  # "local" or a peer ID
    doc_id: str = ""
    host: str = ""
    language: str = ""
    crawled_at: float = 0.0
    #: Results of this host the page leaves out for host diversity (yasearch.dedupe):
    #: a ``site:`` search shows them.
    more_from_host: int = 0


@dataclass
class SearchResponse:
    query: str
    total: int
    took_ms: float
    results: list[SearchHit] = field(default_factory=list)
    offset: int = 0
    limit: int = 10
    scope: str = "local"
    peers: dict[str, int] = field(default_factory=lambda: {"asked": 0, "answered": 0, "failed": 0})
    #: Navigators: ``{"host": [[host, count], ...], "language": [[lang, count], ...]}``,
    #: most frequent first, counted over (at most) the best 1,000 matches.
    facets: dict[str, list[list[Any]]] = field(default_factory=lambda: {"host": [], "language": []})
    #: Too few documents had every word, so documents with most of them are shown
    #: (yasearch.relax); ``total`` then counts those.
    relaxed: bool = False
    #: A query the term dictionary suggests instead ("did you mean"), "" if none.
    did_you_mean: str = ""
    #: ``total`` is an estimate: the top k were found without visiting every match.
    total_estimated: bool = False
    #: Query terms left out of a global search because none of their replicas answered.
    skipped_terms: list[str] = field(default_factory=list)
    #: Sequential rounds of calls a global search made to other peers.
    round_trips: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["took_ms"] = round(self.took_ms, 2)
        return d
