"""A term's postings in the exact order of their BM25 contribution (distributed top-k).

The stored ``impact`` orders postings with a fixed average length
(:data:`yasearch.shard.schema.IMPACT_AVG_LENGTH`); the asker scores with the
network's real average, so for an exact top-k (:mod:`yasearch.disttopk`) the
holder orders by the tf-part of :func:`yasearch.ranking.contribution` at the
asker's average: the same order as the contribution itself, since idf is the
same for every posting of a term. Computed in SQL over the term's rows (one
range of the ``postings`` table, schema 3: see :mod:`yasearch.shard.schema`), so a
frequent term is sorted in C, and only the batch asked for leaves.
"""

from __future__ import annotations

import sqlite3

from yasearch.ranking import B, DEFAULT_WEIGHTS, K1
from yasearch.records import IN_ANCHOR, IN_DESCRIPTION, IN_HEADINGS, IN_TITLE, IN_URL, PRIOR_MASK, PRIOR_SHIFT, Posting
from yasearch.shard.schema import StoreBase

_W = DEFAULT_WEIGHTS
#: tf + field boosts, as FieldWeights.boost adds them (a comparison is 0 or 1 in SQLite).
_WTF = (
    f"(tf + ((flags & {IN_TITLE}) != 0) * {_W.title!r} + ((flags & {IN_HEADINGS}) != 0) * {_W.headings!r}"
    f" + ((flags & {IN_URL}) != 0) * {_W.url!r} + ((flags & {IN_DESCRIPTION}) != 0) * {_W.description!r}"
    f" + ((flags & {IN_ANCHOR}) != 0) * {_W.anchor!r} + ((flags & {PRIOR_MASK}) >> {PRIOR_SHIFT}) * {_W.prior!r})"
)


def tf_part_sql(avg: float) -> str:
    """The SQL expression of the BM25 tf-part of column ``w`` (tf + boosts) at average
    length ``avg`` (0: no length normalisation). ``w`` = 0 gives 0, as in ranking."""
    norm = f"(1.0 - {B!r} + {B!r} * (length / {float(avg)!r}))" if avg > 0 else "1.0"
    return f"(w * {K1 + 1.0!r}) / (w + {K1!r} * {norm})"


async def scored_top(
    store: StoreBase, term: str, avg: float, m: int, *, skip: int = 0, floor: float = 0.0
) -> tuple[list[Posting], float]:
    """Postings ``skip`` .. ``skip + m`` of ``term`` by descending tf-part (ties:
    doc_id), none below ``floor``; and the tf-part of the best posting not sent (0
    when none is left)."""
    sql = (
        f"WITH p AS (SELECT d.key AS k, x.tf AS tf, x.flags AS flags, x.length AS length, {_WTF} AS w "
        "FROM postings x JOIN docs d ON d.id = x.doc WHERE x.term = (SELECT id FROM terms WHERE term = ?)) "
        f"SELECT k, tf, flags, length, {tf_part_sql(avg)} AS s FROM p ORDER BY s DESC, k LIMIT ? OFFSET ?"
    )

    def q(conn: sqlite3.Connection) -> list[tuple[bytes, int, int, int, float]]:
        return conn.execute(sql, (term, m + 1, skip)).fetchall()

    rows = await store._run(q)
    out: list[Posting] = []
    bound = 0.0
    for d, tf, flags, length, s in rows:
        if len(out) >= m or s < floor:
            bound = float(s)
            break
        out.append(Posting(doc_id=d.hex(), tf=tf, flags=flags, length=length))
    return out, bound
