"""Prometheus metrics at ``/metrics``, with ``prometheus_client``.

Each peer's app has a registry of its own (tests run many peers in one process).
Two kinds of figures:

* timed as requests happen (a middleware observer, :data:`yasearch.middleware.OBSERVERS`):
  the query latency histogram (routes tagged ``search``) and the peer-to-peer requests
  this peer answers, counted by path and status, with their latencies;
* read from the peer's status when scraped: documents, postings held, peers known,
  the publish backlog and counters, outbound p2p calls, crawl counters, recrawl
  figures (pages tracked, due, revisited, unchanged, changed, gone, failed, removed).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from yasearch.httpkit import PEER_KEY, Route, canonical, route
from yasearch.middleware import OBSERVERS

#: Seconds: a local query takes milliseconds, a global one up to the search budget.
QUERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


class PeerMetrics:
    """The registry of one peer and the metrics timed as requests happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.queries = Histogram(
            "yasearch_query_duration_seconds", "Time to answer a search request, by route",
            ["route"], buckets=QUERY_BUCKETS, registry=self.registry,
        )
        self.p2p_requests = Counter(
            "yasearch_p2p_requests", "Peer-to-peer requests this peer answered, by path and status",
            ["path", "status"], registry=self.registry,
        )
        self.p2p_latency = Histogram(
            "yasearch_p2p_request_duration_seconds", "Time to answer a peer-to-peer request, by path",
            ["path"], registry=self.registry,
        )
        self.snapshot: dict[str, Any] = {}
        self.registry.register(_StatusCollector(self))

    def observe(self, info: Route, status: int, seconds: float) -> None:
        path = canonical(info.path)
        if info.tag == "search":
            self.queries.labels(path).observe(seconds)
        elif path.startswith("/p2p/"):
            self.p2p_requests.labels(path, str(status)).inc()
            self.p2p_latency.labels(path).observe(seconds)


class _StatusCollector:
    """The peer's status figures, read at scrape time (the handler refreshes the snapshot)."""

    def __init__(self, metrics: PeerMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # the families vary with the snapshot; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        s = self.metrics.snapshot
        if not s:
            return
        yield _gauge("yasearch_documents", "Documents in this peer's local index", s.get("documents", 0))
        yield _gauge("yasearch_postings_held", "Postings this peer holds for the network", s.get("postings_held", 0))
        yield _gauge("yasearch_peers_known", "Other peers this peer knows", s.get("peers_known", 0))
        yield _gauge("yasearch_uptime_seconds", "Seconds since the peer started", s.get("uptime_s", 0))
        pub = s.get("publish") or {}
        yield _gauge("yasearch_publish_backlog", "Documents and withdrawals waiting to be published", pub.get("pending", 0))
        yield _counter("yasearch_publish_sent", "Postings sent to their responsible peers", pub.get("sent", 0))
        yield _counter("yasearch_publish_failed", "Publish requests that failed", pub.get("failed", 0))
        p2p = (s.get("network") or {}).get("p2p") or {}
        yield _counter("yasearch_p2p_calls", "Peer-to-peer requests this peer made", p2p.get("requests", 0))
        yield _counter("yasearch_p2p_call_failures", "Peer-to-peer requests this peer made that failed", p2p.get("failures", 0))
        crawl = s.get("crawl") or {}
        for key, text in (("fetched", "fetched"), ("indexed", "indexed"), ("failed", "that failed to fetch")):
            yield _counter(f"yasearch_crawl_pages_{key}", f"Pages {text} by the crawl jobs this peer keeps", crawl.get(key, 0))
        yield _gauge("yasearch_crawl_jobs_running", "Crawl jobs running", crawl.get("running", 0))
        yield _gauge("yasearch_crawl_queued", "URLs waiting in running crawl jobs' frontiers", crawl.get("queued", 0))
        recrawl = s.get("recrawl") or {}
        if recrawl:
            yield _gauge("yasearch_recrawl_tracked", "Indexed pages scheduled for revisits", recrawl.get("tracked", 0))
            yield _gauge("yasearch_recrawl_due", "Tracked pages due for a revisit now", recrawl.get("due", 0))
            for key in ("revisited", "unchanged", "changed", "gone", "failed", "removed"):
                yield _counter(f"yasearch_recrawl_{key}", f"Revisits since the start: pages {key}", recrawl.get(key, 0))


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=float(value))


METRICS: web.AppKey[PeerMetrics] = web.AppKey("metrics", PeerMetrics)


async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    m.snapshot = await request.app[PEER_KEY].status()
    body = generate_latest(m.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> None:
    m = PeerMetrics()
    app[METRICS] = m
    app.setdefault(OBSERVERS, []).append(m.observe)
    route(app, "GET", "/metrics", metrics, tag="meta", summary="Prometheus metrics of this peer (text exposition format)",
          response={CONTENT_TYPE_LATEST.split(";")[0]: None})
