"""A term's postings in the exact order of their BM25 contribution (distributed top-k).

The stored ``impact`` orders postings with a fixed average length
(:data:`yasearch.shard.schema.IMPACT_AVG_LENGTH`); the asker scores with the
network's real average, so for an exact top-k (:mod:`yasearch.disttopk`) the
holder orders by the tf-part of :func:`yasearch.ranking.contribution` at the
asker's average: the same order as the contribution itself, since idf is the
same for every posting of a term. Computed in SQL over the term's rows (one
narrow query on the ``postings`` table: ``term, doc_id, tf, flags, length``),
so a frequent term is sorted in C, and only the batch asked for leaves.
"""

from __future__ import annotations

import sqlite3

from yasearch.ranking import B, DEFAULT_WEIGHTS, K1
from yasearch.records import IN_DESCRIPTION, IN_HEADINGS, IN_TITLE, IN_URL, Posting
from yasearch.shard.schema import StoreBase

_W = DEFAULT_WEIGHTS
#: tf + field boosts, as FieldWeights.boost adds them.
_WTF = (
    f"(tf + (CASE WHEN flags & {IN_TITLE} THEN {_W.title!r} ELSE 0.0 END)"
    f" + (CASE WHEN flags & {IN_HEADINGS} THEN {_W.headings!r} ELSE 0.0 END)"
    f" + (CASE WHEN flags & {IN_URL} THEN {_W.url!r} ELSE 0.0 END)"
    f" + (CASE WHEN flags & {IN_DESCRIPTION} THEN {_W.description!r} ELSE 0.0 END))"
)


def tf_part_sql(avg: float) -> str:
    """The SQL expression of the BM25 tf-part at average length ``avg`` (0: no length normalisation)."""
    norm = f"(1.0 - {B!r} + {B!r} * (length / {float(avg)!r}))" if avg > 0 else "1.0"
    return f"(CASE WHEN {_WTF} <= 0 THEN 0.0 ELSE ({_WTF} * {K1 + 1.0!r}) / ({_WTF} + {K1!r} * {norm}) END)"


async def scored_top(
    store: StoreBase, term: str, avg: float, m: int, *, skip: int = 0, floor: float = 0.0
) -> tuple[list[Posting], float]:
    """Postings ``skip`` .. ``skip + m`` of ``term`` by descending tf-part (ties:
    doc_id), none below ``floor``; and the tf-part of the best posting not sent (0
    when none is left)."""
    expr = tf_part_sql(avg)
    sql = (
        f"SELECT doc_id, tf, flags, length, {expr} AS s FROM postings WHERE term=? "
        "ORDER BY s DESC, doc_id LIMIT ? OFFSET ?"
    )

    def q(conn: sqlite3.Connection) -> list[tuple[str, int, int, int, float]]:
        return conn.execute(sql, (term, m + 1, skip)).fetchall()

    rows = await store._run(q)
    out: list[Posting] = []
    bound = 0.0
    for d, tf, flags, length, s in rows:
        if len(out) >= m or s < floor:
            bound = float(s)
            break
        out.append(Posting(doc_id=d, tf=tf, flags=flags, length=length))
    return out, bound
