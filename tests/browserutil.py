"""Shared harness of the browser tests: Debian's Chromium under Playwright, watched pages.

CI installs chromium (see .ci/run); a missing browser fails these tests with a message
rather than skipping them, so a broken CI setup cannot hide behind a green run.
Every page is watched for JavaScript errors, console errors (a Content-Security-Policy
violation is one) and dialogs (an alert() would mean injected script ran).
The ``browser`` and ``page`` fixtures live in conftest.py.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
from playwright.async_api import Page, expect

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 20_000  # generous upper bounds for slow CI machines; nothing waits for them when all is well
expect.set_options(timeout=TIMEOUT_MS)


def chromium_path() -> str:
    path = os.environ.get("YASEARCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"no Chromium at {path!r}: the browser tests need Debian's chromium "
            "(apt-get install chromium, as .ci/run does) or YASEARCH_CHROMIUM=/path/to/chrome",
            pytrace=False,
        )
    return path


class Watched:
    """A page plus everything that went wrong on it."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda e: self.problems.append(f"JavaScript error: {e}"))
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console error: {m.text}"))
        page.set_default_timeout(TIMEOUT_MS)

    async def _dialog(self, dialog: Any) -> None:
        self.problems.append(f"a {dialog.type} dialog fired: {dialog.message!r} (injected script ran)")
        await dialog.dismiss()

    def check(self) -> None:
        assert not self.problems, self.problems


async def submit_crawl_form(p: Page, url: str, **fields: object) -> tuple[Any, str]:
    """On the crawl console: type ``url`` (and the other form ``fields``, by input id),
    submit, and wait for the new job's row; returns (row locator, job id)."""
    await p.fill("#urls", url)
    for name, value in fields.items():
        await p.fill(f"#{name}", str(value))
    await p.click("#crawl-submit")
    await expect(p.locator("#form-message")).to_contain_text("Started job")
    row = p.locator("tbody.job[data-job-id]")
    await expect(row).to_have_count(1)
    return row, await row.get_attribute("data-job-id")


async def watch_fetched(p: Page) -> list[int]:
    """Sample the job row's "Fetched" cell from inside the page until it has shown three
    values (the page's own updates, no reload); returns them."""
    seen = await p.wait_for_function(
        """() => {
            const el = document.querySelector('tbody.job[data-job-id] [data-field="fetched"]');
            window.__seen = window.__seen || [];
            if (el && !window.__seen.includes(el.textContent)) window.__seen.push(el.textContent);
            return window.__seen.length >= 3 && window.__seen;
        }""",
        polling=50,
    )
    return [int(v.replace(",", "")) for v in await seen.json_value()]
