"""yasearch: a peer-to-peer web search engine."""

__version__ = "0.1.0"
