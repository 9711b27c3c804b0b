"""The crawl console's server side: seed list uploads and live progress.

* **Seed list files.** ``POST /api/v1/crawl`` (and the console's plain form at
  ``POST /crawl``) also accept ``multipart/form-data``: the crawl form's fields as
  text plus a ``seeds`` file such as ``seeds.txt`` (UTF-8, one URL per line, ``#``
  starts a comment, per-line options as in :mod:`yasearch.seedlist`: one job per
  distinct option set, see :func:`crawl_specs`). Everything is bounded: the file by :data:`SEED_FILE_MAX_BYTES`,
  its URLs by ``MAX_URLS``, every other field by :data:`FORM_FIELD_MAX_BYTES`. The
  result goes through :func:`yasearch.apiparams.parse_crawl_spec`, the one set of rules for
  every way a crawl is started.
* **Live progress.** ``GET /api/v1/crawl/events`` (every job) and
  ``GET /api/v1/crawl/{id}/events`` (one job) are Server-Sent Events streams: a
  ``data:`` line of JSON at once, then whenever something changed (at most one per
  second while counters move, at once when a job changes state, and once a second
  while a job runs), and a comment as heartbeat. The one-job stream ends with an
  ``end`` event when the job is finished; every stream ends with a ``bye`` event
  when the peer shuts down (an ``on_shutdown`` hook wakes them, so stopping the
  server never waits on an open stream), and after :data:`SSE_MAX_AGE` seconds (the
  browser's EventSource reconnects by itself). Jobs in events carry their first
  :data:`EVENT_SEED_URLS` seed URLs and ``spec.url_count``, not a list of 10,000
  URLs once a second.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Mapping

from aiohttp import web

from yasearch.apimodels import MAX_URLS
from yasearch.apiparams import parse_crawl_spec
from yasearch.crawler.types import CrawlSpec
from yasearch.errors import ApiError
from yasearch.httpkit import PEER_KEY, route
from yasearch.seedlist import Seed, describe_errors, group_by_options, parse_seed_lines

SEED_FILE_MAX_BYTES = 1024 * 1024
FORM_FIELD_MAX_BYTES = 1024 * 1024
#: The form's text fields; the file is SEED_FILE_FIELD.
FORM_FIELDS = ("urls", "depth", "max_pages", "delay", "allow", "deny", "same_site")
SEED_FILE_FIELD = "seeds"
MAX_FORM_BYTES = SEED_FILE_MAX_BYTES + len(FORM_FIELDS) * FORM_FIELD_MAX_BYTES

#: '#' at the start of a line or after whitespace starts a comment ('#' inside a URL is a fragment).


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


def parse_seed_file(data: bytes, filename: str = "") -> list[str]:
    """The URLs of a seed list file; ApiError with a message naming the file (and line) otherwise."""
    return [s.url for s in read_seed_file(data, filename)]


def read_seed_file(data: bytes, filename: str = "") -> list[Seed]:
    """The seeds (URL, line, per-line options) of a seed list file; ApiError naming the file
    and every unusable line otherwise."""
    name = (filename or "the seed file")[:100]
    if len(data) > SEED_FILE_MAX_BYTES:
        raise ApiError(
            413,
            "seed_file_too_large",
            f"{name} is larger than {_mib(SEED_FILE_MAX_BYTES)}, the limit for a seed list file; split it into several jobs",
        )
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is fine
    except UnicodeDecodeError as e:
        raise ApiError(
            400,
            "seed_file_not_utf8",
            f"{name} is not UTF-8 text (bad byte at offset {e.start}); save it as plain UTF-8 text, one URL per line",
        ) from None
    if "\x00" in text:
        raise ApiError(400, "seed_file_not_text", f"{name} is not a text file; a seed list is plain text, one URL per line")
    seeds, errors = parse_seed_lines(text)
    if errors:
        raise ApiError(400, "bad_seed_file", describe_errors(name, sorted(errors)))
    if len(seeds) > MAX_URLS:
        raise ApiError(413, "too_many_urls", f"{name} lists more than {MAX_URLS:,} URLs (line {seeds[MAX_URLS].line}); split it into several jobs")
    if not seeds:
        raise ApiError(
            400,
            "empty_seed_file",
            f"{name} has no URLs: list one http(s) URL per line (lines starting with # are comments)",
        )
    return seeds


def _lines(text: str) -> list[str]:
    return [s.strip() for s in text.splitlines() if s.strip() and not s.strip().startswith("#")]


def form_body(form: Mapping[str, str], seed_urls: list[str] | None = None) -> dict[str, Any]:
    """The crawl form's text fields (plus a seed file's URLs) as a body for parse_crawl_spec."""
    body: dict[str, Any] = {
        "urls": _lines(form.get("urls", "")) + list(seed_urls or []),
        "allow": _lines(form.get("allow", "")),
        "deny": _lines(form.get("deny", "")),
        "same_site": form.get("same_site", "").strip().lower() not in ("", "0", "false", "off", "no"),
    }
    for name in ("depth", "max_pages", "delay"):
        raw = form.get(name, "").strip()
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            raise ApiError(400, "bad_parameter", f"{name.replace('_', ' ')} must be a number.") from None
        body[name] = int(value) if value.is_integer() else value
    return body


def crawl_specs(form: Mapping[str, str], seeds: list[Seed]) -> list[CrawlSpec]:
    """The jobs a crawl form with a seed list file starts, like ``seeds.txt``: one per distinct
    set of per-line options. The form's URLs and the lines without options share the form's
    job; each option set gets its own, with the form's fields and the line's options over them.
    Every spec is checked before any job starts."""
    plain = [s.url for s in seeds if not s.options]
    specs = []
    if plain or _lines(form.get("urls", "")) or len(plain) == len(seeds):
        specs.append(parse_crawl_spec(form_body(form, plain)))
    for options, urls in group_by_options([s for s in seeds if s.options]):
        # the lines' options were checked against the same bounds (yasearch.seedlist)
        specs.append(parse_crawl_spec({**form_body(form), **options, "urls": urls}))
    return specs


class _Budget:
    """Bytes left for the whole form, whatever its parts are."""

    def __init__(self, total: int) -> None:
        self.left = total

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise ApiError(413, "too_large", f"the form is larger than {_mib(MAX_FORM_BYTES)}; a seed list file may have at most {_mib(SEED_FILE_MAX_BYTES)}")


async def _read_part(part: Any, limit: int, budget: _Budget) -> bytes | None:
    """The part's bytes, or None when it is larger than ``limit`` (then it is read
    to its end and dropped, so the fields after it can still be read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await part.read_chunk(64 * 1024)
        if not chunk:
            return b"".join(chunks) if size <= limit else None
        budget.take(len(chunk))
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        else:
            chunks.clear()


