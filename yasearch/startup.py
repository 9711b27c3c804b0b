"""Startup failures an operator can act on: one line naming the path and the fix.

:func:`check_data_dir` looks at the data dir before the peer touches it (a file
in its place, no permission, a read-only file system, a damaged database);
:func:`explain` turns whatever else starting raised into one line. The CLI prints
the line and exits non-zero; with ``-v`` it logs the traceback as well.
"""

from __future__ import annotations

import asyncio
import errno
import sqlite3
import sys
from pathlib import Path

from yasearch.identity import IdentityError
from yasearch.peer import Peer

#: The peer's SQLite files and what is lost when one is moved away.
DATABASES = {
    "shard.db": "the postings held for other peers (they are republished to it)",
    "crawl.db": "the crawl jobs and their frontiers",
    "publish.db": "the queue of postings not yet published (they are republished)",
}


class StartupError(Exception):
    """A startup problem with its one-line explanation."""


def check_data_dir(path: Path) -> None:
    """Raises StartupError when ``path`` cannot hold a peer's data."""
    if path.exists() and not path.is_dir():
        raise StartupError(f"data dir {path} is a file, not a directory; choose another --data-dir or move the file away")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StartupError(f"cannot create data dir {path} ({_why(e)}); {_fix(e)}") from None
    probe = path / ".write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise StartupError(f"data dir {path} is not writable ({_why(e)}); {_fix(e)}") from None
    for name, holds in DATABASES.items():
        db = path / name
        if db.is_file() and db.stat().st_size:
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    conn.execute("PRAGMA schema_version").fetchone()
            except sqlite3.DatabaseError as e:
                raise StartupError(
                    f"{db} is damaged ({e}); move it away to start it anew (it holds {holds})"
                ) from None


def _why(e: OSError) -> str:
    return e.strerror or str(e)


def _fix(e: OSError) -> str:
    if e.errno == errno.EROFS:
        return "the file system is read-only: choose a --data-dir on a writable one"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "choose a --data-dir this user may write to, or give it to this user (chown)"
    if e.errno == errno.ENOSPC:
        return "free some space or choose another --data-dir"
    return "choose another --data-dir"


def explain(exc: BaseException) -> str:
    """One line for an exception raised while starting a peer."""
    if isinstance(exc, (StartupError, IdentityError)):
        return str(exc)
    if isinstance(exc, OSError):
        if exc.filename:
            return f"{exc.filename}: {_why(exc)}; {_fix(exc)}"
        return _why(exc)  # the server's bind errors already name the address and the fix
    if isinstance(exc, sqlite3.DatabaseError):
        return f"a database in the data dir is damaged ({exc}); run with -v to see which"
    return f"cannot start ({type(exc).__name__}: {exc}); run with -v for the traceback"


async def report_seed_crawl(peer: Peer, job_id: str) -> None:
    """Tells the operator when the seed crawl fetched nothing (offline, DNS down, firewall)."""
    job = await peer.jobs.wait(job_id)
    if job.state == "failed":
        why = ", ".join(f"{reason} {n}" for reason, n in job.progress.failures.most_common(3))
        print(
            f"yasearch peer: the seed URLs are unreachable ({why}); is this machine offline? "
            f"Crawl again once it is online: {peer.url}/crawl", file=sys.stderr, flush=True,
        )


def spawn_seed_report(peer: Peer, job_id: str) -> "asyncio.Task[None]":
    return asyncio.get_running_loop().create_task(report_seed_crawl(peer, job_id))

