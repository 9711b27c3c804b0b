"""Stored passages: the body out of the stored record, snippets that read only the
passages they need, and indexes written before passages existed."""

from __future__ import annotations

import random
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh.fields import Schema

from yasearch.analysis import analyze, doc_id
from yasearch.index import LocalIndex, MAX_STORED_BODY_CHARS
from yasearch.index.passages import PASSAGE_CHARS, SINGLE_MAX_CHARS, Passages, cut, encode
from yasearch.index.schema import PASSAGES_FIELD, make_schema
from yasearch.index.writer import whoosh_fields
from yasearch.query import parse_query
from yasearch.records import Document
from yasearch.search import search_local
from yasearch.snippets import make_snippet, passage_snippet

WORDS = ("river stone meadow lantern copper harbor signal orchard velvet summit glacier thistle "
         "ember falcon quarry willow basalt canyon juniper marble").split()


def prose(chars: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    n = 0
    while n < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + ". "
        out.append(sentence)
        n += len(sentence)
    return "".join(out)[:chars]


def with_words(text: str, inserts: dict[int, str]) -> str:
    for pos in sorted(inserts, reverse=True):
        text = text[:pos] + " " + inserts[pos] + " " + text[pos:]
    return text


def make_doc(url: str, body: str, title: str = "A page", description: str = "") -> Document:
    return Document(doc_id=doc_id(url), url=url, host=url.split("/")[2], title=title, body=body,
                    description=description, language="en", crawled_at=1_700_000_000.0)


# ---- the record


def test_passages_joined_are_the_body_and_no_token_is_cut() -> None:
    body = prose(90_000) + " json.dumps_all x.y_z " + prose(20_000, seed=2)
    pieces = cut(body)
    assert "".join(pieces) == body and len(pieces) > 5
    assert all(len(p) < 2 * PASSAGE_CHARS for p in pieces)
    assert sum((analyze(p) for p in pieces), []) == analyze(body)
    assert cut(prose(SINGLE_MAX_CHARS)) == [prose(SINGLE_MAX_CHARS)]  # an ordinary page: one passage


def test_a_filter_admits_every_term_of_its_passage_and_few_others() -> None:
    body = prose(60_000) + " zebras.grazing quietly " + prose(30_000, seed=3)
    p = Passages(encode(body))
    assert p.join() == body and p.decompressed == len(p)
    absent = {f"absentword{i}" for i in range(500)}
    wrong = 0
    for i in range(len(p)):
        terms = set(analyze(p.text(i)))
        assert p.may_hold(i, terms) == terms  # no false negatives
        wrong += len(p.may_hold(i, absent))
    assert wrong < 0.03 * 500 * len(p)  # false positives are rare


def test_an_ordinary_body_is_one_passage_without_a_filter() -> None:
    p = Passages(encode("short body about rivers"))
    assert len(p) == 1 and p.may_hold(0, {"anything"}) == {"anything"}
    assert encode("") == b""


# ---- snippets from passages


def test_a_snippet_reads_only_the_passages_holding_the_terms() -> None:
    body = with_words(prose(99_000), {70_000: "zebras graze calmly"})
    record = encode(body)
    p = Passages(record)
    plain, marked = passage_snippet(p, analyze("zebras graze"))
    assert "<mark>zebras</mark> <mark>graze</mark>" in marked and "zebras graze calmly" in plain
    assert plain.startswith("\u2026") and plain.endswith("\u2026")
    assert p.decompressed <= 3  # the passage with the hit and its neighbours, of 12
    # the same snippet as scanning the whole body
    assert (plain, marked) == make_snippet(body, analyze("zebras graze"))


def test_without_a_hit_in_the_body_no_passage_but_the_first_is_read() -> None:
    p = Passages(encode(prose(99_000)))
    plain, _ = passage_snippet(p, analyze("zebras"), fallback="A page about zebras.")
    assert plain == "A page about zebras." and p.decompressed == 0
    p = Passages(encode(prose(99_000)))
    plain, _ = passage_snippet(p, analyze("zebras"))
    assert plain == make_snippet(prose(99_000), analyze("zebras"))[0] and p.decompressed == 1


def test_terms_far_apart_find_the_window_holding_both() -> None:
    body = with_words(prose(99_000), {1_000: "zebras", 60_000: "zebras graze together"})
    p = Passages(encode(body))
    plain, _ = passage_snippet(p, analyze("zebras graze"))
    assert "zebras graze together" in plain and p.decompressed <= 4


# ---- through the index


async def test_a_page_of_over_a_megabyte_gets_its_snippet_from_its_passages(make_index) -> None:
    index: LocalIndex = await make_index(commit_interval=0.05)
    body = with_words(prose(1_200_000), {80_000: "zebras graze calmly", 500_000: "zebras beyond the stored part"})
    await index.add(make_doc("https://big.example/a", body, description="A long page."))
    await index.flush()
    res = await search_local(index, parse_query("zebras graze"))
    assert len(res.results) == 1
    assert "<mark>zebras</mark> <mark>graze</mark> calmly" in res.results[0].snippet_html

    def look(view):
        d = view.docnum_of(doc_id("https://big.example/a"))
        p = view.passages(d)
        passage_snippet(p, analyze("zebras graze"))
        prefixes = [view.body_prefix(d, n) for n in (1, 8_000, 30_000)]
        return view.display(d), p.decompressed, len(p), view.stored(d)["body"], prefixes

    display, read, n, stored_body, prefixes = await index.run_read(look)
    assert prefixes == [body[:1], body[:8_000], body[:30_000]]  # a body's start, for completions and stopword scans
    assert "body" not in display and display["description"] == "A long page."
    assert read <= 3 < n  # 13 passages stored, a few read
    assert stored_body == body[:MAX_STORED_BODY_CHARS]  # export still gets the stored body


def old_schema() -> Schema:
    """The schema of an index written before stored passages: the body in the stored record."""
    new = make_schema()
    fields = {name: new[name] for name in new.names() if name != PASSAGES_FIELD}
    fields["body"].stored = True
    return Schema(**fields)


async def test_an_index_written_before_passages_still_gives_snippets_and_gets_them(tmp_path: Path) -> None:
    directory = tmp_path / "ix"
    directory.mkdir()
    ix = whoosh_index.create_in(str(directory), old_schema())
    old_body = with_words(prose(60_000), {40_000: "zebras graze calmly"})
    old = make_doc("https://old.example/a", old_body, description="Old page.")
    writer = ix.writer()
    writer.add_document(**{k: v for k, v in whoosh_fields(old).items() if k != PASSAGES_FIELD})
    writer.commit()
    new = make_doc("https://new.example/b", with_words(prose(60_000, seed=5), {30_000: "zebras graze calmly"}),
                   description="New page.")

    def look(view):
        d_old, d_new = view.docnum_of(old.doc_id), view.docnum_of(new.doc_id)
        assert [view.body_prefix(d, 30_000) for d in (d_old, d_new)] == [old.body[:30_000], new.body[:30_000]]
        return (view.passages(d_old), "body" in view.display(d_old), view.passages(d_new) is not None,
                "body" in view.display(d_new), view.stored(d_old)["body"], view.stored(d_new)["body"])

    for merged in (False, True):
        index = LocalIndex(directory, commit_interval=0.05)
        await index.open()
        try:
            if not merged:
                await index.add(new)
                await index.flush()
            res = await search_local(index, parse_query("zebras graze"))
            assert sorted(h.url for h in res.results) == [new.url, old.url]
            for h in res.results:
                assert "<mark>zebras</mark> <mark>graze</mark> calmly" in h.snippet_html
            p_old, old_has_body, new_has_passages, new_has_body, s_old, s_new = await index.run_read(look)
            assert p_old is None and old_has_body  # the old document: its body in its stored record
            assert new_has_passages and not new_has_body  # a new one in the old index: passages only
            assert (s_old, s_new) == (old.body, new.body)
        finally:
            await index.close()
        if not merged:  # both documents in one segment, old and new, then the same again
            assert len(whoosh_index.open_dir(str(directory)).reader().leaf_readers()) == 2
            whoosh_index.open_dir(str(directory)).optimize()


async def test_results_show_the_same_fields_as_from_the_stored_record(tmp_path: Path, make_index) -> None:
    """A document indexed with passages and the same one in an index from before them
    give the same result fields, and for an ordinary page the same snippet."""
    docs = [make_doc("https://a.example/1", with_words(prose(15_000), {9_000: "zebras graze"}), title="One",
                     description="First page."),
            make_doc("https://a.example/2", with_words(prose(300_000, seed=4), {50_000: "zebras graze"}),
                     title="Two", description="Second page.")]
    new_index: LocalIndex = await make_index(commit_interval=0.05)
    for d in docs:
        await new_index.add(d)
    await new_index.flush()
    directory = tmp_path / "old"
    directory.mkdir()
    ix = whoosh_index.create_in(str(directory), old_schema())
    writer = ix.writer()
    for d in docs:
        writer.add_document(**{k: v for k, v in whoosh_fields(d).items() if k != PASSAGES_FIELD})
    writer.commit()
    old_index = LocalIndex(directory, commit_interval=0.05)
    await old_index.open()
    try:
        got_new = (await search_local(new_index, parse_query("zebras graze"))).results
        got_old = (await search_local(old_index, parse_query("zebras graze"))).results
        fields = ("url", "title", "host", "language", "crawled_at", "doc_id", "score")
        assert [[getattr(h, f) for f in fields] for h in got_new] == [[getattr(h, f) for f in fields] for h in got_old]
        assert len(got_new) == 2
        ordinary = [(h.snippet, h.snippet_html) for h in got_new + got_old if h.url.endswith("/1")]
        assert ordinary[0] == ordinary[1]
        for h in got_new:
            assert "<mark>zebras</mark> <mark>graze</mark>" in h.snippet_html
        records_new = [await new_index.get(d.doc_id) for d in docs]
        records_old = [await old_index.get(d.doc_id) for d in docs]
        assert records_new == records_old and records_new[0].description == "First page."
    finally:
        await old_index.close()
