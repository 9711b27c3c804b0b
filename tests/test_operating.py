"""Running a public peer: the shipped example config documents every key, the
systemd unit verifies, a browser's 404 is a page of the site, every page links the
API docs, and docs/operating.md covers what an operator needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from peerutil import ROOT
from test_cli import yasearch
from yasearch.config import Config, ConfigError


async def test_config_example_documents_every_key_and_loads(tmp_path: Path) -> None:
    run = await yasearch("config", "--example")
    assert run.rc == 0, run
    keys = {line[2:].split(" = ", 1)[0] for line in run.out.splitlines() if line.startswith("# ") and " = " in line}
    assert keys == {f.name for f in fields(Config)}
    uncommented = "\n".join(line[2:] if line.startswith("# ") and " = " in line else line for line in run.out.splitlines())
    path = tmp_path / "peer.toml"
    path.write_text(uncommented.replace("VERSION", "0"))
    assert isinstance(tomllib.loads(path.read_text()), dict)
    check = await yasearch("config", "--check", str(path))
    assert check.rc == 0 and "ok" in check.out, check
    path.write_text("prot = 1\n")
    bad = await yasearch("config", "--check", str(path))
    assert bad.rc == 2 and "unknown config keys: prot" in bad.err, bad


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    exe = tmp_path / "yasearch"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} -m yasearch \"$@\"\n")
    exe.chmod(0o755)
    unit = tmp_path / "yasearch.service"
    unit.write_text((ROOT / "contrib" / "yasearch.service").read_text().replace("/opt/yasearch/bin/yasearch", str(exe)))
    run = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "yasearch.service" not in run.stderr, run.stderr  # no warning about our unit


async def test_a_browser_gets_a_404_page_with_the_sites_navigation(peer, http) -> None:
    r = await http.get(peer.url + "/no/such/page")
    assert r.status == 404 and r.content_type == "text/html"
    html = await r.text()
    assert "Page not found" in html and "/no/such/page" in html
    assert 'href="/status"' in html and 'href="/api/v1/docs"' in html
    api = await http.get(peer.url + "/api/v1/nothing")
    assert api.status == 404 and api.content_type == "application/json"


async def test_every_page_links_the_api_docs_and_the_docs_link_back(peer, http) -> None:
    for path in ("/", "/search?q=zebras", "/network", "/status", "/crawl", "/index"):
        html = await (await http.get(peer.url + path)).text()
        assert '<a href="/api/v1/docs">API docs</a>' in html, path
    docs = await (await http.get(peer.url + "/api/v1/docs")).text()
    assert '<a href="/">Search</a>' in docs and '<a href="/status">Status</a>' in docs


def test_the_operating_guide_covers_a_public_peer() -> None:
    guide = (ROOT / "docs" / "operating.md").read_text()
    for topic in ("UDP", "port forwarding", "admin_token", "reverse proxy", "TLS", "Backups", "Upgrades",
                  "Uninstall", "yasearch config --example", "contrib/yasearch.service", "/metrics"):
        assert topic in guide, topic
    readme = (ROOT / "README.md").read_text()
    assert "docs/operating.md" in readme and "/index" in readme


def test_boolean_config_keys_read_words_and_refuse_anything_else():
    assert Config.from_dict({"allow_private_networks": "false"}).allow_private_networks is False
    assert Config.from_dict({"allow_private_networks": "yes"}).allow_private_networks is True
    assert Config.from_dict({"allow_private_networks": True}).allow_private_networks is True
    with pytest.raises(ConfigError, match="allow_private_networks"):
        Config.from_dict({"allow_private_networks": "maybe"})
