"""Child processes that run until their stdin closes (the demo's documentation
server, the benchmarks' site server)."""

from __future__ import annotations

import subprocess


def close_child(proc: subprocess.Popen[str] | None, timeout: float = 5.0) -> None:
    """Stops ``proc`` by closing its stdin, its signal to exit; kills it after ``timeout`` seconds."""
    if proc and proc.poll() is None:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
