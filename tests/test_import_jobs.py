"""Import jobs are jobs: paused, resumed and cancelled like crawls; a peer stopped mid-import
ends the job as cancelled (interrupted, never "done") and deletes its upload."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

N = 300


def jsonl(n: int = N) -> bytes:
    return b"".join(
        json.dumps({"url": f"http://imported.example/{i}", "title": f"page {i}", "text": f"zebra{i} quagga"}).encode()
        + b"\n"
        for i in range(n)
    )


def uploads(peer) -> list[Path]:
    folder = Path(peer.config.data_dir) / "imports"
    return list(folder.iterdir()) if folder.exists() else []


async def paused_import(peer) -> str:
    """An uploaded import paused before it read anything (the way /api/v1/import starts one,
    paused in the same step of the event loop, so nothing depends on timing)."""
    folder = Path(peer.config.data_dir) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "00000000000000aa.upload"
    path.write_bytes(jsonl())
    job = await peer.import_file(path)
    assert peer.control_job(job.id, "pause")
    return job.id


async def act(peer, http, job_id: str, action: str) -> int:
    async with http.post(f"{peer.url}/api/v1/crawl/{job_id}/{action}") as r:
        return r.status


async def test_an_import_pauses_resumes_and_finishes(peer, http):
    job_id = await paused_import(peer)
    async with http.get(f"{peer.url}/api/v1/crawl/{job_id}") as r:
        assert (await r.json())["state"] == "paused"
    assert await act(peer, http, job_id, "pause") == 409  # already
    assert await act(peer, http, job_id, "resume") == 200
    job = await peer.jobs.wait(job_id)
    assert job.state == "done" and job.progress.fetched == N
    assert uploads(peer) == []


async def test_a_cancelled_import_stops_reading_and_deletes_its_upload(peer, http):
    job_id = await paused_import(peer)
    assert len(uploads(peer)) == 1
    assert await act(peer, http, job_id, "cancel") == 200
    job = await peer.jobs.wait(job_id)
    assert job.state == "cancelled" and job.progress.fetched == 0
    assert uploads(peer) == []
    assert await act(peer, http, job_id, "resume") == 409
    async with http.get(f"{peer.url}/api/v1/crawl/{job_id}") as r:
        assert (await r.json())["state"] == "cancelled"


async def test_a_peer_stopped_mid_import_ends_it_cancelled_not_done(make_peer, tmp_path):
    peer = await make_peer(tmp_path / "p")
    job_id = await paused_import(peer)  # mid-import
    await peer.stop()
    assert uploads(peer) == []
    again = await make_peer(tmp_path / "p")
    job = again.get_job(job_id)
    assert job.state == "cancelled" and job.progress.failures["interrupted"] == 1
    assert job.crawler is None and job.task is None  # not relaunched as a crawl


async def test_an_import_a_crash_left_running_is_interrupted_at_the_next_start(make_peer, tmp_path):
    peer = await make_peer(tmp_path / "p")
    job_id = await paused_import(peer)
    leftover = uploads(peer)[0].read_bytes()
    await peer.stop()
    # what a killed peer leaves: the job 'running' on disk and its upload in data/imports
    (Path(peer.config.data_dir) / "imports" / "0123456789abcdef.upload").write_bytes(leftover)
    db = sqlite3.connect(Path(peer.config.data_dir) / "crawl.db")
    db.execute("UPDATE jobs SET state='running' WHERE id=?", (job_id,))
    db.commit()
    db.close()
    again = await make_peer(tmp_path / "p")
    assert again.get_job(job_id).state == "cancelled"
    assert uploads(again) == []


async def test_an_upload_over_the_api_is_a_job_that_can_be_cancelled(peer, http):
    async with http.post(peer.url + "/api/v1/import", data=jsonl(5000)) as r:
        assert r.status == 201
        job_id = (await r.json())["id"]
    status = await act(peer, http, job_id, "cancel")
    job = await peer.jobs.wait(job_id)
    # cancelled while it ran, or (a fast machine) it had finished: never both, never half-done
    assert (status, job.state) in ((200, "cancelled"), (409, "done"))
    assert uploads(peer) == []
