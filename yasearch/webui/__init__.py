"""The browser UI: server-rendered search pages, a crawl console and a status page.

It sits on top of the peer and talks to it only through ``Peer``'s public methods
(the same ones the JSON API uses), so the UI can never see more than an API client.
"""

from yasearch.webui.routes import setup

__all__ = ["setup"]
