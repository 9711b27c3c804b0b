"""A peer that runs for months: its log file and access log, and a status page in
human units whose publish backlog explains itself."""

from __future__ import annotations

import re
from logging.handlers import RotatingFileHandler
from pathlib import Path

import aiohttp

from peerutil import PeerProcess, free_port, linked_pages
from test_cli import yasearch
from yasearch.logsetup import MAX_BYTES, access_logger


async def test_access_log_and_log_file(tmp_path: Path) -> None:
    access, logfile = tmp_path / "access.log", tmp_path / "peer.log"
    p = PeerProcess(tmp_path / "data", free_port(), "--access-log", str(access), "--log-file", str(logfile))
    await p.start()
    try:
        async with aiohttp.ClientSession() as s, s.get(p.url + "/api/v1/status", headers={"User-Agent": "probe/1"}) as r:
            assert r.status == 200
    finally:
        assert p.terminate() == 0
    lines = access.read_text().splitlines()
    hit = [line for line in lines if '"GET /api/v1/status HTTP/1.1" 200' in line]
    assert hit and hit[-1].startswith("127.0.0.1 [") and '"probe/1"' in hit[-1], lines
    assert logfile.exists()


def test_the_access_log_rotates(tmp_path: Path) -> None:
    logger = access_logger(str(tmp_path / "a.log"))
    (handler,) = logger.handlers
    assert isinstance(handler, RotatingFileHandler) and handler.maxBytes == MAX_BYTES and handler.backupCount > 0
    handler.close()


async def test_the_status_page_speaks_human_units_and_explains_the_backlog(peer, http, crawl_site) -> None:
    await crawl_site(peer, linked_pages(3))
    await peer.index.flush()
    page = await (await http.get(peer.url + "/status")).text()
    assert "Uptime (s)" not in page
    assert re.search(r"<dt>Uptime</dt><dd>\d+ (s|min)", page), page
    assert re.search(r"<dt>P2P bytes sent</dt><dd>\d+(\.\d)? (B|KiB|MiB)</dd>", page), page
    status = await peer.status()
    assert status["publish"]["pending"] == 3  # alone: the postings wait for other peers, and say so
    assert "3 documents (or withdrawals) wait for other peers" in page and "--bootstrap" in page
    cli = await yasearch("status", "--peer", peer.url)
    assert re.search(r"version \S+, up \d+ (s|min)", cli.out), cli
