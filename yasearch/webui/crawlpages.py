"""The crawl console's pages: the job list and form, the no-JavaScript form posts, the token login.

The console adds a small script that talks to the JSON API (``/api/v1/crawl``)
for live progress. Its routes are admin routes: yasearch.middleware refuses
other clients with :func:`forbidden`'s page before a handler runs.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from yasearch import crawlconsole
from yasearch.apimodels import MAX_URLS
from yasearch.apiparams import parse_crawl_spec
from yasearch.crawlconsole import SEED_FILE_MAX_BYTES
from yasearch.errors import ApiError
from yasearch.webui.render import PEER, forbidden_page, refusal_page, render, token_login

#: Failures listed per job on the crawl page (the job keeps the last 20).
FAILURES_SHOWN = 10


forbidden = forbidden_page("forbidden.html", "crawl", "Crawl console")
refuse = refusal_page(forbidden)


def _job_view(job: Any) -> dict[str, Any]:
    """Job.to_dict() plus what the table shows, so template and JavaScript agree."""
    d = job.to_dict()
    d["recent_failures"] = list(reversed(d.get("recent_failures", [])))[:FAILURES_SHOWN]
    return d


async def crawl_page(
    request: web.Request, status: int = 200, error: str | None = None, form: dict[str, str] | None = None
) -> web.Response:
    peer = request.app[PEER]
    return render(
        request,
        "crawl.html",
        status=status,
        active="crawl",
        page_title="Crawl",
        jobs=[_job_view(j) for j in peer.list_jobs()],
        error=error,
        form=form or {},
        default_delay=peer.config.crawl_delay,
        seed_file_limit=f"{SEED_FILE_MAX_BYTES // (1024 * 1024)} MiB",
        max_urls=MAX_URLS,
    )




async def crawl_submit(request: web.Request) -> web.Response:
    """The crawl form without JavaScript: a form post (with a seed list file as
    multipart/form-data), then back to the console."""
    # One set of validation rules for the API and this form: the API's own parsers.
    form: dict[str, str] = {}
    try:
        if crawlconsole.is_multipart(request):
            form, seeds = await crawlconsole.read_crawl_form(request, form)
            specs = crawlconsole.crawl_specs(form, seeds)
        else:
            data = await request.post()
            form = {k: str(data.get(k, "")) for k in crawlconsole.FORM_FIELDS}
            specs = [parse_crawl_spec(crawlconsole.form_body(form))]
    except ApiError as e:
        return await crawl_page(request, e.status, e.message, form)
    jobs = [await request.app[PEER].start_crawl(spec) for spec in specs]
    raise web.HTTPSeeOther(f"/crawl#job-{jobs[0].id}")


async def crawl_action(request: web.Request) -> web.Response:
    """Pause/resume/cancel/delete buttons without JavaScript."""
    peer = request.app[PEER]
    job_id, action = request.match_info["id"], request.match_info["action"]
    job = peer.get_job(job_id)
    if job is None:
        return await crawl_page(request, 404, f"There is no crawl job “{job_id[:40]}”.")
    done = await peer.delete_job(job_id) if action == "delete" else peer.control_job(job_id, action)
    if not done:
        return await crawl_page(request, 409, f"Cannot {action} job {job_id[:40]}: it is {job.state}.")
    raise web.HTTPSeeOther("/crawl" if action == "delete" else f"/crawl#job-{job_id}")


async def crawl_login(request: web.Request) -> web.Response:
    """The admin token login, back to the console."""
    return await token_login(request, "/crawl", forbidden)
