"""Finding the processes a test started: every process of one session (its children,
the forkserver, the resource tracker and parse workers included)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from peerutil import ROOT


def session_processes(sid: int) -> list[str]:
    """``pid cmdline`` of every live process in session ``sid`` (zombies excluded)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) != sid or fields[0] == "Z":
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        out.append(f"{entry.name} {cmd[:160]}")
    return out


async def wait_gone(sid: int, timeout: float = 10.0) -> list[str]:
    """Waits until session ``sid`` has no process left; returns those left after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (left := session_processes(sid)) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
    return left


def start_session(*args: str, tmp: Path, log: Path) -> subprocess.Popen[bytes]:
    """``python -m yasearch ARGS`` in a session of its own, TMPDIR under the test's tmp dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YASEARCH_")}
    env.update(PYTHONPATH=str(ROOT), TMPDIR=str(tmp))
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "yasearch", *args], stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True,
        )


async def wait_output(proc: subprocess.Popen[bytes], log: Path, text: str, timeout: float = 120.0) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in (out := log.read_text(errors="replace")):
        assert proc.poll() is None, f"exited with {proc.returncode}:\n{out}"
        assert asyncio.get_running_loop().time() < deadline, f"no {text!r} in:\n{out}"
        await asyncio.sleep(0.2)
    return out


@contextlib.contextmanager
def session(*args: str, tmp: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`start_session`, killed at the end if the test left it running."""
    proc = start_session(*args, tmp=tmp, log=log)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
