"""Your data in and out: export the local index as JSON Lines, import JSON Lines or WARC,
download a crawl's WARC file. Admin routes; bodies are streamed both ways."""

from __future__ import annotations

import secrets
from pathlib import Path

from aiohttp import web

from yasearch import apimodels as m
from yasearch.errors import ApiError
from yasearch.httpkit import PEER_KEY, route

#: Largest import accepted (bytes); the body is streamed to disk, never held in memory.
MAX_IMPORT_BYTES = 20 * 1024**3


async def export(request: web.Request) -> web.StreamResponse:
    peer = request.app[PEER_KEY]
    resp = web.StreamResponse(headers={
        "Content-Type": "application/x-ndjson; charset=utf-8",
        "Content-Disposition": 'attachment; filename="yasearch-export.jsonl"',
    })
    await resp.prepare(request)
    async for line in peer.export_lines():
        await resp.write(line)
    await resp.write_eof()
    return resp


async def import_(request: web.Request) -> web.Response:
    peer = request.app[PEER_KEY]
    folder = Path(peer.config.data_dir) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{secrets.token_hex(8)}.upload"
    size = 0
    try:
        with open(path, "wb") as f:
            async for chunk in request.content.iter_chunked(256 * 1024):
                size += len(chunk)
                if size > MAX_IMPORT_BYTES:
                    raise ApiError(413, "too_large", f"an import is at most {MAX_IMPORT_BYTES} bytes")
                f.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise ApiError(400, "empty", "the body is empty: send a JSON Lines or WARC file")
    job = await peer.import_file(path)
    return web.json_response({"id": job.id, "state": job.state}, status=201)


async def crawl_warc(request: web.Request) -> web.StreamResponse:
    peer = request.app[PEER_KEY]
    job = peer.get_job(request.match_info["id"])
    path = peer.jobs.warc_path(job.id) if job is not None else None
    if job is None or path is None or not path.exists():
        raise ApiError(404, "no_warc", "no WARC file for this job (start it with \"warc\": true)")
    return web.FileResponse(path, headers={"Content-Type": "application/warc"})


def setup(app: web.Application) -> None:
    route(app, "GET", "/api/v1/export", export, tag="index", admin=True,
          summary="This peer's local index as JSON Lines: url, title, text, description, language, crawled_at (admin)",
          response={"application/x-ndjson": None})
    route(app, "POST", "/api/v1/import", import_, tag="index", admin=True,
          summary="Index a JSON Lines export or a WARC file (.warc, .warc.gz) as a job, then publish it (admin)",
          description="The body is the file, streamed. Progress: GET /api/v1/crawl/{id}; skipped records "
          "are counted by reason in `skip_reasons`.",
          body={"application/octet-stream": None}, response=m.CrawlStarted, status=201, errors=(400, 413))
    route(app, "GET", "/api/v1/crawl/{id}/warc", crawl_warc, tag="crawl", admin=True,
          summary="The WARC file a job with \"warc\": true wrote (admin)", response={"application/warc": None},
          errors=(404,), path_params={"id": "the job's ID"})
