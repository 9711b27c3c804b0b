"""Records shared between the crawler and its caller."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from .outbound import OutboundPolicy


@dataclass
class CrawlSpec:
    """What to crawl. Validated by the caller (the API) before a job exists."""

    urls: list[str]
    depth: int = 2
    max_pages: int = 100
    #: Seconds between two requests to one host; None = the settings' default.
    #: A larger robots.txt Crawl-delay wins.
    delay: float | None = None
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    #: Only follow links to the hosts of the seed URLs.
    same_site: bool = False
    #: Read the seed hosts' sitemaps (robots.txt ``Sitemap:`` lines and /sitemap.xml).
    sitemaps: bool = True
    #: Keep every fetched HTML response in a WARC file (where: the caller decides).
    warc: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CrawlSpec":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class CrawlerSettings:
    user_agent: str = "yasearch/0.1"
    delay: float = 1.0
    concurrency: int = 16
    #: Parallel requests to one host when the effective delay is 0; with a delay
    #: there is never more than one request in flight per host.
    per_host_concurrency: int = 8
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    max_body_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    #: Seconds one fetch may take in all (redirects, headers, body): a server that
    #: drips a byte just before each read timeout cannot hold a worker forever.
    fetch_deadline: float = 30.0
    #: Which addresses may be reached: public ones only unless the caller says so.
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)


@dataclass
class Page:
    """A fetched, extracted page, handed to the sink."""

    url: str  # canonical URL (after redirects and <link rel=canonical>)
    status: int
    content_type: str
    title: str = ""
    headings: str = ""
    body: str = ""
    description: str = ""
    language: str = ""
    links: list[str] = field(default_factory=list)  # canonical outlinks, nofollow ones excluded
    #: Outlink -> its link text, for the outlinks that have one (the anchor text of the target).
    anchors: dict[str, str] = field(default_factory=dict)
    noindex: bool = False
    nofollow: bool = False
    truncated: bool = False
    fetched_at: float = field(default_factory=time.time)
    depth: int = 0
    #: Canonical URL the crawler requested (differs from url after a redirect or rel=canonical).
    requested_url: str = ""
    #: Validators of the response (for the next conditional GET).
    etag: str = ""
    last_modified: str = ""
    #: The sitemap's hints for this URL, when a sitemap listed it.
    changefreq: str = ""
    lastmod: str = ""


@dataclass
class CrawlProgress:
    """Live counters of one job. ``indexed`` and ``published`` are maintained by the caller."""

    queued: int = 0  # URLs waiting in the frontier
    fetched: int = 0  # responses received (any status)
    indexed: int = 0
    failed: int = 0
    published: int = 0
    skipped: int = 0  # robots-disallowed, non-HTML, noindex, filtered
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    failures: Counter = field(default_factory=Counter)  # reason -> count
    recent_failures: deque = field(default_factory=lambda: deque(maxlen=50))  # (url, reason, time)
    skip_reasons: Counter = field(default_factory=Counter)  # reason -> count (imports fill it)

    def fail(self, url: str, reason: str) -> None:
        self.failed += 1
        self.failures[reason] += 1
        self.recent_failures.append((url, reason, time.time()))

    def pages_per_second(self) -> float:
        end = self.finished_at or time.time()
        return self.fetched / max(end - self.started_at, 1e-6)

    def to_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "fetched": self.fetched,
            "indexed": self.indexed,
            "failed": self.failed,
            "published": self.published,
            "skipped": self.skipped,
            "pages_per_second": round(self.pages_per_second(), 2),
            "failures": dict(self.failures),
            "skip_reasons": dict(self.skip_reasons),
            "recent_failures": [
                {"url": u, "reason": r, "time": t} for (u, r, t) in list(self.recent_failures)[-20:]
            ],
        }
