"""Anchor text: what other pages call a page, indexed as a field of that page.

The crawler hands every page with its outlinks and their link texts
(``Page.anchors``); this module keeps them per target in SQLite
(``anchors.db``) and gives each indexed document the link texts pointing at it
(``Document.anchor``), which the index and the published postings carry as the
``IN_ANCHOR`` field flag (:mod:`yasearch.ranking`).

Bounded and hard to stuff:

* one row per (target, source page): a page linking a URL a hundred times
  counts once, and a page's links to itself not at all;
* at most :data:`MAX_SOURCES_PER_TARGET` source pages per target (the first
  ones seen) and :data:`MAX_LINKS_PER_SOURCE` targets per source page;
* the anchor text of a target is its :data:`MAX_TEXTS` most frequent distinct
  link texts (case folded), each at most ``MAX_ANCHOR_CHARS`` (the crawler's cut).

The same rows count each page's **inlinks** (distinct source pages, so at most
MAX_SOURCES_PER_TARGET), the static prior of the link graph
(``Document.inlinks``, ranked by :func:`yasearch.ranking.prior_class`).

Anchor text usually arrives after its target was indexed: the crawler hands a
page to the sink *before* following its links, so the first link to a page is
known when the page is indexed, but pages crawled later link to it too. Each
indexed page's anchor text is remembered (``indexed``); when a new or changed
link makes a page's anchor text (or its prior class) differ from what it was
indexed with, the page is marked ``dirty``, and :meth:`Anchors.reindex` indexes the dirty pages again
in batches (from the pending document or the publish outbox, which keeps every
indexed document), so their postings are republished with the new terms.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from yasearch.analysis import doc_id
from yasearch.crawler.sqlite import Health, SqliteThread
from yasearch.crawler.types import Page
from yasearch.ranking import DEFAULT_WEIGHTS, prior_class
from yasearch.records import Document

log = logging.getLogger(__name__)

#: Source pages remembered per target (the first seen).
MAX_SOURCES_PER_TARGET = 50
#: Outlinks of one page that count.
MAX_LINKS_PER_SOURCE = 1000
#: Distinct link texts of one target in its anchor field.
MAX_TEXTS = 16
#: Dirty pages indexed again per round.
REINDEX_BATCH = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS anchors (
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (target, source)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS anchors_source ON anchors(source);
CREATE TABLE IF NOT EXISTS indexed (
    doc TEXT PRIMARY KEY,
    anchor TEXT NOT NULL,
    prior INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dirty (doc TEXT PRIMARY KEY) WITHOUT ROWID;
"""


def anchor_text(c: sqlite3.Connection, targets: list[str]) -> str:
    """The anchor field of a page known by these doc ids: its most frequent distinct link texts."""
    marks = ",".join("?" * len(targets))
    rows = c.execute(
        f"SELECT min(text), count(*) AS n FROM anchors WHERE target IN ({marks}) AND text != '' "
        "GROUP BY lower(text) ORDER BY n DESC, min(text) LIMIT ?",
        (*targets, MAX_TEXTS),
    ).fetchall()
    return "\n".join(t for t, _n in rows)


def inlinks(c: sqlite3.Connection, targets: list[str]) -> int:
    """Distinct source pages linking a page known by these doc ids (at most
    MAX_SOURCES_PER_TARGET per id)."""
    marks = ",".join("?" * len(targets))
    return int(c.execute(f"SELECT count(DISTINCT source) FROM anchors WHERE target IN ({marks})", targets).fetchone()[0])


def replace_links(c: sqlite3.Connection, source: str, links: Mapping[str, str]) -> None:
    """``source``'s outlinks become ``links`` (target doc id -> text); the indexed
    targets whose anchor text changed by it are marked dirty."""
    old = dict(c.execute("SELECT target, text FROM anchors WHERE source=?", (source,)).fetchall())
    changed = [t for t in old if t not in links]
    c.executemany("DELETE FROM anchors WHERE target=? AND source=?", [(t, source) for t in changed])
    for target, text in links.items():
        if target == source:
            continue
        if target in old:
            if old[target] != text:
                c.execute("UPDATE anchors SET text=? WHERE target=? AND source=?", (text, target, source))
                changed.append(target)
        elif c.execute("SELECT count(*) FROM anchors WHERE target=?", (target,)).fetchone()[0] < MAX_SOURCES_PER_TARGET:
            c.execute("INSERT INTO anchors(target, source, text) VALUES (?,?,?)", (target, source, text))
            changed.append(target)
    if not changed:
        return
    marks = ",".join("?" * len(changed))
    use_prior = DEFAULT_WEIGHTS.prior > 0  # a class that counts for nothing is not worth indexing a page again
    for target, text, prior in c.execute(f"SELECT doc, anchor, prior FROM indexed WHERE doc IN ({marks})", changed).fetchall():
        if text.lower() != anchor_text(c, [target]).lower() or (use_prior and prior != prior_class(inlinks(c, [target]))):
            c.execute("INSERT OR IGNORE INTO dirty(doc) VALUES (?)", (target,))


def record_page(c: sqlite3.Connection, source: str, names: list[str], links: Mapping[str, str]) -> tuple[str, int]:
    """:meth:`AnchorStore.page` in a transaction of ``c``."""
    replace_links(c, source, links)
    text, n = anchor_text(c, names), inlinks(c, names)
    c.execute("INSERT OR REPLACE INTO indexed(doc, anchor, prior) VALUES (?,?,?)", (source, text, prior_class(n)))
    c.execute("DELETE FROM dirty WHERE doc=?", (source,))
    return text, n


