"""The static prior from the link graph: a page many pages link ranks above an equal page
few link, by the same amount locally and across peers (the class travels in the postings).
Off by default (yasearch.ranking.FieldWeights.prior); the ``prior_on`` fixture turns it on."""

from __future__ import annotations

from peerutil import eventually
from yasearch.analysis import doc_id
from yasearch.anchors import MAX_SOURCES_PER_TARGET
from yasearch.query import parse_query
from yasearch.ranking import DEFAULT_WEIGHTS, CollectionStats, bm25_scores, postings_for_document, prior_class, rank
from yasearch.records import PRIOR_MASK, PRIOR_SHIFT, Document
from yasearch.search import search_local


def doc(path: str, inlinks: int) -> Document:
    url = "https://ferns.org" + path
    return Document(doc_id(url), url, "ferns.org", title="Ferns", body="Ferns grow in the shade and need water.",
                    inlinks=inlinks)


def test_the_prior_is_off_by_default_but_its_class_is_published() -> None:
    assert DEFAULT_WEIGHTS.prior == 0 and DEFAULT_WEIGHTS.boost(5 << PRIOR_SHIFT) == 0
    assert {p.flags & PRIOR_MASK for p in postings_for_document(doc("/a", 8)).values()} == {3 << PRIOR_SHIFT}


def test_prior_class_is_a_bounded_log_of_inlinks(prior_on) -> None:
    assert [prior_class(n) for n in (0, 1, 2, 3, 4, 7, 8, 50, 10**6)] == [0, 0, 1, 1, 2, 2, 3, 5, 7]
    assert DEFAULT_WEIGHTS.boost(7 << PRIOR_SHIFT) == 7 * DEFAULT_WEIGHTS.prior
    # a peer counts at most MAX_SOURCES_PER_TARGET inlinks: the prior stays below a title match
    assert 0 < DEFAULT_WEIGHTS.boost(prior_class(MAX_SOURCES_PER_TARGET) << PRIOR_SHIFT) < DEFAULT_WEIGHTS.title


def test_every_posting_of_a_document_carries_its_prior_class() -> None:
    postings = postings_for_document(doc("/a", 8))
    assert {p.flags & PRIOR_MASK for p in postings.values()} == {3 << PRIOR_SHIFT}
    assert {p.flags & PRIOR_MASK for p in postings_for_document(doc("/b", 1)).values()} == {0}


async def test_local_ranking_uses_the_prior_as_the_published_postings_do(make_index, prior_on) -> None:
    index = await make_index(commit_interval=0.05)
    popular, plain = doc("/popular", 20), doc("/plain", 0)
    for d in (plain, popular):
        await index.add(d)
    await index.flush()
    # the index's postings are the published ones, prior bits included
    terms = ["fern", "grow", "shade"]
    want = {t: sorted([postings_for_document(popular)[t], postings_for_document(plain)[t]], key=lambda p: p.doc_id)
            for t in terms}
    assert await index.postings(terms) == want
    stats = await index.collection_stats(terms)
    for q in ("fern grow shade", '"ferns grow" shade'):  # impact postings, and the candidate path of phrases
        expected = rank(bm25_scores(want, CollectionStats(stats.n_docs, stats.avg_length, stats.df)))
        res = await search_local(index, parse_query(q))
        assert [(h.doc_id, round(h.score, 9)) for h in res.results] == [(d, round(s, 9)) for d, s in expected], q
        assert res.results[0].url == popular.url and res.results[0].score > res.results[1].score


SITE = {
    "/": '<html><body><p>Index of fern pages <a href="/a">a</a> <a href="/b">b</a> <a href="/c">c</a> '
         '<a href="/plain">plain</a></p></body></html>',
    "/a": '<html><body><p>Page a about gardens.</p><a href="/popular">more</a></body></html>',
    "/b": '<html><body><p>Page b about gardens.</p><a href="/popular">more</a></body></html>',
    "/c": '<html><body><p>Page c about gardens.</p><a href="/popular">more</a></body></html>',
    "/popular": "<html><head><title>Bracken</title></head><body><p>Bracken grows in shade.</p></body></html>",
    "/plain": "<html><head><title>Bracken</title></head><body><p>Bracken grows in shade!</p></body></html>",
}


async def test_the_prior_ranks_alike_on_one_peer_and_across_peers(make_network, crawl_site, prior_on) -> None:
    # the writer thread: a writer process would not see prior_on's change of this process
    crawler, other = await make_network(["crawler", "other"], index_writer_process=False)
    url = await crawl_site(crawler, SITE)
    await crawler.settle()
    local = [(h.url, round(h.score, 6)) for h in (await crawler.search("bracken", scope="local")).results]
    assert [u for u, _s in local] == [url + "/popular", url + "/plain"]  # 3 inlinks against 1
    assert local[0][1] > local[1][1]

    async def same() -> bool:
        remote = [(h.url, round(h.score, 6)) for h in (await other.search("bracken", scope="global")).results]
        return remote == local

    await eventually(same, timeout=30)
