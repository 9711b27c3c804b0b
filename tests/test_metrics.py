"""Prometheus metrics at /metrics, parsed with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from peerutil import linked_pages


async def scrape(http, url: str) -> dict[str, list]:
    r = await http.get(url + "/metrics")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=")
    return {f.name: f.samples for f in text_string_to_metric_families(await r.text())}


def value(families: dict[str, list], name: str, sample: str | None = None, **labels: str) -> float:
    for s in families[name]:
        if (sample is None or s.name == sample) and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no {sample or name} {labels} in {families[name]}")


async def test_metrics_expose_the_peers_figures(peer, http, crawl_site) -> None:
    await crawl_site(peer, linked_pages(4))
    await peer.settle()
    r = await http.get(peer.url + "/api/v1/search", params={"q": "zebras", "scope": "local"})
    assert r.status == 200
    m = await scrape(http, peer.url)
    assert value(m, "yasearch_documents") == 4
    assert value(m, "yasearch_crawl_pages_indexed", "yasearch_crawl_pages_indexed_total") == 4
    assert value(m, "yasearch_crawl_pages_fetched", "yasearch_crawl_pages_fetched_total") >= 4
    assert value(m, "yasearch_publish_backlog") >= 0 and "yasearch_postings_held" in m
    assert "yasearch_peers_known" in m and "yasearch_publish_sent" in m and "yasearch_p2p_calls" in m
    searches = value(m, "yasearch_query_duration_seconds", "yasearch_query_duration_seconds_count", route="/api/v1/search")
    assert searches == 1
    inf = value(m, "yasearch_query_duration_seconds", "yasearch_query_duration_seconds_bucket", route="/api/v1/search", le="+Inf")
    assert inf == 1
    # the recrawl figures: the crawled pages are tracked for revisits, none due yet
    await peer.recrawler.settle()
    m = await scrape(http, peer.url)
    assert value(m, "yasearch_recrawl_tracked") == 4 and value(m, "yasearch_recrawl_due") == 0
    assert value(m, "yasearch_recrawl_unchanged", "yasearch_recrawl_unchanged_total") == 0


async def test_p2p_requests_are_counted_with_their_latency(make_network, http, crawl_site) -> None:
    a, b = await make_network(["a", "b"])
    await crawl_site(a, linked_pages(3))
    await a.settle()  # a publishes its postings to b over /p2p/v1
    await b.search("zebras", scope="global")  # b asks a, over /p2p/v1
    totals = {}
    for p in (a, b):
        m = await scrape(http, p.url)
        for s in m.get("yasearch_p2p_requests", []):
            if s.name == "yasearch_p2p_requests_total":
                totals[(p.name, s.labels["path"], s.labels["status"])] = s.value
        assert "yasearch_p2p_request_duration_seconds" in m or not totals
    assert totals and all(v >= 1 for v in totals.values()), totals
    assert all(path.startswith("/p2p/v1/") for _, path, _ in totals)


async def test_every_peer_has_its_own_registry(make_peer, http) -> None:
    a, b = await make_peer(), await make_peer()
    await http.get(a.url + "/api/v1/search", params={"q": "zebras", "scope": "local"})
    ma, mb = await scrape(http, a.url), await scrape(http, b.url)
    count = "yasearch_query_duration_seconds_count"
    assert value(ma, "yasearch_query_duration_seconds", count, route="/api/v1/search") == 1
    assert not [s for s in mb["yasearch_query_duration_seconds"] if s.name == count and s.value]
