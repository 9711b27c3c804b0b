"""Shared fixtures. Crawler: local test sites, an HTTP client session, a frontier store."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

# The project is not necessarily installed; make `crawler` and `tests.site` importable.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from yasearch.crawler.state import FrontierStore  # noqa: E402
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
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


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
