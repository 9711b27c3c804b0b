"""Shared fixtures: started peers (served over HTTP, as yasearch.server serves them),
an HTTP client session, local test sites (crawled by a peer where a test needs
documents), a frontier store and the browser harness. Plain helpers (the
JSON-error check, peer configs, static sites) are in tests/peerutil.py."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

# The project is not necessarily installed; make `crawler` and `tests.site` importable.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from yasearch.crawler.state import FrontierStore  # noqa: E402
from yasearch.crawler.types import CrawlSpec  # noqa: E402
from yasearch.index import LocalIndex  # noqa: E402
from yasearch.peer import Peer  # noqa: E402
from yasearch.server import PeerServer  # noqa: E402
from peerutil import StaticSite, peer_config  # noqa: E402
from tests.site import LocalSite  # noqa: E402


@pytest.fixture
async def make_site() -> AsyncIterator[Callable[..., Awaitable[LocalSite]]]:
    """Factory: ``site = await make_site(robots="...")`` -> a started LocalSite, closed at teardown."""
    sites: list[LocalSite] = []

    async def make(**kwargs: object) -> LocalSite:
        site = LocalSite(**kwargs)  # type: ignore[arg-type]
        sites.append(site)
        return await site.start()

    yield make
    for s in sites:
        await s.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client. Like a browser it keeps cookies from an IP-address host
    (unsafe=True): test peers and sites are on 127.0.0.1."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


# -- peers ------------------------------------------------------------------------


class ServerFactory:
    """``server = await make_server(data_dir=None, **config)`` -> a started PeerServer
    (its ``peer`` and ``app``); ``make_server.of(peer)`` -> the server of a peer.

    Config as :func:`peerutil.peer_config` (any free port, no crawl delay); without a
    ``data_dir`` each gets a fresh one under ``tmp_path``."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.servers: list[PeerServer] = []

    async def __call__(self, data_dir: Path | None = None, **config: Any) -> PeerServer:
        server = PeerServer(peer_config(data_dir or self.tmp_path / f"peer-{len(self.servers) + 1}", **config))
        await server.start()
        self.servers.append(server)
        return server

    def of(self, peer: Peer) -> PeerServer:
        return next(s for s in self.servers if s.peer is peer)

    async def stop_all(self) -> None:
        errors = []
        for server in reversed(self.servers):
            try:
                await server.stop()
            except Exception as e:  # noqa: BLE001 - stop the others, then fail
                errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture
