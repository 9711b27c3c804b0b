"""Completions fit the words already typed: ``json de`` offers what follows ``json`` in indexed text."""

from __future__ import annotations

from yasearch.suggest import following_words

PAGES = {
    "/": '<html><head><title>Library</title></head><body><p>Modules: <a href="/json">json</a>, '
         '<a href="/decimal">decimal</a>, <a href="/zebra">zebra</a>.</p></body></html>',
    "/json": "<html><head><title>JSON encoder and decoder</title></head><body><h1>json</h1>"
             "<p>Use json.dumps(obj) to write and json.loads(s) to read. The JSON decoder is strict.</p>"
             "<p>The json module dumps quickly.</p></body></html>",
    "/decimal": "<html><head><title>Decimal fixed point arithmetic</title></head>"
                "<body><p>Decimal numbers and the decimal module.</p></body></html>",
    "/zebra": "<html><head><title>Zebra crossing</title></head><body><p>Zebras cross here.</p></body></html>",
}


async def suggest(http, peer, q: str, **params: str) -> list[str]:
    async with http.get(peer.url + "/api/v1/suggest", params={"q": q, **params}) as r:
        assert r.status == 200
        return (await r.json())["suggestions"]


def test_the_next_word_follows_the_previous_word_directly() -> None:
    text = "Use json.dumps(obj) and JSON decoders. The json module: dumps. json and data"
    assert following_words(text, "json", "d") == {"dumps", "decoders"}  # "json.dumps": an identifier's parts pair
    assert following_words(text, "json", "a") == set()  # stopwords never complete; "json and" pairs nothing
    assert following_words("big data data model", "data", "da") == {"data"}  # overlapping pairs are all seen
    assert following_words("a Very LONG address", "veri", "lo") == {"long"}  # the previous word by its term


async def test_completions_follow_the_word_before(peer, http, crawl_site) -> None:
    await crawl_site(peer, PAGES)
    got = await suggest(http, peer, "json de")
    assert got == ["json decoder"]  # not "json decimal": decimal never follows json
    assert set(await suggest(http, peer, "json d")) == {"json decoder", "json dumps"}
    assert set(await suggest(http, peer, "JSON D")) == {"JSON decoder", "JSON dumps"}  # what was typed stays
    assert (await suggest(http, peer, "the json d", limit="1"))[0] in {"the json decoder", "the json dumps"}
    # a word nothing follows with that start: the last word is completed from titles, as before
    assert set(await suggest(http, peer, "zebra dec")) == {"zebra decimal", "zebra decoder"}
    assert set(await suggest(http, peer, "dec")) == {"decimal", "decoder"}


async def test_completions_forget_removed_pages(peer, http, crawl_site) -> None:
    url = await crawl_site(peer, PAGES)
    assert "zebra crossing" in await suggest(http, peer, "zebra cr")
    assert await peer.remove_url(url + "/zebra")
    await peer.index.flush()
    assert await suggest(http, peer, "zebra cr") == []
