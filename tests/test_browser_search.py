"""The search page in headless Chromium: autocomplete, facets, phone width, dark mode, keyboard.

Like tests/test_browser.py, every page is watched for JavaScript errors, console errors
(a Content-Security-Policy violation is one) and dialogs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Page, expect

from browserutil import Watched

pytestmark = pytest.mark.browser

LONG_PATH = "/" + "-".join(["averyveryverylongpathsegment"] * 12) + "?and=" + "x" * 200
LONG_WORD = "Supercalifragilisticexpialidocious" * 4


def site_pages(n: int, lang: str, word: str, extra_link: str = "") -> dict[str, str]:
    out = {}
    for i in range(n):
        path = "/" if i == 0 else f"/p{i}"
        nxt = f'<a href="/p{i + 1}">next</a>' if i + 1 < n else ""
        more = f'<a href="{extra_link}">long</a>' if i == 0 and extra_link else ""
        out[path] = (
            f'<html lang="{lang}"><head><title>{word.title()} page {i} {word}{i}</title></head>'
            f"<body><p>zebras and {word} number {i}, with stripes.</p>{nxt}{more}</body></html>"
        )
    return out


@pytest.fixture
async def new_page(browser):
    contexts = []
    watched: list[Watched] = []

    async def make(**kw: Any) -> Page:
        context = await browser.new_context(**kw)
        contexts.append(context)
        w = Watched(await context.new_page())
        watched.append(w)
        return w.page

    yield make
    for c in contexts:
        await c.close()
    for w in watched:
        w.check()


@pytest.fixture
async def peer(peer, crawl_site):
    """The peer after crawling an English site on 127.0.0.1 (with one very long URL and
    title) and a German one addressed as localhost: two hosts, two languages."""
    long_page = (
        f"<html lang='en'><head><title>{LONG_WORD}</title></head>"
        "<body><p>zebras on a page with a very long address</p></body></html>"
    )
    en = {**site_pages(6, "en", "english", extra_link=LONG_PATH), LONG_PATH.split("?")[0]: long_page}
    await crawl_site(peer, en, depth=10, max_pages=20)
    await crawl_site(peer, site_pages(3, "de", "deutsch"), host="localhost", depth=10, max_pages=20)
    assert peer.index.doc_count() == 6 + 1 + 3
    return peer


async def test_autocomplete_with_the_keyboard(peer, new_page):
    p = await new_page()
    await p.goto(peer.url + "/")
    box = p.get_by_role("searchbox", name="Search query")
    await expect(box).to_be_focused()
    await box.press_sequentially("engl")
    listbox = p.get_by_role("listbox", name="Suggestions")
    await expect(listbox).to_be_visible()
    options = listbox.get_by_role("option")
    await expect(options.first).to_have_text("english")
    assert 2 <= await options.count() <= 8
    await expect(box).to_have_attribute("aria-expanded", "true")
    await expect(box).to_have_attribute("aria-controls", await listbox.get_attribute("id"))

    # down twice, up once: the first option is highlighted and in the box
    await box.press("ArrowDown")
    await box.press("ArrowDown")
    await box.press("ArrowUp")
    first = options.first
    await expect(first).to_have_attribute("aria-selected", "true")
    await expect(box).to_have_attribute("aria-activedescendant", await first.get_attribute("id"))
    await expect(box).to_have_value("english")

    # Escape closes the list and restores what was typed
    await box.press("Escape")
    await expect(listbox).to_be_hidden()
    await expect(box).to_have_value("engl")
    await expect(box).not_to_have_attribute("aria-activedescendant", "english")

    # type on, pick the second suggestion with the keyboard: it is searched
    await box.press_sequentially("i")
    await expect(listbox).to_be_visible()
    second_text = await options.nth(1).text_content()
    await box.press("ArrowDown")
    await box.press("ArrowDown")
    await box.press("Enter")
    await p.wait_for_url("**/search?q=" + second_text)
    await expect(p.locator("li.result")).to_have_count(1)
    await expect(p.locator("li.result .title a")).to_contain_text(second_text)


async def test_autocomplete_with_the_mouse_and_slash_shortcut(peer, new_page):
    p = await new_page()
    await p.goto(peer.url + "/search?q=zebras")
    box = p.get_by_role("searchbox", name="Search query")
    await p.locator("h1, #summary").first.click()  # focus away from the box
    await expect(box).not_to_be_focused()
    await p.keyboard.press("/")
    await expect(box).to_be_focused()
    await expect(box).to_have_value("zebras")  # "/" was not typed into the box
    await box.fill("")
    await box.press_sequentially("zebras deuts")
    option = p.get_by_role("option", name="zebras deutsch", exact=True)
    await option.click()
    await p.wait_for_url("**/search?q=zebras+deutsch")
    # 3 pages have both words: fewer than 10, so pages with one follow, and the page says so
    await expect(p.locator("#relaxed")).to_be_visible()
    await expect(p.locator("li.result")).to_have_count(10)


async def test_host_facet_refines_the_results(peer, new_page):
    p = await new_page()
    await p.goto(peer.url + "/search?q=zebras")
    await expect(p.locator("#summary")).to_contain_text("10 results")
    facets = p.get_by_role("complementary", name="Refine the results")
    await expect(facets.locator("#facet-host a.facet-link")).to_have_count(2)
    await facets.locator('#facet-host a[data-value="localhost"]').click()
    await p.wait_for_url("**/search?q=zebras+site%3Alocalhost")
    await expect(p.locator("#summary")).to_contain_text("3 results")
    hosts = {urlsplit(h).hostname for h in await p.locator("li.result .title a").evaluate_all("els => els.map(e => e.href)")}
    assert hosts == {"localhost"}
    active = p.locator('#facet-host a.facet-link.active[data-value="localhost"]')
    await expect(active).to_have_attribute("aria-current", "true")
    # the language facet narrows further; following the active host removes site:
    await p.locator('#facet-language a[data-value="de"]').click()
    await p.wait_for_url("**/search?q=zebras+site%3Alocalhost+lang%3Ade")
    await expect(p.locator("li.result")).to_have_count(3)
    await p.locator('#facet-host a[data-value="localhost"]').click()
    await expect(p.locator("#q")).to_have_value("zebras lang:de")
    assert parse_qs(urlsplit(p.url).query)["q"] == ["zebras lang:de"]
    await expect(p.locator("li.result")).to_have_count(3)


@pytest.mark.parametrize("width", [375, 320])
async def test_no_horizontal_overflow_at_phone_width(peer, new_page, tmp_path, width):
    p = await new_page(viewport={"width": width, "height": 740}, is_mobile=True, has_touch=True)
    for name, path in [
        ("results", "/search?q=zebras"),
        ("long-url", "/search?q=address"),
        ("home", "/"),
        ("status", "/status"),
        ("empty", "/search?q=zebras+nosuchwordatall+site:nowhere.example"),
    ]:
        await p.goto(peer.url + path)
        shot = tmp_path / f"{name}-{width}.png"
        await p.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 0
        fits = await p.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        widths = await p.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert fits, f"{path} overflows at {width}px: {widths}"
    # the long URL is on the page, shortened by CSS rather than cut in the markup
    await p.goto(peer.url + "/search?q=address")
    url_el = p.locator("li.result .url").first
    await expect(url_el).to_contain_text("averyveryverylongpathsegment")
    box = await url_el.bounding_box()
    assert box is not None and box["x"] + box["width"] <= width


async def test_dark_mode_follows_the_system(peer, new_page):
    p = await new_page()
    background = "getComputedStyle(document.body).backgroundColor"
    text = "getComputedStyle(document.body).color"
    await p.emulate_media(color_scheme="light")
    await p.goto(peer.url + "/search?q=zebras")
    light_bg, light_fg = await p.evaluate(background), await p.evaluate(text)
    await p.emulate_media(color_scheme="dark")
    dark_bg, dark_fg = await p.evaluate(background), await p.evaluate(text)
    assert light_bg != dark_bg and light_fg != dark_fg

    def luminance(css: str) -> float:
        r, g, b = (int(x) for x in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    assert luminance(dark_bg) < 60 < 200 < luminance(light_bg)
    assert luminance(dark_fg) > 180  # light text on the dark background


async def test_search_without_javascript_still_works(peer, new_page):
    p = await new_page(java_script_enabled=False)
    await p.goto(peer.url + "/")
    await p.fill("#q", "engl")
    await expect(p.locator("[role=listbox]")).to_have_count(0)
    await p.fill("#q", "zebras")
    await p.press("#q", "Enter")
    await p.wait_for_url("**/search?q=zebras")
    await expect(p.locator("li.result")).to_have_count(10)
    await p.locator('#facet-language a[data-value="de"]').click()
    await expect(p.locator("li.result")).to_have_count(3)


async def test_autocomplete_offers_what_follows_the_word_before(peer, new_page):
    p = await new_page()
    await p.goto(peer.url + "/")
    box = p.get_by_role("searchbox", name="Search query")
    await box.press_sequentially("very lo")
    # "long" follows "very" in a page's text ("a very long address"), though no title has it
    options = p.get_by_role("listbox", name="Suggestions").get_by_role("option")
    await expect(options).to_have_count(1)
    await expect(options.first).to_have_text("very long")