async def read_crawl_form(request: web.Request, form: dict[str, str] | None = None) -> tuple[dict[str, str], list[Seed]]:
    """A multipart/form-data crawl request: (text fields, seeds of the seed file if one was sent).

    Streamed part by part with a bound on each and on the whole, so a large upload
    is refused without being held in memory. The text fields go into ``form`` as
    they are read, so a caller can show them again with the error; a bad seed file
    is reported after the whole form was read, for the same reason.
    """
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise ApiError(413, "too_large", f"the form is larger than {_mib(MAX_FORM_BYTES)}; a seed list file may have at most {_mib(SEED_FILE_MAX_BYTES)}")
    form = {} if form is None else form
    seeds: list[Seed] = []
    problem: ApiError | None = None
    budget = _Budget(MAX_FORM_BYTES)
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            name = part.name or ""
            if name == SEED_FILE_FIELD:
                filename = getattr(part, "filename", None) or ""
                data = await _read_part(part, SEED_FILE_MAX_BYTES, budget)
                if data is None:
                    problem = problem or ApiError(
                        413,
                        "seed_file_too_large",
                        f"{filename[:100] or 'the seed file'} is larger than {_mib(SEED_FILE_MAX_BYTES)}, "
                        "the limit for a seed list file; split it into several jobs",
                    )
                elif data or filename:  # an empty part without a name: no file was chosen
                    try:
                        seeds += read_seed_file(data, filename)
                    except ApiError as e:
                        problem = problem or e
            elif name in FORM_FIELDS:
                data = await _read_part(part, FORM_FIELD_MAX_BYTES, budget)
                if data is None:
                    raise ApiError(413, "too_large", f"the field {name} is larger than {_mib(FORM_FIELD_MAX_BYTES)}")
                form[name] = data.decode("utf-8", errors="replace")
            else:
                raise ApiError(400, "bad_request", f"unknown form field {name[:40]!r}")
    except ApiError:
        raise
    except (ValueError, RuntimeError, AssertionError, LookupError):
        raise ApiError(400, "bad_form", "the multipart/form-data body could not be read") from None
    if problem is not None:
        raise problem
    return form, seeds


def is_multipart(request: web.Request) -> bool:
    return request.content_type == "multipart/form-data"


# -- live progress (Server-Sent Events) ----------------------------------------------

#: One Event per open stream; set by the on_shutdown hook to end them all.
SSE_STREAMS: web.AppKey[set[asyncio.Event]] = web.AppKey("crawl_event_streams", set)
SSE_TICK = 0.25  # how often a stream looks at the jobs (and notices a gone client)
SSE_INTERVAL = 1.0  # at most one event per this many seconds, unless a state changed
SSE_HEARTBEAT = 15.0  # a comment line when nothing was sent for this long
SSE_MAX_AGE = 3600.0  # then the stream ends and EventSource reconnects
SSE_RETRY_MS = 2000
MAX_SSE_STREAMS = 64


#: Seed URLs sent per job in events (a job may have 10,000; they never change).
EVENT_SEED_URLS = 10


