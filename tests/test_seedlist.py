"""Seed lists: per-line options, and every unusable line reported with its number."""

from __future__ import annotations

import pytest

from yasearch.cli import crawl_seed_list
from yasearch.seedlist import group_by_options, parse_seed_lines

LIST = """\
# seeds
https://docs.python.org/3/    depth=3 same_site
https://example.org/          # a comment
not-a-url
https://example.net/ depth=many
https://example.com/ colour=blue
https://b.example/ depth=3 same_site=true
https://c.example/ sitemaps=false max_pages=50 delay=0.5
"""


def test_options_are_read_per_line_and_grouped_into_jobs():
    seeds, errors = parse_seed_lines(LIST)
    assert [(s.line, s.url, s.options) for s in seeds] == [
        (2, "https://docs.python.org/3/", {"depth": 3, "same_site": True}),
        (3, "https://example.org/", {}),
        (7, "https://b.example/", {"depth": 3, "same_site": True}),
        (8, "https://c.example/", {"sitemaps": False, "max_pages": 50, "delay": 0.5}),
    ]
    assert group_by_options(seeds) == [
        ({"depth": 3, "same_site": True}, ["https://docs.python.org/3/", "https://b.example/"]),
        ({}, ["https://example.org/"]),
        ({"delay": 0.5, "max_pages": 50, "sitemaps": False}, ["https://c.example/"]),
    ]


def test_every_bad_line_is_reported_with_its_number():
    _, errors = parse_seed_lines(LIST)
    assert [n for n, _ in errors] == [4, 5, 6]
    assert "not an absolute http(s) URL" in errors[0][1]
    assert "depth must be a whole number" in errors[1][1]
    assert "unknown option 'colour'" in errors[2][1]


async def test_the_peers_seed_list_starts_one_job_per_option_set(peer, tmp_path, capsys):
    path = tmp_path / "seeds.txt"
    # the same list on closed loopback ports: a test sends nothing off the machine
    loopback = {"https://docs.python.org/3/": "http://127.0.0.1:9/3/", "https://example.org/": "http://127.0.0.2:9/",
                "https://b.example/": "http://127.0.0.3:9/", "https://c.example/": "http://127.0.0.4:9/",
                "https://example.net/": "http://127.0.0.5:9/", "https://example.com/": "http://127.0.0.6:9/"}
    text = LIST
    for real, local in loopback.items():
        text = text.replace(real, local)
    path.write_text(text)
    await crawl_seed_list(peer, path)
    jobs = sorted(peer.list_jobs(), key=lambda j: len(j.spec.urls))
    for job in jobs:
        peer.control_job(job.id, "cancel")  # nothing here is reachable: only the specs matter
    specs = [(j.spec.urls, j.spec.depth, j.spec.same_site, j.spec.sitemaps, j.spec.max_pages) for j in jobs]
    assert sorted(specs) == sorted([
        (["http://127.0.0.1:9/3/", "http://127.0.0.3:9/"], 3, True, True, 1000),
        (["http://127.0.0.2:9/"], 1, False, True, 1000),
        (["http://127.0.0.4:9/"], 1, False, False, 50),
    ])
    err = capsys.readouterr().err
    for n in (4, 5, 6):
        assert f"seeds.txt line {n}:" in err


@pytest.mark.parametrize("text", [b"http://a.example/\nnope\nhttp://b.example/ depth=x\n"])
async def test_an_uploaded_list_names_every_bad_line(peer, http, text):
    from aiohttp import FormData

    form = FormData()
    form.add_field("seeds", text, filename="list.txt", content_type="text/plain")
    async with http.post(peer.url + "/api/v1/crawl", data=form) as r:
        assert r.status == 400
        message = (await r.json())["error"]["message"]
    assert "list.txt line 2" in message and "list.txt line 3" in message


def upload(text: bytes, **fields: str):
    from aiohttp import FormData

    form = FormData()
    for k, v in fields.items():
        form.add_field(k, v)
    form.add_field("seeds", text, filename="list.txt", content_type="text/plain")
    return form


# closed loopback ports: the jobs' specs are what matters, nothing is reachable
UPLOADED = b"""\
http://127.0.0.1:9/a   depth=3 same_site
http://127.0.0.2:9/b
http://127.0.0.3:9/c   same_site depth=3
http://127.0.0.4:9/d   sitemaps=false max_pages=50
"""


def job_specs(peer, ids):
    jobs = [peer.get_job(i) for i in ids]
    for job in jobs:
        peer.control_job(job.id, "cancel")
    return sorted((j.spec.urls, j.spec.depth, j.spec.same_site, j.spec.sitemaps, j.spec.max_pages, j.spec.delay)
                  for j in jobs)


async def test_an_uploaded_list_starts_one_job_per_option_set_over_the_api(peer, http):
    form = upload(UPLOADED, urls="http://127.0.0.5:9/e", depth="1", max_pages="20", delay="0.5")
    async with http.post(peer.url + "/api/v1/crawl", data=form) as r:
        assert r.status == 201, await r.text()
        body = await r.json()
    assert len(body["jobs"]) == 3 and body["id"] == body["jobs"][0]
    # the form's fields are every job's defaults; a line's options go over them
    assert job_specs(peer, body["jobs"]) == sorted([
        (["http://127.0.0.5:9/e", "http://127.0.0.2:9/b"], 1, False, True, 20, 0.5),
        (["http://127.0.0.1:9/a", "http://127.0.0.3:9/c"], 3, True, True, 20, 0.5),
        (["http://127.0.0.4:9/d"], 1, False, False, 50, 0.5),
    ])


async def test_the_console_form_applies_an_uploaded_lists_options(peer, http):
    form = upload(b"http://127.0.0.1:9/a depth=2\nhttp://127.0.0.2:9/b max_pages=7\n", depth="0", max_pages="5")
    async with http.post(peer.url + "/crawl", data=form, allow_redirects=False) as r:
        assert r.status == 303, await r.text()
    specs = job_specs(peer, [j.id for j in peer.list_jobs()])
    assert specs == sorted([(["http://127.0.0.1:9/a"], 2, False, True, 5, None),
                            (["http://127.0.0.2:9/b"], 0, False, True, 7, None)])


async def test_a_bad_form_field_starts_none_of_the_uploaded_lists_jobs(peer, http):
    form = upload(b"http://127.0.0.1:9/a depth=2\nhttp://127.0.0.2:9/b max_pages=7\n", deny="(unclosed")
    async with http.post(peer.url + "/api/v1/crawl", data=form) as r:
        assert r.status == 400
        assert "deny" in (await r.json())["error"]["message"]
    assert peer.list_jobs() == []
