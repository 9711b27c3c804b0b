"""Routes of the browser UI: every page, registered through the route table.

Admin pages are declared ``admin=True`` with the page that refuses a client
(yasearch.middleware applies the rule); the handlers never check it themselves.
The pages live in :mod:`.searchpages`, :mod:`.crawlpages`, :mod:`.netpages` and
:mod:`.indexbrowser`; what they share in :mod:`.render`.
"""

from __future__ import annotations

from aiohttp import web

from yasearch.webui import crawlpages, indexbrowser, netpages, searchpages
from yasearch.httpkit import NOT_FOUND_PAGE
from yasearch.webui.render import JINJA, STATIC, make_env, page, render


def setup(app: web.Application) -> None:
    """Mount the UI on the peer's app (called by yasearch.app.build_app, which set the peer)."""
    app[JINJA] = make_env()
    page(app, "GET", "/", searchpages.home)
    page(app, "GET", "/search", searchpages.search)
    page(app, "GET", "/crawl", crawlpages.crawl_page, admin=True, refuse=crawlpages.refuse)
    page(app, "POST", "/crawl", crawlpages.crawl_submit, admin=True, refuse=crawlpages.refuse)
    page(app, "POST", "/crawl/login", crawlpages.crawl_login)
    page(app, "POST", "/crawl/{id}/{action:pause|resume|cancel|delete}", crawlpages.crawl_action, admin=True,
         refuse=crawlpages.refuse)
    page(app, "GET", "/network", netpages.network_page)
    page(app, "GET", "/status", netpages.status_page)
    page(app, "GET", "/index", indexbrowser.index_page, admin=True, refuse=indexbrowser.refuse)
    page(app, "GET", "/index/host", indexbrowser.host_page, admin=True, refuse=indexbrowser.refuse)
    page(app, "GET", "/index/remove", indexbrowser.confirm_page, admin=True, refuse=indexbrowser.refuse)
    page(app, "POST", "/index/remove", indexbrowser.remove_submit, admin=True, refuse=indexbrowser.refuse)
    page(app, "POST", "/index/login", indexbrowser.index_login)
    app.router.add_static("/static/", STATIC, name="static")
    app[NOT_FOUND_PAGE] = not_found


async def not_found(request: web.Request) -> web.Response:
    """The 404 page: the site's navigation and where to go instead."""
    return render(request, "not_found.html", status=404, page_title="Not found", path=request.path)