def job_event(job: Any) -> dict[str, Any]:
    """``Job.to_dict()`` as events carry it: the seed list cut to its first
    EVENT_SEED_URLS, with ``spec.url_count`` saying how many there are."""
    d = job.to_dict()
    spec = dict(d.get("spec") or {})
    urls = list(spec.get("urls") or [])
    spec["urls"], spec["url_count"] = urls[:EVENT_SEED_URLS], len(urls)
    d["spec"] = spec
    return d


def _event(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def crawl_events(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/crawl/events`` and ``GET /api/v1/crawl/{id}/events`` (admin)."""
    peer = request.app[PEER_KEY]
    job_id = request.match_info.get("id")
    if job_id is not None and peer.get_job(job_id) is None:
        raise ApiError(404, "no_such_job", f"there is no crawl job {job_id[:40]!r}")
    if request.method == "HEAD":
        return web.Response(content_type="text/event-stream", headers={"Cache-Control": "no-store"})
    streams = request.app[SSE_STREAMS]
    if len(streams) >= MAX_SSE_STREAMS:
        raise ApiError(503, "busy", f"too many open progress streams (at most {MAX_SSE_STREAMS}); poll /api/v1/crawl instead")

    def snapshot() -> tuple[Any, tuple[tuple[str, str], ...]]:
        if job_id is None:
            jobs = peer.list_jobs()
            return {"jobs": [job_event(j) for j in jobs]}, tuple((j.id, j.state) for j in jobs)
        job = peer.get_job(job_id)
        assert job is not None  # jobs are never forgotten while the peer runs
        return job_event(job), ((job.id, job.state),)

    def moving_key(payload: Any) -> str:
        """Everything but the rate, which changes with the clock alone."""
        jobs = payload["jobs"] if job_id is None else [payload]
        return json.dumps([{k: v for k, v in j.items() if k != "pages_per_second"} for j in jobs], sort_keys=True)

    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # a buffering reverse proxy would hold events back
        }
    )
    stop = asyncio.Event()
    streams.add(stop)
    loop = asyncio.get_running_loop()
    try:
        await resp.prepare(request)
        await resp.write(f"retry: {SSE_RETRY_MS}\n\n".encode())
        started = loop.time()
        last_sent = last_write = float("-inf")
        last_key: str | None = None
        last_states: tuple[tuple[str, str], ...] | None = None
        while True:
            transport = request.transport
            if transport is None or transport.is_closing():
                break  # the client went away
            if stop.is_set():
                await resp.write(_event({"reason": "the peer is shutting down"}, "bye"))
                break
            now = loop.time()
            if now - started > SSE_MAX_AGE:
                break
            payload, states = snapshot()
            key = moving_key(payload)
            running = any(state == "running" for _, state in states)
            due = now - last_sent >= SSE_INTERVAL
            if states != last_states or (due and (key != last_key or running)):
                await resp.write(_event(payload))
                last_sent = last_write = now
                last_key, last_states = key, states
                if job_id is not None and states[0][1] in ("done", "cancelled", "failed"):
                    await resp.write(_event({"id": job_id, "state": states[0][1]}, "end"))
                    break
            elif now - last_write >= SSE_HEARTBEAT:
                await resp.write(b": keep-alive\n\n")
                last_write = now
            try:
                await asyncio.wait_for(stop.wait(), SSE_TICK)
            except asyncio.TimeoutError:
                pass
    except ConnectionError:
        pass  # the client went away mid-write
    finally:
        streams.discard(stop)
    return resp


async def _close_streams(app: web.Application) -> None:
    for stop in list(app[SSE_STREAMS]):
        stop.set()


#: What the event stream routes say in the API description.
SSE_DESCRIPTION = (
    "A text/event-stream: one event at once, then one whenever something changed (at most one a second "
    "while counters move, at once when a job changes state, once a second while a job runs), a comment "
    "line as heartbeat, a `bye` event when the peer shuts down. Streams end after an hour; EventSource reconnects. "
    f"A job in an event lists at most {EVENT_SEED_URLS} seed URLs in `spec.urls`; `spec.url_count` says how many it has."
)


def setup(app: web.Application) -> None:
    """Register the event streams; called from yasearch.api.setup before ``/api/v1/crawl/{id}``."""
    app[SSE_STREAMS] = set()
    app.on_shutdown.append(_close_streams)
    route(app, "GET", "/api/v1/crawl/events", crawl_events, tag="crawl", admin=True,
          summary="Live progress of every job as Server-Sent Events (admin)",
          description=SSE_DESCRIPTION + " Each `data:` line is a JobList.",
          response={"text/event-stream": None}, errors=(503,))
    route(app, "GET", "/api/v1/crawl/{id}/events", crawl_events, tag="crawl", admin=True,
          summary="Live progress of one job as Server-Sent Events (admin)",
          description=SSE_DESCRIPTION + " Each `data:` line is a Job; an `end` event follows the last one when "
          "the job is done or cancelled, and the stream ends.",
          response={"text/event-stream": None}, errors=(404, 503), path_params={"id": "the job's ID"})