class AnchorStore:
    """``anchors.db``: link texts per target, the anchor text each indexed page has, dirty pages."""

    def __init__(self, path: Path | str, health: Health | None = None) -> None:
        self._sql = SqliteThread(path, _SCHEMA, "anchors", health)
        #: pages waiting for the next transaction (source, names, links, their answer)
        self._queue: list[tuple[str, list[str], dict[str, str], asyncio.Future[tuple[str, int]]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._drainer is not None:
            await self._drainer
        await self._sql.close()

    async def page(self, source: str, names: list[str], links: Mapping[str, str]) -> tuple[str, int]:
        """A page is being indexed: ``source`` is its doc id, ``names`` the doc ids it is
        known by (its URL, the URL requested before a redirect), ``links`` its outlinks
        (doc id -> link text, "" for none). Returns its anchor text and inlinks.

        Pages that arrive while a transaction runs wait for the next one and share
        it (group commit, in arrival order): one trip to the database thread per
        batch instead of one per page, which the crawl's page path paid for in
        waits for the GIL."""
        fut: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
        self._queue.append((source, names, dict(list(links.items())[:MAX_LINKS_PER_SOURCE]), fut))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                results = await self._sql.tx(lambda c: [record_page(c, s, n, ln) for s, n, ln, _f in batch])
            except Exception as e:  # noqa: BLE001 - every page of the batch hears of it
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
            else:
                for (*_, fut), result in zip(batch, results):
                    if not fut.done():
                        fut.set_result(result)

    async def forget(self, doc_ids: list[str]) -> None:
        """Pages left the index: their links stop counting, they are no longer indexed."""

        def do(c: sqlite3.Connection) -> None:
            for d in doc_ids:
                replace_links(c, d, {})
                c.execute("DELETE FROM indexed WHERE doc=?", (d,))
                c.execute("DELETE FROM dirty WHERE doc=?", (d,))

        await self._sql.tx(do)

    async def take_dirty(self, limit: int) -> dict[str, tuple[str, int]]:
        """Up to ``limit`` dirty pages with their anchor text and inlinks now, no longer
        dirty (recorded as indexed with them)."""

        def do(c: sqlite3.Connection) -> dict[str, tuple[str, int]]:
            due = [d for (d,) in c.execute("SELECT doc FROM dirty LIMIT ?", (limit,)).fetchall()]
            out = {d: (anchor_text(c, [d]), inlinks(c, [d])) for d in due}
            c.executemany("UPDATE indexed SET anchor=?, prior=? WHERE doc=?",
                          [(t, prior_class(n), d) for d, (t, n) in out.items()])
            c.executemany("DELETE FROM dirty WHERE doc=?", [(d,) for d in due])
            return out

        return await self._sql.tx(do)

    async def text(self, doc: str) -> str:
        """The current anchor text of ``doc`` (tests, the index browser)."""
        return await self._sql.run(lambda c: anchor_text(c, [doc]))

    async def inlinks(self, doc: str) -> int:
        return await self._sql.run(lambda c: inlinks(c, [doc]))


#: Documents by doc id, from wherever complete copies are kept (the publish outbox).
Loader = Callable[[list[str]], Awaitable[list[Document]]]


class Anchors:
    """Anchor text for the job manager: annotates pages as they are indexed and
    indexes pages again whose anchor text changed since."""

    def __init__(self, path: Path | str, health: Health | None = None) -> None:
        self.store = AnchorStore(path, health)
        #: Complete documents by doc id (wired to the publish outbox by the peer).
        self.load: Loader | None = None

    async def close(self) -> None:
        await self.store.close()

    async def annotate(self, page: Page, doc: Document) -> Document:
        """``doc`` (of ``page``) with its anchor text; ``page``'s links recorded for their targets."""
        names = list(dict.fromkeys([doc.doc_id, doc_id(page.requested_url or page.url)]))
        links = {doc_id(u): page.anchors.get(u, "") for u in page.links}
        try:
            text, n = await self.store.page(doc.doc_id, names, links)
        except Exception as e:  # noqa: BLE001 - a full disk: the page is indexed without anchor text
            log.warning("anchor text of %s not recorded: %s", page.url, e)
            return doc
        return dataclasses.replace(doc, anchor=text, inlinks=n)

    async def forget(self, doc_ids: list[str]) -> None:
        try:
            await self.store.forget(doc_ids)
        except Exception as e:  # noqa: BLE001 - stale anchor rows only cost a little precision
            log.warning("anchor rows of removed pages kept: %s", e)

    async def reindex(
        self, pending: Mapping[str, Document], add: Callable[[Document], Awaitable[None]],
        stopping: Callable[[], bool] = lambda: False,
    ) -> int:
        """Index again, with their new anchor text, the pages whose anchor text changed
        (batched: every dirty page once per call). ``pending``: documents handed to the
        index and not yet committed; ``stopping``: the peer is stopping, leave the rest
        (a page taken but not indexed again keeps its old anchor text until its next
        visit). Returns how many were indexed again."""
        done = 0
        while not stopping():
            due = await self.store.take_dirty(REINDEX_BATCH)
            if not due:
                return done
            docs = {d: pending[d] for d in due if d in pending}
            missing = [d for d in due if d not in docs]
            if missing and self.load is not None:
                docs.update((d.doc_id, d) for d in await self.load(missing))
            for did, (text, n) in due.items():
                if stopping():
                    break
                doc = docs.get(did)
                if doc is not None and (doc.anchor != text or prior_class(doc.inlinks) != prior_class(n)):
                    await add(dataclasses.replace(doc, anchor=text, inlinks=n))
                    done += 1
        return done
