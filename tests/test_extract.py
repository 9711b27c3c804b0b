"""HTML/text extraction: visible text only, metadata, links, hostile input."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from urllib.parse import urljoin

import pytest

from yasearch.crawler import extract as extract_mod
from yasearch.crawler.extract import MAX_ANCHOR_CHARS, Extracted, _extract_soup, decode, extract

URL = "http://h.org/dir/page.html"


def test_visible_text_only() -> None:
    html = b"""<html><head><title>T</title><style>.hidden{color:red}</style>
    <script>var secret = 1;</script></head><body>
    <h1>Main</h1><p>Hello <b>world</b></p><script>alert('x')</script><noscript>nojs</noscript>
    <template><p>tpl</p></template><svg><text>vector</text></svg><h2>Sub</h2></body></html>"""
    ex = extract(html, URL, "text/html", "utf-8")
    assert ex.title == "T"
    assert "Hello world" in ex.body
    for hidden in ("secret", "alert", "color", "nojs", "tpl", "vector"):
        assert hidden not in ex.body
    assert "T" not in ex.body.split()  # title is not body text
    assert ex.headings.split() == ["Main", "Sub"]
    assert "  " not in ex.body


def test_script_in_title_is_text() -> None:
    ex = extract(b"<title>Hi <script>alert(1)</script></title><p>x", URL, "text/html", None)
    assert ex.title == "Hi <script>alert(1)</script>"


def test_metadata() -> None:
    html = b"""<html lang="en-GB"><head><meta name="Description" content="  A   page  ">
    <meta name="ROBOTS" content="NoIndex, follow"><link rel="canonical" href="/canon"></head>
    <body><a href="a.html#frag">a</a><a href="b.html" rel="nofollow">b</a>
    <a href="mailto:x@y">m</a><a href="a.html">dup</a><a href="http://other.org/">o</a></body></html>"""
    ex = extract(html, URL, "text/html", None)
    assert ex.language == "en-gb"
    assert ex.description == "A page"
    assert ex.noindex and not ex.nofollow
    assert ex.canonical == "http://h.org/canon"
    assert ex.links == ["http://h.org/dir/a.html", "http://other.org/"]


def test_meta_nofollow_and_none() -> None:
    ex = extract(b'<meta name="robots" content="nofollow"><a href="/x">x</a>', URL, "text/html", None)
    assert ex.nofollow and not ex.noindex and ex.links == []
    ex = extract(b'<meta name="robots" content="none"><a href="/x">x</a>', URL, "text/html", None)
    assert ex.nofollow and ex.noindex
    # only "robots" is honoured, not crawler-specific names
    ex = extract(b'<meta name="googlebot" content="noindex"><p>x', URL, "text/html", None)
    assert not ex.noindex


def test_language_from_meta_and_base_href() -> None:
    html = b"""<head><meta http-equiv="content-language" content="de"><base href="http://cdn.org/b/"></head>
    <a href="x">x</a>"""
    ex = extract(html, URL, "text/html", None)
    assert ex.language == "de"
    assert ex.links == ["http://cdn.org/b/x"]


def test_charset_from_meta() -> None:
    body = "<html><head><meta charset='koi8-r'></head><body>Привет мир</body></html>".encode("koi8-r")
    assert "Привет мир" in extract(body, URL, "text/html", None).body
    body = ('<meta http-equiv="Content-Type" content="text/html; charset=windows-1252"><p>café').encode("cp1252")
    assert "café" in extract(body, URL, "text/html", None).body


def test_header_charset_wins_and_unknown_charset() -> None:
    body = "<p>Grüße</p>".encode("latin-1")
    assert "Grüße" in extract(body, URL, "text/html", "iso-8859-1").body
    # an unknown declared charset falls back to detection instead of failing
    assert "Grüße" in extract("<p>Grüße</p>".encode(), URL, "text/html", "x-no-such-charset").body


def test_invalid_bytes_and_nul() -> None:
    body = b"<title>ok</title><p>bad \xc3\x28 bytes \x00 and \xff\xfe more</p><div><span><b>unclosed"
    ex = extract(body, URL, "text/html", "utf-8")
    assert ex.title == "ok"
    assert "bytes" in ex.body and "unclosed" in ex.body
    assert "\x00" not in ex.body
    # undeclared and not UTF-8: guessed, never raises
    ex = extract(b"\xe9t\xe9 <b>caf\xe9", URL, "text/html", None)
    assert "caf" in ex.body


def test_hostile_html_does_not_crash() -> None:
    huge_attr = b'<a href="/' + b"a" * 200_000 + b'" title="' + b"t" * 100_000 + b'">l</a>'
    nested = b"<div>" * 5000 + b"deep" + b"<table><tr><td><p><li>" * 500
    ex = extract(b"<html><title>x" + huge_attr + nested, URL, "text/html", None)
    assert isinstance(ex, Extracted)
    ex = extract(b"", URL, "text/html", None)
    assert ex.body == "" and ex.links == []
    ex = extract(b"<<<>>><!--<script>", URL, "application/xhtml+xml", None)
    assert isinstance(ex, Extracted)


def test_output_is_bounded() -> None:
    links = "".join(f'<a href="/p{i}">l</a>' for i in range(3000)).encode()
    ex = extract(links, URL, "text/html", None)
    assert len(ex.links) == extract_mod.MAX_LINKS
    big = b"<p>" + b"word " * 300_000
    assert len(extract(big, URL, "text/html", None).body) <= extract_mod.MAX_BODY_CHARS


def test_plain_text() -> None:
    ex = extract(b"\n\n  First line  \nsecond <b>not markup</b>", "http://h.org/t.txt", "text/plain", None)
    assert ex.title == "First line"
    assert ex.body == "First line second <b>not markup</b>"
    assert ex.links == []
    assert extract(b"", "http://h.org/e.txt", "text/plain", None).title == "http://h.org/e.txt"


def test_fallback_when_lexbor_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(text: str, url: str) -> Extracted:
        raise RuntimeError("parser crashed")

    monkeypatch.setattr(extract_mod, "_extract_lexbor", boom)
    html = b'<html lang="fr"><title>T</title><script>x=1</script><p>Bonjour</p><a href="/y">y</a>'
    ex = extract(html, URL, "text/html", None)
    assert ex.title == "T" and ex.language == "fr"
    assert ex.body == "Bonjour y"
    assert ex.links == ["http://h.org/y"]


def test_decode_bom() -> None:
    assert decode(b"\xef\xbb\xbf<p>x", "latin-1") == "<p>x"


def test_runs_in_process_pool() -> None:
    html = b"<title>Pool</title><p>text</p>"
    pickle.dumps(extract(html, URL, "text/html", None))
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        ex = pool.submit(extract, html, URL, "text/html", None).result(timeout=60)
    assert ex.title == "Pool" and ex.body == "text"


def test_inline_elements_add_no_whitespace_block_elements_do() -> None:
    html = b"""<body><p>print(json.<a href="#d">dumps</a>(x))</p><p>tomatoes, <b>basil</b></p>
    <ul><li>one</li><li>two</li></ul><table><tr><td>c1</td><td>c2</td></tr></table>
    <div>first</div><div>second<br>third</div></body>"""
    for ex in (extract(html, URL, "text/html", "utf-8"), extract_mod._extract_soup(html.decode(), URL)):
        assert "print(json.dumps(x))" in ex.body
        assert "tomatoes, basil" in ex.body
        assert ex.body.split() == ["print(json.dumps(x))", "tomatoes,", "basil", "one", "two", "c1", "c2",
                                   "first", "second", "third"]


def test_code_keeps_its_characters() -> None:
    html = b"<body><pre><code>re.<span>sub</span>(r'a_b', '', s)\nsnake_case = 1</code></pre></body>"
    ex = extract(html, URL, "text/html", "utf-8")
    assert "re.sub(r'a_b', '', s) snake_case = 1" in ex.body


def test_main_content_preferred_and_furniture_kept_out() -> None:
    html = b"""<body><header>Site banner</header><nav><a href="/">Home</a> <a href="/a">About</a></nav>
    <main><h1>Title</h1><p>The real <em>content</em>.</p></main><aside>Related</aside>
    <footer>Copyright</footer></body>"""
    for ex in (extract(html, URL, "text/html", "utf-8"), extract_mod._extract_soup(html.decode(), URL)):
        assert ex.body == "Title The real content."
        assert ex.links == ["http://h.org/", "http://h.org/a"]  # links in furniture are still followed


def test_furniture_is_dropped_without_main_but_a_page_of_furniture_keeps_it() -> None:
    html = b"<body><nav>Home About</nav><div>Body text</div><footer>Copyright</footer></body>"
    assert extract(html, URL, "text/html", "utf-8").body == "Body text"
    assert extract(b"<body><nav>Home About</nav></body>", URL, "text/html", "utf-8").body == "Home About"


def test_lead_paragraph_stands_in_for_a_missing_description() -> None:
    html = b"""<body><div>Menu Home</div><p>Short.</p><p>The first real paragraph of <b>this</b> page says
    what it is about.</p><p>Second paragraph.</p></body>"""
    ex = extract(html, URL, "text/html", "utf-8")
    assert ex.description == "The first real paragraph of this page says what it is about."
    meta = b'<meta name="description" content="Given"><p>The first real paragraph of this page.</p>'
    assert extract(meta, URL, "text/html", "utf-8").description == "Given"
    long = b"<p>" + b"word " * 200 + b"</p>"
    lead = extract(long, URL, "text/html", "utf-8").description
    assert len(lead) <= extract_mod.LEAD_CHARS and lead.endswith("word")


def test_link_texts_become_the_anchor_text_of_their_targets() -> None:
    html = (b'<html><body><p><a href="/a">The <b>Alpha</b>\n page</a> <a href="/b"><img alt="Beta logo" src="b.png"></a>'
            b'<a href="/a">second text</a> <a href="/c" rel="nofollow">spam words</a> <a href="/d"></a>'
            b'<map><area href="/e" alt="East wing"></map><a href="/f">' + b"x" * 300 + b"</a></p></body></html>")
    for ex in (extract(html, URL, "text/html", None), _extract_soup(html.decode(), URL)):
        assert ex.anchors[urljoin(URL, "/a")] == "The Alpha page"  # inline tags add no space; the first text wins
        assert ex.anchors[urljoin(URL, "/b")] == "Beta logo"  # an image link says what its image's alt says
        assert ex.anchors[urljoin(URL, "/e")] == "East wing"
        assert len(ex.anchors[urljoin(URL, "/f")]) == MAX_ANCHOR_CHARS
        assert urljoin(URL, "/c") not in ex.anchors  # nofollow links give no anchor text
        assert urljoin(URL, "/d") in ex.links and urljoin(URL, "/d") not in ex.anchors
    nofollow = extract(b'<meta name="robots" content="nofollow"><a href="/x">words</a>', URL, "text/html", None)
    assert nofollow.anchors == {}