async def make_server(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """Started peer servers, every one stopped at teardown (see ServerFactory)."""
    factory = ServerFactory(tmp_path)
    yield factory
    await factory.stop_all()


@pytest.fixture
def make_peer(make_server: ServerFactory) -> Callable[..., Awaitable[Peer]]:
    """Factory: ``peer = await make_peer(data_dir=None, **config)`` -> a started Peer
    (for several peers, or special config: ``admin_token=...``, ``name=...``)."""

    async def make(data_dir: Path | None = None, **config: Any) -> Peer:
        return (await make_server(data_dir, **config)).peer

    return make


@pytest.fixture
def make_network(make_peer: Callable[..., Awaitable[Peer]], tmp_path: Path) -> Callable[..., Awaitable[list[Peer]]]:
    """Factory: ``peers = await make_network(names, **config)`` -> one started peer per
    name (data dirs ``tmp_path/peer<i>``), joined through the first in two rounds, so
    everybody knows everybody and their info."""

    async def make(names: list[str], **config: Any) -> list[Peer]:
        peers = [await make_peer(tmp_path / f"peer{i}", name=name, **config) for i, name in enumerate(names)]
        boot = [("127.0.0.1", peers[0].port)]
        for p in peers[1:] + peers:
            await p.join(boot)
        return peers

    return make


@pytest.fixture
async def peer_server(make_server: ServerFactory, tmp_path: Path) -> PeerServer:
    """The server of the ``peer`` fixture (for tests that look into its aiohttp app)."""
    return await make_server(tmp_path / "peer")


@pytest.fixture
def peer(peer_server: PeerServer) -> Peer:
    """A started peer on a fresh data dir, stopped at teardown."""
    return peer_server.peer


# -- local sites, crawled ---------------------------------------------------------


@pytest.fixture
async def static_site() -> AsyncIterator[Callable[..., Awaitable[StaticSite]]]:
    """Factory: ``site = await static_site(pages, delay=0.0)`` -> a started
    :class:`peerutil.StaticSite` (``site.url``), stopped at teardown."""
    sites: list[StaticSite] = []

    async def make(pages: dict[str, str], delay: float = 0.0) -> StaticSite:
        site = StaticSite(pages, delay=delay)
        await site.start()
        sites.append(site)
        return site

    yield make
    for site in sites:
        await site.stop()


@pytest.fixture
def crawl_site(static_site: Callable[..., Awaitable[StaticSite]]) -> Callable[..., Awaitable[str]]:
    """Factory: ``url = await crawl_site(peer, pages, **spec)`` serves ``pages`` on a
    local site, has ``peer`` crawl it from ``/`` (depth 50, up to 100 pages, no
    delay unless ``spec`` says otherwise) and waits for the job; returns the site's
    URL (once the peer has settled: re-indexing, publishing). ``host="localhost"`` addresses the site by that name (a second host);
    ``seeds=[paths]`` replaces the start page."""

    async def crawl(peer: Peer, pages: dict[str, str], *, host: str = "127.0.0.1",
                    seeds: list[str] = ["/"], **spec: Any) -> str:  # noqa: B006 - never mutated
        site = await static_site(pages)
        url = site.url.replace("127.0.0.1", host)
        spec = {"depth": 50, "max_pages": 100, "delay": 0.0, **spec}
        job = await peer.start_crawl(CrawlSpec(urls=[url + s for s in seeds], **spec))
        await peer.jobs.wait(job.id)
        # pages whose anchor text grew during the crawl are indexed again, and postings are
        # published, in the background: let that finish, or a ranking may change between two
        # requests of a test (a global search reads the published postings)
        await peer.settle()
        return url

    return crawl


@pytest.fixture
async def crawl_store(tmp_path) -> AsyncIterator[FrontierStore]:
    store = FrontierStore(tmp_path / "crawl.sqlite")
    yield store
    await store.close()


@pytest.fixture
async def browser():
    """Headless Debian Chromium (see tests/browserutil.py); started only by tests that ask."""
    from playwright.async_api import async_playwright

    from browserutil import CHROMIUM_ARGS, chromium_path

    path = chromium_path()
    pw = await async_playwright().start()
    try:
        b = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()
    finally:
        await pw.stop()


@pytest.fixture
async def page(browser):
    """A watched page in a fresh context; the test fails if anything went wrong on it."""
    from browserutil import Watched

    context = await browser.new_context()
    w = Watched(await context.new_page())
    yield w
    await context.close()
    w.check()


@pytest.fixture
async def make_index(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[LocalIndex]]]:
    """Factory: ``ix = await make_index(**settings)`` -> an open LocalIndex in a fresh
    directory, closed at teardown."""
    opened: list[LocalIndex] = []

    async def make(**settings: Any) -> LocalIndex:
        ix = LocalIndex(tmp_path / f"ix{len(opened)}", **settings)
        await ix.open()
        opened.append(ix)
        return ix

    yield make
    for ix in opened:
        await ix.close()


@pytest.fixture
def prior_on() -> Iterator[float]:
    """The link-graph prior (off by default, see yasearch.ranking.FieldWeights) switched on
    at 0.5 in this process for one test: its in-process peers and indexes use it (with
    the writer thread: a writer process imports its own default)."""
    from yasearch.ranking import DEFAULT_WEIGHTS

    old = DEFAULT_WEIGHTS.prior
    object.__setattr__(DEFAULT_WEIGHTS, "prior", 0.5)  # frozen dataclass: the one default instance
    yield 0.5
    object.__setattr__(DEFAULT_WEIGHTS, "prior", old)
