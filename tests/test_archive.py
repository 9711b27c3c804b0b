"""Your data in and out: JSON Lines export and import, WARC import (of files written by
warcio and of a crawl's own WARC output), through the CLI and the admin API."""

from __future__ import annotations

import io
import json
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from test_cli import yasearch

PAGES = {
    "/": "<html><head><title>Harbour</title></head><body><p>lighthouse keeper</p>"
         '<a href="/a">a</a> <a href="/b">b</a></body></html>',
    "/a": "<html><head><title>Alpha</title></head><body><p>walrus saffron</p></body></html>",
    "/b": "<html><head><title>Bravo</title></head><body><p>pelican nutmeg</p></body></html>",
}


def warc_file(path: Path) -> Path:
    """A WARC written by warcio: two HTML pages, a 404, an image, a request, a warcinfo."""
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        w.write_record(w.create_warcinfo_record("x.warc.gz", {"software": "test"}))

        def response(url: str, status: str, ctype: str, body: bytes) -> None:
            http = StatusAndHeaders(status, [("Content-Type", ctype)], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))

        response("http://archive.example/one", "200 OK", "text/html; charset=utf-8",
                 "<html><head><title>One</title></head><body><p>zebracorn meadow</p></body></html>".encode())
        response("http://archive.example/two", "200 OK", "text/html",
                 b"<html><head><title>Two</title></head><body><p>quokka orchard</p></body></html>")
        response("http://archive.example/gone", "404 Not Found", "text/html", b"<p>zebracorn missing</p>")
        response("http://archive.example/img.png", "200 OK", "image/png", b"\x89PNG....")
        req = StatusAndHeaders("GET /one HTTP/1.1", [("Host", "archive.example")], is_http_request=True)
        w.write_record(w.create_warc_record("http://archive.example/one", "request", http_headers=req))
    return path


async def local_urls(peer, q: str) -> list[str]:
    return sorted(h.url for h in (await peer.search(q, scope="local", limit=50)).results)


async def test_warc_import_indexes_html_responses_and_summarises_the_rest(make_network, tmp_path):
    origin, asker = await make_network(["p0", "p1"])
    path = warc_file(tmp_path / "pages.warc.gz")

    run = await yasearch("import", str(path), "--peer", origin.url)

    assert run.rc == 0, run
    assert "indexed 2" in run.out and "skipped 4" in run.out, run
    assert "http_404 1" in run.out and "not_html 1" in run.out and "not_response 2" in run.out, run
    assert await local_urls(origin, "zebracorn") == ["http://archive.example/one"]
    await origin.settle()
    assert [h.url for h in (await asker.search("quokka")).results] == ["http://archive.example/two"]
    job = origin.list_jobs()[0].to_dict()
    assert job["state"] == "done" and job["published"] == 2
    assert not list((Path(origin.config.data_dir) / "imports").iterdir())  # the upload is gone


async def test_jsonl_export_import_round_trip(make_peer, crawl_site, tmp_path):
    a = await make_peer(tmp_path / "a")
    b = await make_peer(tmp_path / "b")
    await crawl_site(a, PAGES, depth=1, sitemaps=False)
    out = tmp_path / "export.jsonl"

    run = await yasearch("export", "--peer", a.url, "-o", str(out))
    assert run.rc == 0, run
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and set(rows[0]) == {"url", "title", "text", "description", "language", "crawled_at"}
    assert any(r["title"] == "Alpha" and "walrus saffron" in r["text"] for r in rows)

    run = await yasearch("import", str(out), "--peer", b.url)
    assert run.rc == 0 and "indexed 3" in run.out, run

    for q in ("walrus", "pelican", "lighthouse", "harbour"):
        assert await local_urls(b, q) == await local_urls(a, q) != [], q
    again = tmp_path / "again.jsonl"
    assert (await yasearch("export", "--peer", b.url, "-o", str(again))).rc == 0
    key = lambda r: r["url"]  # noqa: E731
    assert sorted(map(json.loads, again.read_text().splitlines()), key=key) == sorted(rows, key=key)


async def test_a_crawls_warc_output_imports_into_another_peer(make_peer, static_site, tmp_path):
    a = await make_peer(tmp_path / "a")
    b = await make_peer(tmp_path / "b")
    site = await static_site(PAGES)
    warc = tmp_path / "crawl.warc.gz"

    run = await yasearch("crawl", site.url + "/", "--depth", "1", "--delay", "0", "--peer", a.url, "--warc", str(warc))
    assert run.rc == 0, run
    assert warc.stat().st_size > 0

    run = await yasearch("import", str(warc), "--peer", b.url)
    assert run.rc == 0 and "indexed 3" in run.out, run
    for q in ("walrus", "pelican", "lighthouse"):
        assert await local_urls(b, q) == await local_urls(a, q) != [], q


async def test_bad_lines_are_skipped_and_counted(peer, tmp_path, http):
    body = b'{"url": "http://x.example/1", "title": "ok", "text": "marmot"}\nnot json\n{"title": "no url"}\n'
    async with http.post(peer.url + "/api/v1/import", data=body) as r:
        assert r.status == 201
        job_id = (await r.json())["id"]
    job = await peer.jobs.wait(job_id)
    assert job.progress.indexed == 1
    assert dict(job.progress.skip_reasons) == {"bad_json": 1, "no_url": 1}
    async with http.post(peer.url + "/api/v1/import", data=b"") as r:
        assert r.status == 400
