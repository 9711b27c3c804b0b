"""Helpers of the namespace tests (tests/test_internet.py): the lab of bench.netlab,
a site served from a lab host, and a small synchronous JSON client.

The lab itself (namespaces, bridge, NAT router, WAN shim) is :mod:`bench.netlab`,
shared with ``python -m bench wan``; here is only what the tests add: skipping
cleanly where namespaces are unavailable, and waiting for figures.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.netlab import Host, Lab, LabPeer, unavailable

__all__ = ["Host", "Lab", "LabPeer", "get", "post", "serve_site", "skip_without_netns", "wait_for"]

SITE_PORT = 8000


def skip_without_netns(nat: bool = False) -> None:
    """Skip the calling test (or fixture) with the reason namespaces are unavailable."""
    why = unavailable(nat=nat)
    if why:
        pytest.skip(f"namespace tests: {why}")


def get(url: str, *, headers: dict[str, str] | None = None, timeout: float = 30.0) -> Any:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def post(url: str, body: Any, *, headers: dict[str, str] | None = None, timeout: float = 30.0) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, logs: list[LabPeer] = ()) -> Any:  # type: ignore[assignment]
    """Poll ``check`` until it returns something truthy; fail naming ``what`` (with the
    peers' log tails) after ``timeout`` s. Errors while polling count as not yet."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, urllib.error.URLError, ValueError, KeyError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(0.3)
    tails = "\n".join(f"--- {p.name}\n{p.tail()}" for p in logs)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})\n{tails}")


def serve_site(lab: Lab, host: Host, root: Path, pages: dict[str, str]) -> str:
    """Write ``pages`` (path -> HTML) under ``root`` and serve them from ``host``;
    the site's base URL."""
    site = root / "site"
    for path, html in pages.items():
        f = site / path.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(html)
    (site / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    lab.spawn_python(
        host, ["-m", "http.server", "--bind", host.ip, "--directory", str(site), str(SITE_PORT)],
        log=root / "site.log",
    )
    url = f"http://{host.ip}:{SITE_PORT}"
    wait_for("the site", lambda: urllib.request.urlopen(url + "/robots.txt", timeout=2).status == 200, 20)
    return url
