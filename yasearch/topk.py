"""Top-k evaluation of the local index: the best k matches without ranking them all.

:func:`top_k` returns exactly what ranking every match with
:func:`yasearch.ranking.bm25_scores` and taking the first k gives (same
documents, same scores to the bit, same doc_id tie-break; :func:`exhaustive_top`
is that reference, and tests compare the two on random indexes), but cheaper:

* no :class:`~yasearch.records.Posting` record and no doc_id read per match: the
  (tf, flags) of each term are read per docnum (:meth:`ReadView.term_tf_flags`)
  and scored with :func:`yasearch.ranking.contribution`, the formula
  ``bm25_scores`` uses, summed in the same term order;
* terms are read rarest first, each later term only for the documents still in
  (a short candidate list skips through a long posting list);
* the k best are picked by score with a heap; doc ids are read only for the
  documents that tie with or beat the k-th score, to break ties like ``rank``.

Word queries need no separate candidate pass (AND is the intersection of the
terms' documents); queries with phrases, filters or exclusions pass the
candidate set Whoosh computed.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from typing import Any

import numpy as np

from yasearch.index import ReadView
from yasearch.index.impact import Block, dense_section, term_postings
from yasearch.ranking import B, DEFAULT_WEIGHTS, K1, CollectionStats, FieldWeights, bm25_scores, contribution, idf, rank


#: A pruned multi-word query still counts its matches exactly when its rarest
#: term has at most this many postings (a bounded cost); beyond, it estimates.
EXACT_TOTAL_POSTINGS = 2_000


def top_k(
    view: ReadView, terms: list[str], k: int, candidates: set[int] | None = None,
    weights: FieldWeights = DEFAULT_WEIGHTS,
) -> tuple[int, list[tuple[int, str, float]]]:
    """(number of matches, the best ``k`` as (docnum, doc_id, score)), best first.

    A match holds every term (in any posting field) and, when ``candidates`` is
    given, is one of them.
    """
    terms = list(dict.fromkeys(terms))
    if not terms or (candidates is not None and not candidates):
        return 0, []
    df = {t: view.df(t) for t in terms}
    matches = candidates
    tf_flags: dict[str, dict[int, list[int]]] = {}
    for t in sorted(terms, key=lambda t: df[t]):
        acc = view.term_tf_flags(t, matches)
        matches = set(acc) if matches is None else matches.intersection(acc)
        tf_flags[t] = acc
        if not matches:
            return 0, []
    assert matches is not None
    n_docs, avg = view.n_docs, view.avg_length()
    if avg <= 0:
        avg = 0.0
    boost = [weights.boost(f) for f in range(32)]
    per_term = [(idf(n_docs, df[t]), tf_flags[t]) for t in terms]
    length_of = view.length_of
    scored: list[tuple[float, int]] = []
    for d in matches:
        length = length_of(d)
        s = 0.0
        for term_idf, acc in per_term:
            tf, flags = acc[d]
            wtf = tf + (boost[flags] if flags < 32 else weights.boost(flags))
            if wtf > 0:
                s += contribution(term_idf, wtf, length, avg)
        scored.append((s, d))
    if k <= 0:
        return len(matches), []
    best = heapq.nlargest(k, scored)
    if len(best) == k:  # every document tied with the k-th competes for its place by doc_id
        kth = best[-1][0]
        best = [sd for sd in scored if sd[0] >= kth]
    doc_id = view.doc_id_of
    ranked = sorted(((-s, doc_id(d), d) for s, d in best))[:k]
    return len(matches), [(d, i, -neg) for neg, i, d in ranked]


def exhaustive_top(view: ReadView, query: Any, terms: list[str], k: int) -> list[tuple[str, float]]:
    """The reference: score every match of ``query`` with BM25, best ``k`` (doc_id, score)."""
    docnums = view.docnums(query)
    if not docnums or not terms:
        return []
    stats = CollectionStats(n_docs=view.n_docs, avg_length=view.avg_length(),
                            df={t: view.df(t) for t in terms})
    return rank(bm25_scores(view.postings(terms, docnums), stats))[:k]


def top_k_blocks(view: ReadView, terms: list[str], k: int) -> tuple[int, bool, list[tuple[int, str, float]]]:
    """Like :func:`top_k` for a word query, over the impact postings with block-max pruning.

    Returns (number of matches, whether that number is an estimate, the best ``k``).
    A segment where every term has a dense section (a byte per document: the term
    is in a quarter of them or more, :mod:`yasearch.index.impact`) is scored whole
    with numpy (:func:`_dense_segment`): near-tied scores of common words leave
    block bounds nothing to prune there. In the other segments the rarest term's
    blocks drive: each gets an upper bound (each term's best score from its
    blocks' Pareto-best (wtf, length) pairs, :meth:`Block.best`) and blocks are
    visited best bound first; once a bound is below the k-th score found, no
    remaining block can place a document in the top k and the search stops. In a
    visited block, documents that cannot reach the k-th score are dropped before
    the other terms' blocks are read (:func:`_survivors`), and a term with a dense
    section is looked up per document. A multi-term query then counts the matches
    of the blocks it skipped or did not read whole by ids alone while its rarest
    term has at most :data:`EXACT_TOTAL_POSTINGS` postings in those segments, and
    estimates them from the block counts beyond that (:func:`_expected_matches`).
    """
    terms = list(dict.fromkeys(terms))
    segments = []
    df = dict.fromkeys(terms, 0)
    for leaf, offset in view.leaves:
        index = view.block_index(leaf)
        dense = [dense_section(index, t) for t in terms]
        if all(d is not None for d in dense):  # no block needed: counts from the dense sections
            deleted = leaf.deleted_docs_set or None  # as the matchers do
            for t, section in zip(terms, dense):
                df[t] += _dense_count(section, deleted)
            segments.append((leaf, offset, None, dense, deleted))
            continue
        minlen = view.min_length(leaf)  # bounds the blocks the block index does not cover
        got = {t: term_postings(leaf, offset, t, index, minlen) for t in terms}
        blocks = {t: bl for t, (bl, _dense) in got.items()}
        for t, bl in blocks.items():
            df[t] += _live_count(bl)
        if all(blocks.values()):
            segments.append((leaf, offset, blocks, [got[t][1] for t in terms], None))
    if not terms or not all(df.values()):
        return 0, False, []
    n_docs, avg = view.n_docs, max(0.0, view.avg_length())
    idfs = [idf(n_docs, df[t]) for t in terms]
    heap: list[float] = []  # the k best scores so far (min-heap)
    kept: list[tuple[float, int]] = []
    matches = visited = driver_total = 0
    skipped: list[Any] = []  # driver blocks not visited, with their partners (blocks, dense sections)
    unchecked: list[Any] = []  # visited, but not every partner block read
    for leaf, offset, blocks, dense, deleted in segments:
        lengths = view.segment_lengths(leaf)
        if blocks is None:  # every term is in many documents: score all at once
            matches += _dense_segment(dense, deleted, lengths, offset, idfs, avg, k, heap, kept)
            continue
        lists = [blocks[t] for t in terms]
        r = min(range(len(terms)), key=lambda i: sum(b.count for b in lists[i]))
        driver_total += sum(b.count for b in lists[r])
        bounded = _bounded_blocks(lists, r, idfs, avg)
        for n, (bound, own, block, others) in enumerate(bounded):
            if bound < 0:  # another term has no posting in this block's range
                continue
            if len(heap) >= k and bound * (1.0 + 1e-9) < heap[0]:
                skipped += [(b, o, dense, offset) for bd, _own, b, o in bounded[n:] if bd >= 0]
                break
            visited += block.count
            pairs = block.load()
            if len(heap) >= k and avg > 0:
                docs, per_term, counted = _survivors(pairs, others, r, idfs, avg, lengths, offset, heap[0],
                                                     bound - own, block.min_len, dense)
            else:
                docs, per_term = _intersection(pairs, others, r, dense, offset)
                counted = len(docs)
            if counted is not None:
                matches += counted
            else:  # counted at the end (exactly or estimated)
                unchecked.append((block, others, dense, offset))
            for d in docs:
                length = lengths[d - offset]
                s = 0.0
                for i, term_idf in enumerate(idfs):
                    s += contribution(term_idf, pairs[d] if i == r else per_term[i][d], length, avg)
                if len(heap) < k:
                    heapq.heappush(heap, s)
                elif s > heap[0]:
                    heapq.heapreplace(heap, s)
                else:
                    if s < heap[0]:
                        continue
                kept.append((s, d))
    if len(terms) == 1:
        total, estimated = df[terms[0]], False
    elif (skipped or unchecked) and driver_total <= EXACT_TOTAL_POSTINGS:
        total, estimated = matches + _count_matches(skipped + unchecked), False
    elif skipped or unchecked:
        total, estimated = matches + round(sum(_expected_matches(b, o) for b, o, _d, _o in skipped + unchecked)), True
    else:
        total, estimated = matches, False
    if k <= 0 or not heap:
        return total, estimated, []
    kth = heap[0] if len(heap) >= k else float("-inf")
    doc_id = view.doc_id_of
    ranked = sorted((-s, doc_id(d), d) for s, d in kept if s >= kth)[:k]
    return total, estimated, [(d, i, -neg) for neg, i, d in ranked]


def _dense_segment(dense: list[bytes], deleted: Any, lengths: Any, offset: int, idfs: list[float], avg: float,
                   k: int, heap: list[float], kept: list[tuple[float, int]]) -> int:
    """Every match of a segment where each term has a dense section (one byte per
    document, :func:`yasearch.index.impact.dense_weights`), scored at once with numpy:
    the documents that may enter the top ``k`` are pushed on ``heap``/``kept``, scored
    again one by one with :func:`contribution` (the scores kept are that function's,
    to the bit). Returns the number of matches (exact)."""
    arrays = [np.frombuffer(b, dtype=np.uint8) for b in dense]
    mask = arrays[0] != 0
    for a in arrays[1:]:
        mask &= a != 0
    if deleted:
        mask[np.fromiter(deleted, dtype=np.int64, count=len(deleted))] = False
    ids = np.flatnonzero(mask)
    count = len(ids)
    if not count or k <= 0:
        return count
    norm: Any = 1.0
    if avg > 0:
        norm = 1.0 - B + B * (np.frombuffer(lengths, dtype=np.uint64)[ids] / avg)
    scores = np.zeros(count)
    for a, term_idf in zip(arrays, idfs):
        wtf = a[ids] * 0.5
        scores += term_idf * (wtf * (K1 + 1.0)) / (wtf + K1 * norm)
    floor = float(np.partition(scores, count - k)[count - k]) if count > k else float("-inf")
    if len(heap) >= k:
        floor = max(floor, heap[0])
    floor -= 1e-9 * abs(floor) + 1e-12  # numpy's sums may round apart from contribution's
    for d in ids[scores >= floor].tolist():
        length = lengths[d]
        s = 0.0
        for b, term_idf in zip(dense, idfs):
            s += contribution(term_idf, b[d] * 0.5, length, avg)
        if len(heap) < k:
            heapq.heappush(heap, s)
        elif s > heap[0]:
            heapq.heapreplace(heap, s)
        elif s < heap[0]:
            continue
        kept.append((s, d + offset))
    return count


def _from_dense(docs: Any, dense: bytes, offset: int) -> dict[int, float]:
    """docnum -> wtf of the ``docs`` a term's dense section holds."""
    return {d: v * 0.5 for d in docs if (v := dense[d - offset])}


def _dense_count(section: bytes, deleted: Any) -> int:
    """Live documents holding a term, from its dense section."""
    n = len(section) - section.count(0)
    return n - sum(1 for d in deleted if section[d]) if deleted else n


def _intersection(pairs: dict[int, float], others: list[list[Block]], r: int, dense: list[Any],
                  offset: int) -> tuple[Any, list[Any]]:
    """The driver block's documents that every other term holds, with each term's
    docnum -> wtf (every partner block read whole, or looked up in its dense section)."""
    docs = set(pairs)
    per_term: list[Any] = []
    for i, partners in enumerate(others):
        merged: dict[int, float] = {}
        if i != r:
            if dense[i] is not None:
                merged = _from_dense(docs, dense[i], offset)
            else:
                for b in partners:
                    merged.update(b.load())
            docs.intersection_update(merged)
        per_term.append(merged)
    return docs, per_term


def _survivors(pairs: dict[int, float], others: list[list[Block]], r: int, idfs: list[float], avg: float,
               lengths: Any, offset: int, kth: float, rest: float, shortest: int,
               dense: list[Any]) -> tuple[Any, list[Any], int | None]:
    """The driver block's matches that may still reach the ``kth`` score, with each
    term's docnum -> wtf, and the number of the block's matches if every partner block
    was read (None: not known).

    First by the driving term's own contribution (:func:`_long_enough_dropped`, the
    others adding ``rest`` at most); then, per remaining document, by the exact
    contribution of each term with a dense section and the bound of the other terms'
    blocks it falls in. Only the partner blocks holding a remaining document are read."""
    docs = _long_enough_dropped(pairs, pairs, lengths, offset, idfs[r], avg, kth - rest)
    if not docs:
        return docs, [], None
    cut = kth * (1.0 - 1e-9) - 1e-12
    tops = [[_best_score(idfs[i], b.best(), shortest, avg) for b in bl] if i != r and dense[i] is None else []
            for i, bl in enumerate(others)]
    lasts = [[b.last for b in bl] for bl in others]
    needed: list[set[int]] = [set() for _ in others]
    keep = []
    for d in docs:
        length = lengths[d - offset]
        ub = contribution(idfs[r], pairs[d], length, avg)
        places = []
        for i, bl in enumerate(others):
            if i == r:
                continue
            if dense[i] is not None:
                v = dense[i][d - offset]
                if not v:
                    break
                ub += contribution(idfs[i], v * 0.5, length, avg)
                continue
            j = bisect_left(lasts[i], d)
            if j == len(bl):  # beyond the term's last block: not a match
                break
            places.append((i, j))
            ub += tops[i][j]
        else:
            if ub >= cut:
                keep.append(d)
                for i, j in places:
                    needed[i].add(j)
    per_term: list[Any] = []
    whole = True
    for i, bl in enumerate(others):
        merged: dict[int, float] = {}
        if i != r:
            if dense[i] is not None:
                merged = _from_dense(keep, dense[i], offset)
            else:
                whole = whole and len(needed[i]) == len(bl)
                for j in needed[i]:
                    merged.update(bl[j].load())
        per_term.append(merged)
    if whole:  # every partner block was read: count the block's matches exactly
        matched, _ = _intersection(pairs, others, r, dense, offset)
        return matched.intersection(keep), per_term, len(matched)
    return [d for d in keep if all(d in m for i, m in enumerate(per_term) if i != r)], per_term, None


def _long_enough_dropped(docs: Any, pairs: dict[int, float], lengths: Any, offset: int, term_idf: float,
                         avg: float, need: float) -> Any:
    """The documents of ``docs`` whose driving term alone can still score ``need``
    (the k-th score less what the other terms can add at most in this block).

    The term's contribution falls as a document gets longer, so each ``wtf`` has a
    longest length that reaches ``need``; a document longer than that (with a margin
    far above rounding) cannot enter the top k, and is not scored. The rest are
    scored exactly as before.
    """
    need -= 1e-9 * abs(need) + 1e-12
    if need <= 0:
        return docs
    longest: dict[float, float] = {}
    keep = []
    for d in docs:
        w = pairs[d]
        cut = longest.get(w)
        if cut is None:
            # contribution(term_idf, w, L, avg) >= need  <=>  norm(L) <= x
            x = (term_idf * (w * (K1 + 1.0)) / need - w) / K1
            cut = longest[w] = avg * (x - 1.0 + B) / B * (1.0 + 1e-9) + 1e-6
        if lengths[d - offset] <= cut:
            keep.append(d)
    return keep


def _count_matches(skipped: list[Any]) -> int:
    """Documents of the skipped driver blocks that hold every term (ids only, no scores)."""
    n = 0
    for block, others, dense, offset in skipped:
        docs = set(block.load())
        for i, partners in enumerate(others):
            if partners:
                if dense[i] is not None:
                    docs = {d for d in docs if dense[i][d - offset]}
                    continue
                ids: set[int] = set()
                for b in partners:
                    ids.update(b.load())
                docs &= ids
        n += len(docs)
    return n


def _expected_matches(block: Block, others: list[list[Block]]) -> float:
    """An estimate of a driver block's matches from counts alone: its postings times each
    other term's share of the docnums its covering blocks span."""
    n = float(block.count)
    for partners in others:
        if partners:
            span = max(1, partners[-1].last - partners[0].first + 1)
            n *= min(1.0, sum(b.count for b in partners) / span)
    return n


def _live_count(blocks: list[Block]) -> int:
    """Live postings of a term in a segment: block counts minus deleted documents'."""
    n = 0
    for b in blocks:
        if b._deleted and any(b.first - b._offset <= d <= b.last - b._offset for d in b._deleted):
            n += len(b.load())
        else:
            n += b.count
    return n


def _bounded_blocks(
    lists: list[list[Block]], r: int, idfs: list[float], avg: float
) -> list[tuple[float, float, Block, list[list[Block]]]]:
    """The driver's blocks with their score bound (-1: cannot match), the driving term's
    part of it and, per term, the blocks covering their docnum range; best bound first.

    Each term's part is the best score of its block's (wtf, length) pairs
    (:meth:`Block.best`: every posting has a wtf no larger and a length no shorter
    than one of them); a document of the driver block is no shorter than the block's
    shortest, so the other terms' pairs are scored at the longer of the two."""
    out = []
    starts = [0] * len(lists)
    for block in lists[r]:
        shortest = block.min_len
        own = bound = _best_score(idfs[r], block.best(), shortest, avg)
        others: list[list[Block]] = [[] for _ in lists]
        for i, bl in enumerate(lists):
            if i == r:
                continue
            j = starts[i]
            while j < len(bl) and bl[j].last < block.first:
                j += 1
            starts[i] = j
            while j < len(bl) and bl[j].first <= block.last:
                others[i].append(bl[j])
                j += 1
            if not others[i]:
                bound = -1.0
                break
            bound += max(_best_score(idfs[i], b.best(), shortest, avg) for b in others[i])
        out.append((bound, own, block, others))
    out.sort(key=lambda item: -item[0])
    return out


def _best_score(term_idf: float, pairs: tuple[tuple[float, int], ...], shortest: int, avg: float) -> float:
    """The best contribution of a block whose postings are bounded by ``pairs``, for
    documents no shorter than ``shortest``."""
    return max(contribution(term_idf, w, n if n > shortest else shortest, avg) for w, n in pairs)
