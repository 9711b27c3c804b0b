"""`yasearch export` and `yasearch import`: a running peer's index out as JSON Lines, and
JSON Lines or WARC files in (indexed as a job with progress, then published)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from yasearch.client import DEFAULT_PEER, PeerClient, PeerError


async def cmd_export(args: argparse.Namespace) -> int:
    async with PeerClient(args.peer, args.token) as client:
        if args.output is None:
            written = await client.download("/api/v1/export", sys.stdout.buffer)
            sys.stdout.flush()
        else:
            with open(args.output, "wb") as out:
                written = await client.download("/api/v1/export", out)
            print(f"exported {written:,} bytes to {args.output}", file=sys.stderr)
    return 0


async def cmd_import(args: argparse.Namespace) -> int:
    from yasearch.progress import watch

    try:
        f = open(args.file, "rb")
    except OSError as e:
        raise PeerError(f"cannot read {args.file}: {e.strerror}") from None
    async with PeerClient(args.peer, args.token) as client:
        with f:
            job = await client.upload("/api/v1/import", f)
        print(f"import job {job['id']} started on {args.peer}", file=sys.stderr, flush=True)
        state = await watch(client, job)
    if state is None:
        return 130
    return 0 if state["state"] == "done" and not state.get("failed") else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    export = sub.add_parser("export", help="write a running peer's local index as JSON Lines")
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (default: standard output)")
    export.add_argument("--peer", default=DEFAULT_PEER, help=f"the peer's URL (default {DEFAULT_PEER})")
    export.add_argument("--token", help="admin token (or YASEARCH_TOKEN)")
    export.set_defaults(func=cmd_export)

    imp = sub.add_parser("import", help="index a JSON Lines export or a WARC file (.warc, .warc.gz) on a running peer")
    imp.add_argument("file", type=Path, metavar="FILE", help="a JSON Lines export, or a WARC file (.warc, .warc.gz)")
    imp.add_argument("--peer", default=DEFAULT_PEER, help=f"the peer's URL (default {DEFAULT_PEER})")
    imp.add_argument("--token", help="admin token (or YASEARCH_TOKEN)")
    imp.set_defaults(func=cmd_import)
