"""What the crawl and the network benchmark share: the log line, the generated site
served from a child process, the machine figures, the options, the results table
and the final report."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import sitegen

REPO = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty list."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * len(s))) - 1))]


@dataclass
class RunResults:
    """The figures every benchmark reports: its configuration, the machine, the queries."""

    config: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)


def machine() -> dict[str, Any]:
    """Python, CPUs, platform and load at the start of a run (logged)."""
    m = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
         "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}
    log(f"python {m['python']}, {m['cpus']} cpus, load {m['loadavg_at_start']}")
    return m


def add_query_args(ap: argparse.ArgumentParser, scope: str) -> None:
    """--queries (``scope`` queries to time) and --seed."""
    ap.add_argument("--queries", type=int, default=100, help=f"{scope} queries to time (default 100)")
    ap.add_argument("--seed", type=int, default=42, help="site and query seed (default 42)")


def add_report_args(ap: argparse.ArgumentParser, json_help: str) -> None:
    """--json FILE and --strict."""
    ap.add_argument("--json", type=Path, help=json_help)
    ap.add_argument("--strict", action="store_true", help="exit 2 when a goal is not met")


@contextmanager
def served_site(pages: int, seed: int, directory: Path) -> Iterator[tuple[sitegen.Site, str]]:
    """The generated site written to ``directory`` and served from a child process: (site, URL)."""
    t = time.perf_counter()
    site = sitegen.generate(pages, seed)
    sitegen.write(site, directory)
    log(f"site: {len(site.pages)} pages, {site.total_bytes() / len(site.pages) / 1000:.1f} KB/page, "
        f"generated in {time.perf_counter() - t:.1f}s")
    with sitegen.SiteServer(directory) as server:
        log(f"serving it at {server.url} (separate process)")
        yield site, server.url


def table_lines(rows: list[tuple[str, str, str]]) -> list[str]:
    """(measure, result, notes) rows as a Markdown table, then an empty line."""
    w0 = max(len(a) for a, _, _ in rows)
    w1 = max(len(b) for _, b, _ in rows)
    lines = [f"| {'measure'.ljust(w0)} | {'result'.ljust(w1)} | notes", f"|{'-' * (w0 + 2)}|{'-' * (w1 + 2)}|------"]
    lines += [f"| {a.ljust(w0)} | {b.ljust(w1)} | {c}" for a, b, c in rows]
    lines.append("")
    return lines


def report(r: RunResults, table: str, json_path: Path | None) -> None:
    """Prints the table and the machine (load at the end too); writes the figures as JSON if asked."""
    r.machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print()
    print(table)
    print(f"\nmachine: {r.machine}")
    if json_path:
        json_path.write_text(json.dumps(r.__dict__, indent=2) + "\n")
        log(f"figures written to {json_path}")
