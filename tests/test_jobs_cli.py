"""Job control: `yasearch jobs` (list, pause, resume, cancel, delete), DELETE
/api/v1/crawl/{id} for finished jobs, --peer as HOST:PORT, help for every flag,
plurals."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from peerutil import PeerProcess, StaticSite, assert_json_error, free_port, linked_pages
from test_cli import yasearch
from yasearch.cli import build_parser
from yasearch.units import duration, plural, size


async def test_a_finished_job_can_be_deleted_a_running_one_not(peer, http, crawl_site, static_site) -> None:
    await crawl_site(peer, linked_pages(3))
    (done,) = peer.list_jobs()
    assert done.state == "done" and done.progress.queued == 0
    slow = await static_site(linked_pages(3), delay=0.5)
    running = (await (await http.post(peer.url + "/api/v1/crawl", json={"urls": [slow.url + "/"], "delay": 0})).json())["id"]
    r = await http.delete(f"{peer.url}/api/v1/crawl/{running}")
    await assert_json_error(r, 409, "bad_state")
    r = await http.delete(f"{peer.url}/api/v1/crawl/{done.id}")
    assert r.status == 200 and (await r.json())["id"] == done.id
    assert (await http.get(f"{peer.url}/api/v1/crawl/{done.id}")).status == 404
    listed = (await (await http.get(peer.url + "/api/v1/crawl")).json())["jobs"]
    assert [j["id"] for j in listed] == [running]
    r = await http.delete(f"{peer.url}/api/v1/crawl/{done.id}")
    await assert_json_error(r, 404, "no_such_job")
    assert peer.control_job(running, "cancel")
    await peer.jobs.wait(running)


@pytest.fixture
async def site() -> StaticSite:
    s = StaticSite(linked_pages(4))
    await s.start()
    yield s
    await s.stop()


async def test_the_jobs_command(tmp_path: Path, site: StaticSite) -> None:
    p = PeerProcess(tmp_path / "data", free_port())
    await p.start()
    hostport = f"127.0.0.1:{p.port}"  # --peer takes HOST:PORT like --bootstrap
    try:
        empty = await yasearch("jobs", "--peer", hostport)
        assert empty.rc == 0 and "no crawl jobs" in empty.out, empty
        crawl = await yasearch("crawl", site.url, "--delay", "0", "--peer", hostport)
        assert crawl.rc == 0, crawl
        listed = await yasearch("jobs", "list", "--peer", hostport)
        assert listed.rc == 0, listed
        job_id, state = listed.out.split()[:2]
        assert state == "done" and "3 pages indexed" in listed.out  # depth 2 and site.url in listed.out, listed
        bad = await yasearch("jobs", "pause", job_id, "--peer", hostport)
        assert bad.rc == 1 and "cannot pause a job that is done" in bad.err, bad
        missing = await yasearch("jobs", "cancel", "--peer", hostport)
        assert missing.rc == 2 and "give the job IDs" in missing.err, missing
        gone = await yasearch("jobs", "delete", "--finished", "--peer", hostport)
        assert gone.rc == 0 and f"deleted {job_id} (done)" in gone.out, gone
        assert "no crawl jobs" in (await yasearch("jobs", "--peer", hostport)).out
    finally:
        assert p.terminate() == 0


def test_every_flag_has_help() -> None:
    missing = []
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += [f"{name} {a.option_strings or a.dest}" for a in sub._actions if not a.help]
    assert missing == []


def test_plurals_and_durations() -> None:
    assert [plural(1, "result"), plural(2, "result"), plural(1060, "host")] == ["1 result", "2 results", "1,060 hosts"]
    assert [duration(4.6), duration(158.6), duration(3600), duration(93784)] == ["5 s", "2 min 39 s", "1 h", "1 d 2 h"]
    assert [size(999), size(1536), size(5 * 1024 * 1024)] == ["999 B", "1.5 KiB", "5.0 MiB"]
