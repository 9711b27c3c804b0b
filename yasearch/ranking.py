"""The one scoring function: BM25 over postings, with field-flag boosts.

Every result, local or remote, is scored here from the same inputs (tf, field
flags, document length, N, df, average length). Whoosh's own scores are never
used for the final order, because a remote peer's postings have no Whoosh
score, and mixing scores from different scorers gives a meaningless order.

Everything in this module is a pure function of its arguments, so a network of
peers holding disjoint documents ranks exactly like one peer holding them all.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from yasearch.analysis import analyze
from yasearch.records import (
    IN_ANCHOR, IN_DESCRIPTION, IN_HEADINGS, IN_TITLE, IN_URL, PRIOR_MASK, PRIOR_SHIFT, Document, Posting,
)

#: The text fields whose tokens count towards tf and document length, with the
#: flag each one sets. The URL is deliberately not here: it contributes only
#: through IN_URL, so that tf and length describe the same token stream.
TEXT_FIELDS: tuple[tuple[str, int], ...] = (
    ("title", IN_TITLE),
    ("headings", IN_HEADINGS),
    ("body", 0),
    ("description", IN_DESCRIPTION),
)

_URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_URL_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


def url_text(url: str) -> str:
    """The URL as plain words, for the url_terms field and IN_URL flags.

    The shared tokenizer keeps dotted runs like ``www.example.com`` as one
    token, which would make "example" unsearchable in URLs; splitting on every
    non-word character first gives host labels and path words as separate
    terms. The scheme is dropped because "https" in every document is noise.
    """
    return _URL_PUNCT.sub(" ", _URL_SCHEME.sub("", url)).strip()


def document_length(doc: Document) -> int:
    """Analyzed tokens in title, headings, body and description (BM25's |d|)."""
    return sum(len(analyze(getattr(doc, name) or "")) for name, _ in TEXT_FIELDS)


def prior_class(inlinks: int) -> int:
    """The static prior class of a document linked from ``inlinks`` distinct pages:
    floor(log2(inlinks)), 0 for at most one inlink, at most 7 (it fills 3 flag bits).
    Logarithmic, so the hundredth link adds little, and coarse, so the class (and
    with it the document's postings) changes only when its inlinks double."""
    return min(7, max(0, inlinks).bit_length() - 1) if inlinks >= 2 else 0


def prior_bits(doc: Document) -> int:
    """The flag bits that carry ``doc``'s prior class (records.PRIOR_SHIFT)."""
    return prior_class(doc.inlinks) << PRIOR_SHIFT


def postings_for_document(doc: Document) -> dict[str, Posting]:
    """The postings one document contributes, term -> Posting.

    This is what gets published to the network, and it must agree exactly with
    :meth:`yasearch.index.LocalIndex.postings` for the same document (a test
    checks that), so both derive fields and tokens the same way.
    """
    tf: Counter[str] = Counter()
    flags: dict[str, int] = {}
    length = 0
    for name, flag in TEXT_FIELDS:
        terms = analyze(getattr(doc, name) or "")
        length += len(terms)
        tf.update(terms)
        for term in set(terms):
            flags[term] = flags.get(term, 0) | flag
    for term in set(analyze(url_text(doc.url))):
        flags[term] = flags.get(term, 0) | IN_URL
    for term in set(analyze(doc.anchor or "")):
        flags[term] = flags.get(term, 0) | IN_ANCHOR
    prior = prior_bits(doc)
    return {
        term: Posting(doc_id=doc.doc_id, tf=tf.get(term, 0), flags=term_flags | prior, length=length)
        for term, term_flags in flags.items()
    }


@dataclass(frozen=True)
class FieldWeights:
    """Extra pseudo-occurrences a term earns for appearing in a field.

    Added to tf before BM25 saturation, so a title hit is worth about three more
    body mentions, but many body mentions can still compete with one title hit.

    ``anchor``: the term is in the link text other pages point here with
    (:mod:`yasearch.anchors`), what others call the page. Worth as much as a URL
    word: enough to find a page by a name only its inlinks use, less than the
    page's own title (link texts are short and often generic: "docs", "here").

    ``prior``: the static prior from the link graph, per class of the document
    (:func:`prior_class`, carried in flag bits 5-7): a page linked from 2-3
    pages earns ``prior`` more pseudo-occurrences of every query word it
    matches, one linked from 32 or more (the most a peer counts,
    anchors.MAX_SOURCES_PER_TARGET = 50) ``5 * prior``. **Off (0) by default**:
    at 0.5 (the best of 0.25, 0.5 and 1) it lifted ``bench relevance`` MRR only
    from 0.919 to 0.924 (identifier queries alone), while in a network each peer
    counts only the links on the pages it crawled, so the same document gets a
    different class than one peer crawling everything would give it, and
    ``bench network``'s overlap@10 with one peer fell (docs/benchmarks.md). The
    class is published in every posting anyway, so a network that turns it on
    (every peer alike) scores each document from the same inputs.
    """

    title: float = 3.0
    headings: float = 1.5
    url: float = 2.0
    description: float = 1.0
    anchor: float = 2.0
    prior: float = 0.0

    def boost(self, flags: int) -> float:
        """The sum of the weights of the fields named by ``flags``."""
        b = 0.0
        if flags & IN_TITLE:
            b += self.title
        if flags & IN_HEADINGS:
            b += self.headings
        if flags & IN_URL:
            b += self.url
        if flags & IN_DESCRIPTION:
            b += self.description
        if flags & IN_ANCHOR:
            b += self.anchor
        if flags & PRIOR_MASK:
            b += self.prior * ((flags & PRIOR_MASK) >> PRIOR_SHIFT)
        return b


DEFAULT_WEIGHTS = FieldWeights()

#: BM25 parameters (the usual defaults).
K1 = 1.2
B = 0.75


@dataclass
class CollectionStats:
    """Collection-wide figures BM25 needs; local or summed over the network."""

    n_docs: int
    avg_length: float
    df: dict[str, int] = field(default_factory=dict)


def idf(n_docs: int, df: int) -> float:
    """BM25 idf that never goes negative: ln(1 + (N - df + 0.5) / (df + 0.5))."""
    n = max(n_docs, df)
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def bm25_scores(
    postings: dict[str, list[Posting]],
    stats: CollectionStats,
    weights: FieldWeights = DEFAULT_WEIGHTS,
) -> dict[str, float]:
    """Sum of per-term BM25 contributions per document.

    The caller decides which documents are candidates (AND semantics, phrases,
    exclusions) by what it puts in ``postings``; this only scores. When df of a
    term is missing from ``stats`` the number of postings given stands in for it.
    """
    scores: dict[str, float] = {}
    avg = stats.avg_length if stats.avg_length > 0 else 0.0
    for term, plist in postings.items():
        if not plist:
            continue
        term_idf = idf(stats.n_docs, stats.df.get(term, len(plist)))
        for p in plist:
            wtf = p.tf + weights.boost(p.flags)
            if wtf <= 0:
                continue
            scores[p.doc_id] = scores.get(p.doc_id, 0.0) + contribution(term_idf, wtf, p.length, avg)
    return scores


def contribution(term_idf: float, wtf: float, length: int, avg: float) -> float:
    """One term's BM25 share of a document's score: ``wtf`` = tf + field boosts (> 0),
    ``avg`` = average document length (0: no length normalisation).

    The only place the formula is written: :func:`bm25_scores` and the local
    top-k evaluation (:mod:`yasearch.topk`) both call it, so they agree to the bit.
    """
    norm = (1.0 - B + B * (length / avg)) if avg > 0 else 1.0
    return term_idf * (wtf * (K1 + 1.0)) / (wtf + K1 * norm)


def rank(scores: dict[str, float]) -> list[tuple[str, float]]:
    """Documents by descending score, ties broken by doc_id so every peer agrees."""
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


#: Exponent of the coordination factor of relaxed queries.
COORDINATION_POWER = 2.0


def coordinated(score: float, matched: int, n_words: int) -> float:
    """A relaxed query's score: BM25 times (share of the query's words the document has) ** 2.

    A document with every word keeps its score; one with half of them keeps a
    quarter, so documents matching most words come first unless a document with
    fewer is much more about them.
    """
    if n_words <= 0:
        return score
    return score * (min(matched, n_words) / n_words) ** COORDINATION_POWER


#: Score factor of a document whose lead text (description, or the lead
#: paragraph standing in for it) holds every query word close together.
LEAD_PROXIMITY_BOOST = 1.0
#: "Close together": within a span of this many tokens more than the words.
LEAD_SLACK = 3
#: Ranks beyond the page asked for that proximity can lift onto it.
PROXIMITY_WINDOW = 30


def lead_has_words_together(terms: list[str], lead: str) -> bool:
    """Every one of ``terms`` (analyzed) occurs in ``lead`` within a span of
    ``len(terms) + LEAD_SLACK`` analyzed tokens."""
    wanted = set(terms)
    if not wanted or not lead:
        return False
    toks = analyze(lead)
    width = len(wanted) + LEAD_SLACK
    for i, t in enumerate(toks):
        if t in wanted and wanted <= set(toks[i : i + width]):
            return True
    return False


def boost_lead_proximity(
    ranked: list[tuple[str, float]], lead_of: Callable[[str], str | None], terms: list[str], upto: int
) -> list[tuple[str, float]]:
    """Term proximity, where it is cheap and telling: the best ``upto`` ranks (and as
    :data:`PROXIMITY_WINDOW` more) are rescored, a document whose lead text holds every query word
    close together getting its score times ``1 + LEAD_PROXIMITY_BOOST``."""
    if len(set(terms)) < 2:
        return ranked
    n = upto + PROXIMITY_WINDOW
    head = [
        (d, s * (1.0 + LEAD_PROXIMITY_BOOST) if lead_has_words_together(terms, lead_of(d) or "") else s)
        for d, s in ranked[:n]
    ]
    return rank(dict(head)) + ranked[n:]
