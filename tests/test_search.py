"""Search semantics end to end: LocalIndex + search_local, and a real peer over HTTP.

AND of terms, "phrases", -exclusions, -"excluded phrases", site: (with
subdomains and ports), pagination, snippets (highlighted and escaped), BM25
order from yasearch.ranking, stemming, and clear errors for empty queries.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from peerutil import linked_pages
from yasearch import relax
from yasearch.analysis import analyze, doc_id
from yasearch.index import LocalIndex
from yasearch.peer import Peer
from yasearch.query import QueryError, parse_query
from yasearch.ranking import CollectionStats, bm25_scores, rank
from yasearch.records import Document, SearchResponse
from yasearch.search import search_local
from yasearch.snippets import make_snippet


def make_doc(url: str, title: str = "", body: str = "", **kw: str) -> Document:
    host = url.split("/")[2]
    return Document(doc_id=doc_id(url), url=url, host=host, title=title, body=body, **kw)


@pytest.fixture
async def index(make_index) -> LocalIndex:
    return await make_index(commit_interval=0.05, commit_batch=50, fsync=False)


async def fill(ix: LocalIndex, docs: list[Document]) -> None:
    for d in docs:
        await ix.add(d)
    await ix.flush()


async def urls(ix: LocalIndex, q: str, **kw: int) -> list[str]:
    res = await search_local(ix, parse_query(q), **kw)
    assert res.total >= len(res.results)
    return [h.url for h in res.results]


async def url_set(ix: LocalIndex, q: str) -> set[str]:
    res = await search_local(ix, parse_query(q), limit=100)
    assert res.total == len(res.results)
    return {h.url for h in res.results}


# -- boolean semantics ------------------------------------------------------------


async def test_terms_are_anded(index: LocalIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relax, "RELAX_BELOW", 0)  # AND only: relaxing is tested below
    await fill(
        index,
        [
            make_doc("https://a.org/both", "Animals", "the zebra met a giraffe at the river"),
            make_doc("https://a.org/zebra", "Zebra", "a zebra alone in the grass"),
            make_doc("https://a.org/giraffe", "Giraffe", "a giraffe alone in the trees"),
        ],
    )
    assert await url_set(index, "zebra giraffe") == {"https://a.org/both"}
    assert await url_set(index, "zebra") == {"https://a.org/both", "https://a.org/zebra"}
    # A term that no document has makes the AND empty.
    assert await url_set(index, "zebra unicorn") == set()


async def test_too_few_and_matches_relax_to_documents_with_most_words(index: LocalIndex) -> None:
    await fill(
        index,
        [
            make_doc("https://a.org/both", "Animals", "the zebra met a giraffe at the river"),
            make_doc("https://a.org/zebra", "Zebra", "a zebra alone in the grass"),
            make_doc("https://a.org/giraffe", "Giraffe", "a giraffe alone in the trees"),
            make_doc("https://a.org/none", "Nothing", "an empty plain"),
        ],
    )
    res = await search_local(index, parse_query("zebra giraffe river"), limit=10)
    assert res.relaxed
    urls = [h.url for h in res.results]
    assert urls[0] == "https://a.org/both"  # every word
    assert set(urls) == {"https://a.org/both", "https://a.org/zebra", "https://a.org/giraffe"}
    assert res.total == 3
    # a word no page has no longer empties the answer
    res = await search_local(index, parse_query("zebra unicorn"), limit=10)
    assert res.relaxed and {h.url for h in res.results} == {"https://a.org/both", "https://a.org/zebra"}
    # filters and exclusions still apply; phrases stay required
    res = await search_local(index, parse_query("zebra giraffe -river"), limit=10)
    assert {h.url for h in res.results} == {"https://a.org/zebra", "https://a.org/giraffe"}
    res = await search_local(index, parse_query('"zebra alone" giraffe'), limit=10)
    assert not res.relaxed and res.results == []
    # one word: nothing to relax
    res = await search_local(index, parse_query("unicorn"), limit=10)
    assert not res.relaxed and res.total == 0


async def test_a_query_of_stopwords_is_answered_as_a_phrase(index: LocalIndex) -> None:
    await fill(
        index,
        [
            make_doc("https://a.org/hamlet", "Hamlet", "To be, or not to be, that is the question"),
            make_doc("https://a.org/title", "To be or not to be", "a famous line"),
            make_doc("https://a.org/other", "Other", "not to be confused with or to be seen"),
            make_doc("https://a.org/inside", "Inside", "Unto be or not to bed: words that only hold the phrase"),
        ],
    )
    res = await search_local(index, parse_query("to be or not to be"), limit=10)
    assert [h.url for h in res.results] == ["https://a.org/title", "https://a.org/hamlet"]  # whole words only
    assert (await search_local(index, parse_query("the"), limit=10)).total == 2


async def test_an_unknown_word_gets_did_you_mean_from_the_dictionary(index: LocalIndex) -> None:
    await fill(
        index,
        [
            make_doc("https://a.org/asyncio", "asyncio", "Asyncio is a library to write concurrent code"),
            make_doc("https://a.org/asyncore", "asyncore", "asyncore is deprecated; use asyncio"),
            make_doc("https://a.org/json", "json", "json encoder and decoder"),
        ],
    )
    res = await search_local(index, parse_query("asyncoi"), limit=10)
    assert res.total == 0 and res.did_you_mean == "asyncio"
    res = await search_local(index, parse_query("jsno decodr"), limit=10)
    assert res.did_you_mean == "json decoder"
    # known words get no suggestion
    assert (await search_local(index, parse_query("asyncio"), limit=10)).did_you_mean == ""


async def test_an_identifier_no_page_spells_out_is_found_by_its_parts(index: LocalIndex) -> None:
    await fill(
        index,
        [
            make_doc("https://a.org/re", "module re", "sub(pattern, repl, string) replaces matches"),
            make_doc("https://a.org/json", "module json", "print(json.dumps(obj)) and json.loads"),
            make_doc("https://a.org/other", "other", "dumps of old data"),
        ],
    )
    res = await search_local(index, parse_query("json.dumps"), limit=10)
    assert res.results[0].url == "https://a.org/json"  # the one page with the identifier first
    res = await search_local(index, parse_query("dumps"), limit=10)  # the part finds the identifier
    assert {h.url for h in res.results} == {"https://a.org/json", "https://a.org/other"}
    res = await search_local(index, parse_query("re.sub"), limit=10)
    assert res.relaxed and res.results[0].url == "https://a.org/re"


async def test_quoted_phrase_needs_adjacent_words_in_order(index: LocalIndex) -> None:
    await fill(
        index,
        [
            make_doc("https://p.org/exact", "One", "we ate pizza in new york last summer"),
            make_doc("https://p.org/reversed", "Two", "york new is not a city, pizza"),
            make_doc("https://p.org/apart", "Three", "new pizza recipes from york"),
            make_doc("https://p.org/title", "New York pizza guide", "the best slices"),
        ],
    )
    assert await url_set(index, '"new york"') == {"https://p.org/exact", "https://p.org/title"}
    assert await url_set(index, 'pizza "new york"') == {"https://p.org/exact", "https://p.org/title"}
    # Without quotes the words are simply ANDed.
    assert await url_set(index, "new york") == {
        "https://p.org/exact",
        "https://p.org/reversed",
        "https://p.org/apart",
        "https://p.org/title",
    }


async def test_exclusions(index: LocalIndex) -> None:
    await fill(
        index,
        [
            make_doc("https://x.org/snake", "Python snakes", "the python is a large snake"),
            make_doc("https://x.org/lang", "Python language", "python is a programming language"),
            make_doc("https://x.org/monty", "Comedy", "python fans quote monty python daily"),
            make_doc("https://x.org/monty-apart", "More comedy", "python: monty wrote nothing about a python"),
        ],
    )
    assert await url_set(index, "python -snake") == {
        "https://x.org/lang",
        "https://x.org/monty",
        "https://x.org/monty-apart",
    }
    # -"phrase" removes only documents with the words adjacent, not each word.
    assert await url_set(index, 'python -"monty python"') == {
        "https://x.org/snake",
        "https://x.org/lang",
        "https://x.org/monty-apart",
    }
    assert await url_set(index, "python -snake -monty") == {"https://x.org/lang"}


async def test_site_restricts_to_host_and_subdomains(index: LocalIndex) -> None:
    await fill(
        index,
        [
            make_doc("https://example.com/1", "Kiwi", "kiwi fruit"),
            make_doc("https://blog.example.com/2", "Kiwi", "kiwi bird"),
            make_doc("https://a.b.example.com/3", "Kiwi", "kiwi again"),
            make_doc("https://notexample.com/4", "Kiwi", "kiwi elsewhere"),
            make_doc("https://example.org/5", "Kiwi", "kiwi org"),
            make_doc("http://example.com:8080/6", "Kiwi", "kiwi on another port"),
        ],
    )
    example = {
        "https://example.com/1",
        "https://blog.example.com/2",
        "https://a.b.example.com/3",
        "http://example.com:8080/6",
    }
    assert await url_set(index, "kiwi site:example.com") == example
    assert await url_set(index, "kiwi site:Example.COM/some/path") == example
    assert await url_set(index, "kiwi site:blog.example.com") == {"https://blog.example.com/2"}
    assert await url_set(index, "kiwi site:b.example.com") == {"https://a.b.example.com/3"}
    # Two site: operands mean either site.
    assert await url_set(index, "kiwi site:blog.example.com site:example.org") == {
        "https://blog.example.com/2",
        "https://example.org/5",
    }
    assert await url_set(index, "kiwi site:nowhere.net") == set()
    # -site: excludes a host and its subdomains (not documents saying "site").
    assert await url_set(index, "kiwi -site:example.com") == {"https://notexample.com/4", "https://example.org/5"}
    assert await url_set(index, "kiwi site:example.com -site:blog.example.com") == example - {
        "https://blog.example.com/2"
    }
    # A bare site: lists the site, ordered by URL.
    res = await search_local(index, parse_query("site:example.com"), limit=100)
    assert [h.url for h in res.results] == sorted(example)


async def test_site_with_unicode_host_matches_punycode_host(index: LocalIndex) -> None:
    await fill(
        index,
        [
            make_doc("https://xn--bcher-kva.de/1", "Buch", "ein buch"),
            make_doc("https://site.org/2", "About this site", "a buch site"),
        ],
    )
    assert await url_set(index, "buch site:bücher.de") == {"https://xn--bcher-kva.de/1"}
    assert await url_set(index, "buch site:XN--BCHER-KVA.de") == {"https://xn--bcher-kva.de/1"}
    assert await url_set(index, "buch -site:bücher.de") == {"https://site.org/2"}
    with pytest.raises(QueryError):
        parse_query("-site:example.com")


async def test_pagination_gives_disjoint_consecutive_slices(index: LocalIndex) -> None:
    docs = [make_doc(f"https://page.org/{i:02d}", f"Doc {i}", "shared " * (1 + i % 7) + f"filler{i}") for i in range(23)]
    await fill(index, docs)
    full = await search_local(index, parse_query("shared"), limit=100)
    assert full.total == 23 and len(full.results) == 23
    everything = [h.url for h in full.results]
    pages: list[str] = []
    for offset in range(0, 30, 5):
        res = await search_local(index, parse_query("shared"), limit=5, offset=offset)
        assert res.total == 23, "the total does not depend on the page"
        assert res.offset == offset and res.limit == 5
        assert len(res.results) == max(0, min(5, 23 - offset))
        pages.extend(h.url for h in res.results)
    assert pages == everything
    assert len(set(pages)) == 23
    # Scores never increase down the list.
    scores = [h.score for h in full.results]
    assert scores == sorted(scores, reverse=True)


# -- snippets, counts, ranking -----------------------------------------------------


async def test_snippets_highlight_terms_and_escape_html(index: LocalIndex) -> None:
    body = (
        "Intro text. Use <b>bold</b> tags & <script>alert('x')</script> carefully. "
        "Zebras are striped; a zebra is fast."
    )
    await fill(index, [make_doc("https://s.org/1", "<i>Stripes</i>", body)])
    res = await search_local(index, parse_query("zebras"))
    assert res.total == 1 and len(res.results) == 1
    hit = res.results[0]
    # Both forms of the word are highlighted (same analyzed term).
    assert "<mark>Zebras</mark>" in hit.snippet_html
    assert "<mark>zebra</mark>" in hit.snippet_html
    # Page text is escaped: the only tags are our own <mark>s.
    assert "<script>" not in hit.snippet_html and "<b>" not in hit.snippet_html
    assert "&lt;script&gt;" in hit.snippet_html and "&lt;b&gt;bold&lt;/b&gt;" in hit.snippet_html
    assert "&amp;" in hit.snippet_html
    assert set(re.findall(r"</?(\w+)", hit.snippet_html)) == {"mark"}
    # The plain form is the unescaped text without marks.
    assert html.unescape(hit.snippet_html.replace("<mark>", "").replace("</mark>", "")) == hit.snippet
    assert "<script>alert('x')</script>" in hit.snippet
    assert hit.title == "<i>Stripes</i>"  # raw; the web UI escapes titles when rendering


def test_snippet_window_contains_the_hit_after_a_long_unbroken_run() -> None:
    # A long run without spaces (minified text, a long URL) before the hit.
    text = "x/" * 400 + "needle in the text " + "tail " * 50
    plain, marked = make_snippet(text, analyze("needle"), max_chars=120)
    assert "<mark>needle</mark>" in marked
    assert "needle" in plain
    assert len(plain) <= 120 + 2  # the window plus the two ellipses


def test_snippet_falls_back_to_description_then_text() -> None:
    plain, marked = make_snippet("body without the word", analyze("kiwi"), fallback="A kiwi description")
    assert marked == "A <mark>kiwi</mark> description"
    plain, marked = make_snippet("body text here", analyze("kiwi"), fallback="")
    assert plain == "body text here" and "<mark>" not in marked


async def test_response_has_count_and_time(index: LocalIndex) -> None:
    await fill(index, [make_doc(f"https://c.org/{i}", "Count", f"countable item {i}") for i in range(3)])
    res = await search_local(index, parse_query("countable"))
    assert isinstance(res, SearchResponse)
    assert res.total == 3 and res.took_ms >= 0 and res.scope == "local"
    d = res.to_dict()
    assert {"query", "total", "took_ms", "results", "peers"} <= set(d)
    assert {"url", "title", "snippet", "snippet_html", "score", "origin"} <= set(d["results"][0])
    assert d["query"] == "countable"


async def test_title_hit_ranks_above_body_only_hit(index: LocalIndex) -> None:
    body_only = make_doc("https://r.org/body", "Something else", "a page that mentions aardvark once among many words")
    in_title = make_doc("https://r.org/title", "Aardvark", "a page about an animal with a long snout, many words")
    await fill(index, [body_only, in_title] + [make_doc(f"https://r.org/n{i}", "noise", f"noise {i}") for i in range(5)])
    res = await search_local(index, parse_query("aardvark"))
    assert [h.url for h in res.results] == [in_title.url, body_only.url]
    assert res.results[0].score > res.results[1].score > 0


async def test_order_and_scores_come_from_ranking_bm25(index: LocalIndex) -> None:
    docs = [
        make_doc("https://b.org/1", "Owl facts", "owl owl owl night bird"),
        make_doc("https://b.org/2", "Birds", "the owl hunts at night"),
        make_doc("https://b.org/3", "Night", "night owl " + "words " * 40),
        make_doc("https://b.org/4", "Other", "nothing relevant here"),
    ]
    await fill(index, docs)
    terms = parse_query("owl night").terms
    postings = await index.postings(terms)
    stats = await index.collection_stats(terms)
    expected = rank(bm25_scores(postings, stats))
    res = await search_local(index, parse_query("owl night"), limit=10)
    by_url = {d.url: d.doc_id for d in docs}
    assert [(by_url[h.url], h.score) for h in res.results] == [(doc, pytest.approx(s)) for doc, s in expected]
    assert stats == CollectionStats(n_docs=4, avg_length=stats.avg_length, df={"owl": 3, "night": 3})


async def test_stemming_is_consistent(index: LocalIndex) -> None:
    await fill(
        index,
        [
            make_doc("https://st.org/1", "Zebra", "one zebra"),
            make_doc("https://st.org/2", "Herd", "many zebras"),
            make_doc("https://st.org/3", "Run", "they run and it runs"),
        ],
    )
    assert await url_set(index, "zebras") == {"https://st.org/1", "https://st.org/2"}
    assert await url_set(index, "zebra") == {"https://st.org/1", "https://st.org/2"}
    assert await url_set(index, "runs") == {"https://st.org/3"}
    # Whatever the analyzer does with "running", query and index agree on it.
    if analyze("running") == analyze("run"):
        assert await url_set(index, "running") == {"https://st.org/3"}
    else:
        assert await url_set(index, "running") == set()
    assert await url_set(index, "ZEBRA") == {"https://st.org/1", "https://st.org/2"}


@pytest.mark.parametrize(
    ("q", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("!!! ???", "searchable"),
        ("-zebra", "excludes"),
    ],
)
def test_unsearchable_query_raises_clear_error(q: str, words: str) -> None:
    with pytest.raises(QueryError) as err:
        parse_query(q)
    assert words in str(err.value)


# -- over HTTP, through a real peer ---------------------------------------------------


async def test_search_over_http_on_a_crawled_site(peer: Peer, http, static_site) -> None:
    pages = linked_pages(6)
    pages["/p5"] = pages["/p5"].replace("common text", "common text with &lt;script&gt;evil()&lt;/script&gt; stuff")
    base = (await static_site(pages)).url
    job = await peer.start_crawl(parse_crawl({"urls": [base], "depth": 10, "max_pages": 20}))
    await peer.jobs.wait(job.id)
    assert job.state == "done" and job.progress.indexed == 6
    host = base.split("//", 1)[1]  # 127.0.0.1:PORT

    async def get(**params: str) -> tuple[int, dict]:
        async with http.get(peer.url + "/api/v1/search", params=params) as r:
            return r.status, await r.json()

    status, data = await get(q="zebras uniqueword2", scope="local")
    assert status == 200
    # one page has both words; with fewer than 10 such, pages with one follow (relaxed)
    assert data["relaxed"] and data["results"][0]["url"] == base + "/p2"
    assert "<mark>zebras</mark>" in data["results"][0]["snippet_html"]
    assert isinstance(data["took_ms"], (int, float)) and data["peers"]["asked"] == 0

    status, data = await get(q="zebras -uniqueword2 -uniqueword3")
    assert {h["url"] for h in data["results"]} == {base + p for p in ("/", "/p1", "/p4", "/p5")}

    status, data = await get(q='"common text"', limit="4")
    assert data["total"] == 6 and len(data["results"]) == 4
    status, data2 = await get(q='"common text"', limit="4", offset="4")
    assert data2["total"] == 6 and len(data2["results"]) == 2
    assert not {h["url"] for h in data["results"]} & {h["url"] for h in data2["results"]}
    status, data = await get(q='"text common"')
    assert data["total"] == 0

    # site: with the crawled host, which carries a port.
    status, data = await get(q="zebras site:127.0.0.1")
    assert data["total"] == 6
    status, data = await get(q=f"zebras site:{host}")
    assert data["total"] == 6
    status, data = await get(q="zebras site:example.com")
    assert data["total"] == 0

    status, data = await get(q="uniqueword5")
    html_snip = data["results"][0]["snippet_html"]
    assert "<script>" not in html_snip and "&lt;script&gt;" in html_snip

    status, data = await get(q="the of and")  # stopwords only: a phrase, found nowhere here
    assert status == 200 and data["total"] == 0


def parse_crawl(body: dict):
    from yasearch.api import parse_crawl_spec

    return parse_crawl_spec(body)


async def test_aliases_and_near_duplicates_collapse_and_hosts_take_turns(index: LocalIndex) -> None:
    lead = "The io module provides the Python interfaces to stream handling, with classes for every kind of stream."
    await fill(
        index,
        [
            make_doc("https://a.org/", "Index", "zebra index page"),
            make_doc("https://a.org/index.html", "Index", "zebra index page"),
            make_doc("https://a.org/_io", "_io zebra", "zebra " + lead, description=lead),
            make_doc("https://a.org/io", "io", "zebra " + lead + " and much more text about streams", description=lead),
            make_doc("https://a.org/zebra", "Zebra zebra", "zebra zebra zebra"),
            make_doc("https://b.org/zebra", "Other", "a zebra at b " + "among many other words " * 40),
        ],
    )
    res = await search_local(index, parse_query("zebra"), limit=10)
    urls = [h.url for h in res.results]
    assert len([u for u in urls if u in ("https://a.org/", "https://a.org/index.html")]) == 1  # one alias
    # the near duplicates: the more complete copy first, the other behind everything else
    assert urls.index("https://a.org/io") < urls.index("https://a.org/_io") == len(urls) - 1
    # at most 2 of a.org before b.org's result
    assert urls.index("https://b.org/zebra") == 2


def test_url_key_folds_index_files_and_final_slashes() -> None:
    from yasearch.dedupe import url_key

    assert url_key("http://A.org/") == url_key("http://a.org/index.html") == url_key("http://a.org")
    assert url_key("http://a.org/d/") == url_key("http://a.org/d/index.htm") == url_key("http://a.org/d")
    assert url_key("http://a.org/d?x=1") != url_key("http://a.org/d")


async def test_ui_shows_did_you_mean_and_relaxed(peer: Peer, http, crawl_site) -> None:
    await crawl_site(
        peer,
        {
            "/": '<html><head><title>Zebra home</title></head><body><p>zebras graze</p><a href="/g">g</a></body></html>',
            "/g": "<html><head><title>Giraffes</title></head><body><p>giraffes browse</p></body></html>",
        },
        depth=2, max_pages=5,
    )
    async with http.get(peer.url + "/search", params={"q": "zebras giraffes", "scope": "local"}) as r:
        page = await r.text()
    assert 'id="relaxed"' in page
    async with http.get(peer.url + "/search", params={"q": "zebrsa", "scope": "local"}) as r:
        page = await r.text()
    assert 'id="did-you-mean"' in page and "/search?q=zebra&amp;scope=local" in page
    async with http.get(peer.url + "/api/v1/search", params={"q": "zebrsa", "scope": "local"}) as r:
        data = await r.json()
    assert data["did_you_mean"] == "zebra" and data["relaxed"] is False
