"""The recrawl figures where a user looks at the index: per document and per host in the
index browser; the figures of the sitemaps' hints on every read."""

from __future__ import annotations

from urllib.parse import urlsplit

from bs4 import BeautifulSoup

from test_recrawl import LATER, PAGES, Site, crawl, html


def cells(row) -> dict[str, str]:
    return {td["data-field"]: td.get_text(" ", strip=True) for td in row.find_all("td", attrs={"data-field": True})}


async def get_soup(http, url: str) -> BeautifulSoup:
    async with http.get(url) as r:
        text = await r.text()
        assert r.status == 200, text[:2000]
    return BeautifulSoup(text, "html.parser")


async def test_the_index_browser_shows_each_documents_and_each_hosts_recrawl_figures(make_peer, make_site, http):
    site = await Site(make_site).start(PAGES)
    peer = await make_peer(recrawl_max_failures=3)
    await crawl(peer, site)
    site.bodies["/a"] = html("alpha", "walrus cardamom")  # changed
    site.status["/b"] = 503  # failing
    assert await peer.recrawler.run_round(now=LATER) == 3
    await peer.settle()
    row = await peer.recrawler.store.get(site.url("/"))
    row.next_visit = 1.0  # "/" is due again
    await peer.recrawler.store.save(row)
    host = urlsplit(site.url("/")).netloc

    soup = await get_soup(http, peer.url + "/index/host?host=" + host)
    docs = {tr.find("a", class_="doc-url")["href"]: cells(tr) for tr in soup.select("#documents tr.doc")}
    assert docs[site.url("/")]["revisits"] == "1 / 1 / 0 / 0"
    assert docs[site.url("/")]["next_visit"] == "due now"
    assert docs[site.url("/a")]["revisits"] == "1 / 0 / 1 / 0"
    assert docs[site.url("/a")]["next_visit"].startswith("in ")
    assert docs[site.url("/a")]["last_change"] == "just now"
    assert docs[site.url("/b")]["revisits"] == "0 / 0 / 0 / 1"
    summary = {dt.get_text(strip=True): dd for dt, dd in zip(soup.select("#host-recrawl dt"), soup.select("#host-recrawl dd"))}
    figures = {k: v.get_text(" ", strip=True) for k, v in summary.items()}
    assert figures["Tracked"] == "3" and figures["Due now"] == "1" and figures["Next visit"] == "due now"
    assert figures["Revisits"] == "2" and figures["Unchanged"] == "1" and figures["Changed"] == "1"
    assert figures["Failing"] == "1"

    soup = await get_soup(http, peer.url + "/index")
    assert soup.select_one("#due-total").get_text(strip=True) == "1"
    hosts = {tr["data-host"]: cells(tr) for tr in soup.select("#hosts tr.host")}
    assert hosts[host]["due"] == "1" and hosts[host]["documents"] == "3"

    soup = await get_soup(http, peer.url + "/index?url=" + site.url("/a"))
    details = soup.select_one("#lookup-result")
    assert "in " in details.select_one('[data-field="next_visit"]').get_text()
    assert details.select_one('[data-field="revisits"]').get_text(" ", strip=True) == (
        "1 (0 unchanged, 1 changed), 0 failures in a row"
    )


async def test_a_document_the_recrawl_does_not_track_says_so(peer, http, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text('{"url": "http://imported.example/x", "title": "imported", "text": "zebra"}\n')
    job = await peer.import_file(path)
    await peer.jobs.wait(job.id)
    await peer.settle()
    soup = await get_soup(http, peer.url + "/index/host?host=imported.example")
    assert cells(soup.select_one("#documents tr.doc"))["next_visit"] == "not scheduled"
    assert soup.select_one("#host-recrawl") is None
