"""`yasearch jobs`: list a running peer's crawl jobs, and pause, resume, cancel or delete them."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from yasearch.client import DEFAULT_PEER, PeerClient
from yasearch.units import duration, plural

ACTIONS = ("list", "pause", "resume", "cancel", "delete")


def add_parser(sub: Any) -> None:
    jobs = sub.add_parser(
        "jobs", help="list a running peer's crawl jobs, or pause, resume, cancel or delete some",
        description="Without an action: list the jobs, newest first. Delete forgets finished jobs "
        "(done, failed or cancelled) and their frontiers.",
    )
    jobs.add_argument("action", nargs="?", default="list", choices=ACTIONS, help="what to do (default: list)")
    jobs.add_argument("ids", nargs="*", metavar="ID", help="job IDs (from `yasearch jobs`); required but for list")
    jobs.add_argument("--finished", action="store_true", help="with delete: every done, failed or cancelled job")
    jobs.add_argument("--peer", default=DEFAULT_PEER, help=f"the peer's URL or HOST:PORT (default {DEFAULT_PEER})")
    jobs.add_argument("--token", help="admin token (or YASEARCH_TOKEN) for a peer that is not on this machine")
    jobs.add_argument("--json", action="store_true", help="print the peer's JSON answer")
    jobs.set_defaults(func=cmd_jobs)


def line(job: dict[str, Any], now: float) -> str:
    urls = (job.get("spec") or {}).get("urls") or ["?"]
    more = f" (+{len(urls) - 1} more)" if len(urls) > 1 else ""
    age = duration(now - float(job.get("created") or now))
    out = (
        f"{job['id']}  {job['state']:9}  {plural(job.get('indexed', 0), 'page')} indexed, "
        f"{job.get('failed', 0):,} failed  {age} ago  {urls[0]}{more}"
    )
    if job.get("error"):
        out += f"\n{'':14}{job['error']}"
    return out


async def cmd_jobs(args: argparse.Namespace) -> int:
    async with PeerClient(args.peer, args.token) as client:
        if args.action == "list":
            data = await client.request("GET", "/api/v1/crawl")
            if args.json:
                print(json.dumps(data, indent=2))
            elif not data["jobs"]:
                print("no crawl jobs; start one with `yasearch crawl URL`")
            else:
                now = time.time()
                for job in data["jobs"]:
                    print(line(job, now))
            return 0
        ids = list(args.ids)
        if args.action == "delete" and args.finished:
            data = await client.request("GET", "/api/v1/crawl")
            ids += [j["id"] for j in data["jobs"] if j["state"] not in ("running", "paused")]
        elif not ids:
            print(f"yasearch jobs {args.action}: give the job IDs (see `yasearch jobs`)", file=sys.stderr)
            return 2
        for job_id in ids:
            if args.action == "delete":
                job = await client.request("DELETE", f"/api/v1/crawl/{job_id}")
            else:
                job = await client.request("POST", f"/api/v1/crawl/{job_id}/{args.action}")
            verb = {"pause": "paused", "resume": "resumed", "cancel": "cancelled", "delete": "deleted"}[args.action]
            print(json.dumps(job) if args.json else f"{verb} {job_id} ({job['state']})")
        if not ids:
            print("no finished jobs to delete")
    return 0
