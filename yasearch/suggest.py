"""Search-box completions from the local index.

``GET /api/v1/suggest?q=json de`` completes the last word of the query with
the words that follow the word before it in indexed text: ``["json decoder",
"json dumps", ...]``, not any word starting with "de". Without a word before
it (``zeb``), or when indexed text never has the typed start after that word,
the last word is completed from the words of indexed titles:
``["zebra", "zebras", ...]``.

**Next words** are read from indexed text when asked for, not from a table
built at indexing time (a table of "word next-word" pairs cost indexing ~30 %:
most pairs are distinct terms). For ``json de`` the stored text of up to
NEXT_WORD_DOCS live documents with the term of ``json`` is read (those with it
in the title, then those where it is most frequent among the first
NEXT_WORD_SCAN with it in the body; at most NEXT_WORD_CHARS of each body), and
every word starting with ``de`` that directly follows a word with that term
(separated by whitespace, or by the dot of an identifier: ``json.dumps`` gives
"json dumps"; a stopword never completes) counts once per document. The words
found in the most documents come first. The cost is bounded whatever the index
size; the candidates are a sample when the previous word is in more documents
than that.

**Single words**, how and why:

* The index holds *analyzed* (stemmed) terms: ``computers`` is ``comput``.
  Showing stems would be ugly, so candidates come from the title field's
  lexicon (Whoosh ``expand_prefix``: cost grows with the matching terms, not
  with the number of documents) and each candidate stem is shown as the
  surface word it stands for, read from the stored titles of a few documents
  that contain it ("computer" for ``comput``).
* The typed prefix may have run past the stem (``computi`` against stem
  ``comput``, ``happy`` against ``happi``), so the lexicon is also probed with
  the prefix's stem, and every shorter prefix is looked up as an exact term;
  only surface words that start with what was typed are offered.
* Rank: documents with the stem in their title (df), shared among its surface
  forms by how often each was seen.
* Everything runs in the index's reader pool (``LocalIndex.run_read``), never
  on the event loop, against the latest commit: new titles show up right after
  their commit and removed documents drop out at once (a stem without live
  documents yields no surface form). Surface forms per stem and completions per
  prefix are memoized until the next commit (bounded). One request reads at most MAX_SCANNED_TERMS
  lexicon entries and the titles of SAMPLE_DOCS documents for each of at most
  MAX_SAMPLED_STEMS stems, whatever the size of the index.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import TYPE_CHECKING

from yasearch.analysis import TOKEN_RE, analyze, term_of
from yasearch.index.samples import text_samples, title_samples, title_terms

if TYPE_CHECKING:
    from yasearch.index import LocalIndex, ReadView

#: Longest query accepted by the suggest API.
MAX_SUGGEST_QUERY_CHARS = 256
#: Most completions one request may ask for.
MAX_SUGGEST_LIMIT = 20
#: Lexicon terms looked at per request (bounds the cost of one-letter prefixes:
#: past it only the alphabetically first matching terms are ranked).
MAX_SCANNED_TERMS = 2000
#: Candidate stems whose surface words are looked up per request.
MAX_SAMPLED_STEMS = 100
#: Documents whose titles are read to find a stem's surface words.
SAMPLE_DOCS = 6
#: Documents whose stored text is read for the words following the previous word,
#: body postings looked at to pick them, and body characters read of each.
NEXT_WORD_DOCS = 24
NEXT_WORD_SCAN = 512
NEXT_WORD_CHARS = 20_000
FORMS_CACHE_MAX = 20_000
RESULTS_CACHE_MAX = 5_000

#: The word being typed: what follows the last space, after any operator characters.
_LAST_WORD = re.compile(r'^(?P<head>.*?)(?P<lead>[-+"(]*)(?P<word>[^\s"()]+)$', re.S)
_WORD = re.compile(r"^\w+$")


def split_last_word(q: str) -> tuple[str, str] | None:
    """``(text before the word, the word's prefix)``; None when there is nothing to complete."""
    if not q or q[-1].isspace():
        return None
    m = _LAST_WORD.match(q)
    if m is None:
        return None
    word = m.group("word")
    if not _WORD.match(word):  # site:..., URLs, punctuation: nothing sensible to complete
        return None
    return m.group("head") + m.group("lead"), word


class Suggester:
    """Completions for one index; keeps a small memo of stem -> surface words."""

    def __init__(self, index: "LocalIndex") -> None:
        self.index = index
        self._forms: dict[str, tuple[int, Counter[str]]] = {}  # stem -> (index generation, forms)
        #: (prefix, limit) -> (index generation, completions): the same few
        #: prefixes are typed again and again
        self._results: dict[tuple[str, str, int], tuple[int, list[str]]] = {}
        self._lock = threading.Lock()

    async def complete(self, q: str, limit: int = 10) -> list[str]:
        """Whole-query completions of ``q`` (its last word completed), best first."""
        split = split_last_word(q)
        if split is None or limit <= 0:
            return []
        head, word = split
        prefix = word.lower()
        before = TOKEN_RE.findall(head) if head[-1:].isspace() else []
        context = term_of(before[-1]) if before else ""
        words = await self.index.run_read(lambda view: self._complete(view, context, prefix, limit))
        return [head + w for w in words]

    # ---- reader thread

    def _complete(self, view: "ReadView", context: str, prefix: str, limit: int) -> list[str]:
        key = (context, prefix, limit)
        with self._lock:
            hit = self._results.get(key)
        if hit is not None and hit[0] == view.generation:
            return hit[1]
        words = (self._next_words(view, context, prefix, limit) if context else []) or self._rank(view, prefix, limit)
        with self._lock:
            if len(self._results) >= RESULTS_CACHE_MAX:
                self._results.clear()
            self._results[key] = (view.generation, words)
        return words

    def _next_words(self, view: "ReadView", context: str, prefix: str, limit: int) -> list[str]:
        """Words starting with ``prefix`` that follow a word whose term is ``context``
        in the stored text of a few live documents with ``context``, by the number
        of those documents where they do."""
        found: Counter[str] = Counter()
        for texts in text_samples(view, context, NEXT_WORD_DOCS, NEXT_WORD_SCAN, NEXT_WORD_CHARS):
            found.update({w for text in texts for w in following_words(text, context, prefix)})
        ranked = sorted(found.items(), key=lambda wn: (-wn[1], wn[0]))
        return [w for w, _n in ranked[:limit]]

    def _rank(self, view: "ReadView", prefix: str, limit: int) -> list[str]:
        stems = analyze(prefix)
        probes = [prefix]
        if stems and stems[0] != prefix:
            probes.append(stems[0])  # "happy" is indexed as "happi"
        # the typed word may have run past its stem ("computi" -> "comput")
        shorter = [prefix[:i] for i in range(len(prefix) - 1, 1, -1)]
        candidates = title_terms(view, probes, MAX_SCANNED_TERMS, exact=shorter)
        ranked = sorted(candidates.items(), key=lambda kv: (-kv[1], kv[0]))
        scores: dict[str, float] = {}
        for sampled, (stem, df) in enumerate(ranked):
            if sampled >= MAX_SAMPLED_STEMS:
                break
            if len(scores) >= limit and df <= sorted(scores.values(), reverse=True)[limit - 1]:
                break  # no later stem can beat what is already in
            forms = self._surface_forms(view, stem)
            total = sum(forms.values())
            for form, n in forms.items():
                if form.startswith(prefix):
                    scores[form] = scores.get(form, 0.0) + df * n / total
        best = sorted(scores.items(), key=lambda kv: (-kv[1], len(kv[0]), kv[0]))
        return [form for form, _ in best[:limit]]

    def _surface_forms(self, view: "ReadView", stem: str) -> Counter[str]:
        """Surface words of ``stem`` in the titles of a few live documents (memoized per commit)."""
        with self._lock:
            hit = self._forms.get(stem)
        if hit is not None and hit[0] == view.generation:
            return hit[1]
        forms: Counter[str] = Counter()
        for title in title_samples(view, stem, SAMPLE_DOCS):
            for tok in TOKEN_RE.findall(title):
                if term_of(tok) == stem:
                    forms[tok.lower()] += 1
        with self._lock:
            if len(self._forms) >= FORMS_CACHE_MAX:
                self._forms.clear()
            self._forms[stem] = (view.generation, forms)
        return forms


def following_words(text: str, context: str, prefix: str) -> set[str]:
    """Lowercased words of ``text`` starting with ``prefix`` that directly follow a
    word whose analyzed term is ``context`` (after whitespace, or after the dot of
    a dotted identifier); stopwords are not words here.

    The text is searched for the start of ``context`` (a word's Porter stem
    differs from it only in the last two letters), a literal that Python's
    regex engine finds fast, and each hit's word is confirmed by its term."""
    low = text.lower()
    start = re.escape(context[: max(1, len(context) - 2)])
    out: set[str] = set()
    for m in re.finditer(start + r"\w*(?=(?:\s+|\.)(" + re.escape(prefix) + r"\w*))", low):
        at = m.start()
        if at and (low[at - 1].isalnum() or low[at - 1] == "_"):
            continue  # inside a longer word
        if term_of(m.group()) == context:
            word = m.group(1)
            if term_of(word):
                out.add(word)
    return out
