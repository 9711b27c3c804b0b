"""Anchor text: a page is found by what the pages linking to it call it, locally and across peers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh.fields import Schema

from yasearch.analysis import doc_id
from yasearch.anchors import MAX_SOURCES_PER_TARGET, MAX_TEXTS, AnchorStore
from yasearch.index import LocalIndex
from yasearch.index.schema import added_fields, make_schema
from yasearch.query import parse_query
from yasearch.ranking import postings_for_document
from yasearch.records import IN_ANCHOR, PRIOR_SHIFT, Document
from yasearch.search import search_local

from peerutil import eventually


def page(title: str, body: str, links: dict[str, str] | None = None) -> str:
    anchors = "".join(f'<li><a href="{href}">{text}</a></li>' for href, text in (links or {}).items())
    return f"<html><head><title>{title}</title></head><body><p>{body}</p><ul>{anchors}</ul></body></html>"


#: ``/target`` never says "zanzibarine" or "quillwort"; its inlinks do. "quillwort" comes from
#: ``/late``, two links deep: it is crawled after ``/target`` was indexed.
SITE = {
    "/": page("Home", "The start page of a small garden site.",
              {"/target": "zanzibarine ferns", "/middle": "more", "/noisy": "noisy page"}),
    "/target": page("Ferns", "Ferns grow in the shade and need water every day."),
    "/middle": page("Middle", "A page between the start and the late page.", {"/late": "onwards"}),
    "/late": page("Late", "A page found last.", {"/target": "quillwort", "/": "home"}),
    "/noisy": page("Noisy", "This page links to itself.", {"/noisy": "selfpraise"}),
}


async def urls_for(peer, q: str, scope: str = "local") -> list[str]:
    return [h.url for h in (await peer.search(q, scope=scope)).results]


async def test_a_page_is_found_by_words_only_its_inlinks_use(peer, crawl_site) -> None:
    url = await crawl_site(peer, SITE)
    # the first link to /target was known when it was indexed
    assert set(await urls_for(peer, "zanzibarine")) == {url + "/", url + "/target"}  # "/" shows the link text
    # the late link arrived after /target was indexed: it is indexed again, with the new text, in the background
    await peer.settle()
    assert url + "/target" in await urls_for(peer, "quillwort")
    # a page's links to itself are no anchor text of its own
    assert await peer.jobs.anchors.store.text(doc_id(url + "/noisy")) == "noisy page"
    assert await peer.jobs.anchors.store.text(doc_id(url + "/target")) == "quillwort\nzanzibarine ferns"


async def test_anchor_terms_carry_the_anchor_flag_and_add_no_length(peer, crawl_site) -> None:
    url = await crawl_site(peer, SITE)
    await peer.settle()
    target = doc_id(url + "/target")
    postings = await peer.index.postings(["quillwort", "fern"], restrict={target})
    (q,) = postings["quillwort"]
    assert q.flags == IN_ANCHOR | 1 << PRIOR_SHIFT and q.tf == 0  # linked from 2 pages: prior class 1
    (f,) = postings["fern"]
    assert f.flags & IN_ANCHOR and f.tf >= 1


async def test_index_postings_equal_the_published_ones_with_anchor_text(make_index) -> None:
    index: LocalIndex = await make_index(commit_interval=0.05)
    d = Document(doc_id("https://a.org/x"), "https://a.org/x", "a.org", title="Ferns", body="shade and water",
                 anchor="zanzibarine ferns\nquillwort")
    await index.add(d)
    await index.flush()
    expected = postings_for_document(d)
    assert expected["quillwort"].flags == IN_ANCHOR
    got = await index.postings(list(expected), restrict={d.doc_id})
    assert got == {t: [p] for t, p in expected.items()}
    res = await search_local(index, parse_query("quillwort"))
    assert [h.url for h in res.results] == [d.url]
    # anchor text adds no length: BM25's |d| is the page's own text
    plain = Document(doc_id("https://a.org/z"), "https://a.org/z", "a.org", title="Ferns", body="shade and water")
    assert {p.length for p in expected.values()} == {p.length for p in postings_for_document(plain).values()}


async def test_an_index_written_before_anchor_text_gets_the_field(tmp_path: Path) -> None:
    old = make_schema()
    fields = {name: old[name] for name in old.names() if name not in added_fields()}
    (tmp_path / "ix").mkdir()
    whoosh_index.create_in(str(tmp_path / "ix"), Schema(**fields))
    index = LocalIndex(tmp_path / "ix", commit_interval=0.05)
    await index.open()
    try:
        d = Document(doc_id("https://a.org/y"), "https://a.org/y", "a.org", title="Old", anchor="quillwort")
        await index.add(d)
        await index.flush()
        res = await search_local(index, parse_query("quillwort"))
        assert [h.url for h in res.results] == [d.url]
    finally:
        await index.close()


async def test_the_store_counts_each_source_once_and_is_bounded(tmp_path: Path) -> None:
    store = AnchorStore(tmp_path / "anchors.db")
    try:
        assert await store.page("s1", ["s1"], {"t": "Fern Guide"}) == ("", 0)
        await store.page("s2", ["s2"], {"t": "fern guide"})
        await store.page("s3", ["s3"], {"t": "ferns"})
        # most frequent text first, case folded; a source counts once however often it links
        assert await store.text("t") == "Fern Guide\nferns"
        await store.page("s3", ["s3"], {})  # s3 dropped its link
        assert await store.text("t") == "Fern Guide"
        for i in range(MAX_SOURCES_PER_TARGET + 20):
            await store.page(f"m{i}", [f"m{i}"], {"t": f"name{i}"})
        assert await store.inlinks("t") == MAX_SOURCES_PER_TARGET
        assert len((await store.text("t")).split("\n")) == MAX_TEXTS
    finally:
        await store.close()


async def test_pages_that_arrive_together_share_one_transaction_in_order(tmp_path: Path) -> None:
    store = AnchorStore(tmp_path / "anchors.db")
    begins: list[str] = []
    await store._sql.run(lambda c: c.set_trace_callback(lambda sql: begins.append(sql) if sql.startswith("BEGIN") else None))
    try:
        sources = [store.page(f"s{i}", [f"s{i}"], {"t": f"name{i}"}) for i in range(30)]
        got = await asyncio.gather(*sources, store.page("t", ["t"], {}))
        assert len(begins) <= 2  # one trip to the database thread for the lot, not 31
        assert got[-1] == ("\n".join(f"name{i}" for i in sorted(range(30), key=lambda i: f"name{i}")[:MAX_TEXTS]), 30)
    finally:
        await store.close()


async def test_indexed_pages_whose_anchor_text_changes_become_dirty_once(tmp_path: Path, prior_on) -> None:
    store = AnchorStore(tmp_path / "anchors.db")
    try:
        assert await store.page("t", ["t"], {}) == ("", 0)  # t is indexed, without anchor text
        await store.page("s1", ["s1"], {"t": "quillwort"})
        await store.page("s2", ["s2"], {"t": "quillwort"})
        await store.page("s3", ["s3"], {"u": "never indexed"})
        assert await store.take_dirty(10) == {"t": ("quillwort", 2)}
        assert await store.take_dirty(10) == {}
        await store.page("s4", ["s4"], {"t": "QUILLWORT"})  # same text, case folded, same prior class: not dirty
        assert await store.take_dirty(10) == {}
        await store.page("s5", ["s5"], {"t": ""})  # 4 inlinks: the prior class rises (and the prior is on)
        assert await store.take_dirty(10) == {"t": ("QUILLWORT", 4)}  # of equal texts the first in code order
        await store.forget(["s1", "s2", "s4", "s5"])
        assert await store.take_dirty(10) == {"t": ("", 0)}
    finally:
        await store.close()


async def test_anchor_text_is_published_and_found_across_peers(make_network, crawl_site) -> None:
    crawler, other = await make_network(["crawler", "other"])
    url = await crawl_site(crawler, SITE)
    await crawler.settle()

    async def found() -> bool:
        return url + "/target" in await urls_for(other, "quillwort", scope="global")

    await eventually(found, timeout=30)
    assert other.index.doc_count() == 0  # found through the published postings, not a local copy


async def test_with_the_prior_off_more_inlinks_alone_index_nothing_again(tmp_path: Path) -> None:
    store = AnchorStore(tmp_path / "anchors.db")
    try:
        await store.page("t", ["t"], {})
        for i in range(8):  # the prior class would rise three times
            await store.page(f"s{i}", [f"s{i}"], {"t": ""})
        assert await store.take_dirty(10) == {}
        assert await store.inlinks("t") == 8
    finally:
        await store.close()
