"""The crawler: frontier, robots.txt, politeness, fetching, extraction.

Independent of the peer: it takes a job spec and settings, and hands every
fetched page to a sink supplied by its caller.
"""

from .types import CrawlerSettings, CrawlProgress, CrawlSpec, Page

__all__ = ["CrawlerSettings", "CrawlProgress", "CrawlSpec", "Page"]
