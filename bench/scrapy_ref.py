"""Scrapy reference crawl: follow every in-site link, do nothing else.

Run as its own process (``python bench/scrapy_ref.py URL``) so that Twisted's
reactor never meets the benchmark's asyncio loop. Prints one JSON line:
``{"pages": N, "elapsed_s": T, "pages_per_second": R, "settings": {...}}``, with
the time measured from the ``spider_opened`` to the ``spider_closed`` signal and
``pages`` the number of HTML pages received by the spider's callback.

Scrapy's default concurrency is kept (CONCURRENT_REQUESTS 16, 8 per domain, no
download delay); robots.txt is obeyed because the yasearch crawler obeys it too.
The spider extracts links with a CSS selector (``a::attr(href)``) rather than
CrawlSpider's LinkExtractor: that is Scrapy's cheapest way to follow links, so the
reference is as fast as Scrapy gets on this site.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response

SETTINGS: dict[str, Any] = {
    "CONCURRENT_REQUESTS": 16,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
    "DOWNLOAD_DELAY": 0,
    "ROBOTSTXT_OBEY": True,
    "LOG_LEVEL": "WARNING",
    "TELNETCONSOLE_ENABLED": False,
}


class FollowAll(scrapy.Spider):
    """Follows every link of the start URL's host; yields no items."""

    name = "follow_all"

    def __init__(self, start_url: str, max_pages: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = [start_url]
        self.allowed_domains = [urlsplit(start_url).hostname or ""]
        self.max_pages = max_pages
        self.pages = 0
        self.opened_at = 0.0
        self.closed_at = 0.0

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> "FollowAll":
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.on_open, signal=signals.spider_opened)
        crawler.signals.connect(spider.on_close, signal=signals.spider_closed)
        return spider

    def on_open(self, spider: scrapy.Spider) -> None:
        self.opened_at = time.perf_counter()

    def on_close(self, spider: scrapy.Spider, reason: str) -> None:
        self.closed_at = time.perf_counter()

    def parse(self, response: Response) -> Iterator[scrapy.Request]:
        self.pages += 1
        if self.pages >= self.max_pages:
            return
        yield from response.follow_all(css="a::attr(href)", callback=self.parse)


def run(url: str, max_pages: int) -> dict[str, Any]:
    process = CrawlerProcess(settings=SETTINGS)
    crawler = process.create_crawler(FollowAll)
    process.crawl(crawler, start_url=url, max_pages=max_pages)
    process.start()
    spider: FollowAll = crawler.spider
    elapsed = spider.closed_at - spider.opened_at
    return {
        "pages": spider.pages,
        "elapsed_s": round(elapsed, 3),
        "pages_per_second": round(spider.pages / elapsed, 1) if elapsed > 0 else 0.0,
        "scrapy": scrapy.__version__,
        "reactor": type(__import__("twisted.internet.reactor").internet.reactor).__name__,
        "settings": SETTINGS,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url", help="start URL of the site")
    ap.add_argument("--max-pages", type=int, default=10**9, help="stop following links after this many pages")
    args = ap.parse_args(argv)
    print(json.dumps(run(args.url, args.max_pages)), flush=True)


if __name__ == "__main__":
    main()
