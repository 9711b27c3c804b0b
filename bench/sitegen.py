"""A deterministic local web site for the crawl benchmarks, and a server for it.

The pages are made of real English prose: the docstrings of the Python standard
library, read with :mod:`ast` from the stdlib sources (nothing is imported, so
there are no side effects and the text is the same on every run of one Python
version). A fixed seed picks the prose, titles and links.

Shape of the site (``pages`` pages, ~20 KB each):

* ``/`` is page 0; page ``i > 0`` hangs below page ``(i - 1) // FANOUT`` in a
  tree, so every page is reachable from ``/`` within ``log_FANOUT(pages)`` hops
  (depth 4 for 600 pages with a fan-out of 5);
* every page has a nav bar (home + section pages), a breadcrumb link to its
  parent, links to its children, and random "related" links, 10-20 distinct
  in-site links in all;
* ``/robots.txt`` allows everything.

The server runs in its own process (``python -m bench.sitegen serve DIR``) so
that it never shares an event loop or a core's time slice with the crawler it
is serving. It holds every page in memory and answers with aiohttp.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import html
import random
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from yasearch.childproc import close_child

FANOUT = 5
SECTIONS = ("library", "guide", "reference", "howto", "tutorial")
ROBOTS_TXT = "User-agent: *\nAllow: /\n"
TARGET_BYTES = 20_000
MIN_LINKS, MAX_LINKS = 10, 20
_SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "turtledemo", "__pycache__", "tkinter"}
_WORD = re.compile(r"[A-Za-z]{4,}")


@dataclass(frozen=True)
class Page:
    path: str
    title: str
    html: bytes


@dataclass(frozen=True)
class Site:
    pages: tuple[Page, ...]

    def files(self) -> dict[str, bytes]:
        """URL path -> body, robots.txt included."""
        out = {p.path: p.html for p in self.pages}
        out["/robots.txt"] = ROBOTS_TXT.encode()
        return out

    def urls(self, base: str) -> list[str]:
        return [base.rstrip("/") + p.path for p in self.pages]

    def total_bytes(self) -> int:
        return sum(len(p.html) for p in self.pages)


# -- prose ---------------------------------------------------------------------


def _stdlib_sources() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(part in _SKIP_DIRS for part in rel):
            continue
        files.append(path)
    return files


def _docstrings(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                yield doc


def _is_prose(par: str) -> bool:
    """A paragraph that reads like English, not code, a table or a signature."""
    if len(par) < 80 or ">>>" in par or "::" in par or "|" in par:
        return False
    letters = sum(c.isalpha() or c == " " for c in par)
    return letters / len(par) > 0.85 and par.count(" ") >= 10


def collect_prose() -> list[str]:
    """Every prose paragraph of the stdlib docstrings, whitespace collapsed, deduplicated."""
    seen: dict[str, None] = {}
    for path in _stdlib_sources():
        for doc in _docstrings(path):
            for block in re.split(r"\n\s*\n", doc):
                if any(line.startswith("    ") for line in block.splitlines()):
                    continue  # indented: code sample or parameter list
                par = " ".join(block.split())
                if _is_prose(par):
                    seen.setdefault(par, None)
    return list(seen)


# -- pages ---------------------------------------------------------------------


def _slug(title: str) -> str:
    return "-".join(w.lower() for w in _WORD.findall(title)[:5]) or "page"


def _title(rng: random.Random, prose: list[str]) -> str:
    words = _WORD.findall(rng.choice(prose))
    start = rng.randrange(max(1, len(words) - 5))
    return " ".join(words[start : start + rng.randint(3, 6)]).capitalize() or "Untitled"


def _paths(titles: list[str]) -> list[str]:
    paths = ["/"]
    for i in range(1, len(titles)):
        if i <= len(SECTIONS):
            paths.append(f"/{SECTIONS[i - 1]}/")
        else:
            section = SECTIONS[i % len(SECTIONS)]
            paths.append(f"/{section}/{_slug(titles[i])}-{i}.html")
    return paths


def _parent(i: int) -> int:
    return (i - 1) // FANOUT


def _children(i: int, n: int) -> list[int]:
    return [c for c in range(i * FANOUT + 1, i * FANOUT + FANOUT + 1) if c < n]


def _link_targets(i: int, n: int, rng: random.Random) -> tuple[list[int], list[int]]:
    """(structural links, related links) of page i, 10-20 distinct targets in all."""
    nav = [0, *range(1, min(len(SECTIONS), n - 1) + 1)]
    structural = list(dict.fromkeys([*nav, _parent(i) if i else 0, *_children(i, n)]))
    structural = [t for t in structural if t != i] or [0]
    wanted = min(rng.randint(MIN_LINKS, MAX_LINKS), n - 1)
    if n > _SMALL_SITE:
        # big sites: rejection sampling (the exact sampling below is O(n) per page)
        taken = set(structural) | {i}
        related = []
        while len(related) < wanted - len(structural):
            t = rng.randrange(n)
            if t not in taken:
                taken.add(t)
                related.append(t)
        return structural, related
    pool = [t for t in range(n) if t != i and t not in structural]
    related = rng.sample(pool, max(0, min(len(pool), wanted - len(structural))))
    return structural, related


def _a(paths: list[str], titles: list[str], t: int) -> str:
    return f'<a href="{paths[t]}">{html.escape(titles[t])}</a>'


#: Sites above this many pages pick related links by rejection sampling (so a
#: 60,000-page site is generated in seconds, not hours); the small sites, and so
#: the figures of earlier runs, stay exactly as they were.
_SMALL_SITE = 10_000


def _render(i: int, paths: list[str], titles: list[str], prose: list[str], rng: random.Random,
            target: int = TARGET_BYTES) -> bytes:
    structural, related = _link_targets(i, len(paths), rng)
    nav = " | ".join(_a(paths, titles, t) for t in structural if t <= len(SECTIONS))
    below = "".join(f"<li>{_a(paths, titles, t)}</li>" for t in structural if t > len(SECTIONS))
    see_also = "".join(f"<li>{_a(paths, titles, t)}</li>" for t in related)
    first = rng.choice(prose)
    head = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(titles[i])} - yasearch bench site</title>"
        f'<meta name="description" content="{html.escape(first[:150])}">'
        "<style>body{font-family:sans-serif;max-width:50em}</style></head>\n<body>"
        f"<header><nav>{nav}</nav></header>\n<main><h1>{html.escape(titles[i])}</h1>\n"
        f"<p>{html.escape(first)}</p>\n"
    )
    tail = (
        f"</main>\n<aside><h2>In this part</h2><ul>{below}</ul>"
        f"<h2>See also</h2><ul>{see_also}</ul></aside>\n"
        f"<footer><p>Page {i} of the benchmark site. Text from the Python standard library docstrings."
        "</p></footer></body></html>\n"
    )
    body: list[str] = []
    size = len(head) + len(tail)
    while size < target:
        section = [f"<h2>{html.escape(_title(rng, prose))}</h2>\n"]
        section += [f"<p>{html.escape(rng.choice(prose))}</p>\n" for _ in range(rng.randint(2, 5))]
        body += section
        size += sum(len(s) for s in section)
    return (head + "".join(body) + tail).encode("utf-8")


def generate(pages: int = 600, seed: int = 42) -> Site:
    """The site, identical for identical arguments (on one Python version)."""
    return Site(tuple(iter_pages(pages, seed)))


def iter_pages(pages: int = 600, seed: int = 42, sizes: tuple[int, int] | None = None) -> Iterator[Page]:
    """The pages of :func:`generate` one at a time (a 60,000-page site is 1.2 GB).

    ``sizes`` = (min, max) bytes draws each page's size uniformly from that range
    (e.g. 100 KB-1 MB pages) instead of ~20 KB.
    """
    if pages < 2:
        raise ValueError("the site needs at least 2 pages")
    rng = random.Random(seed)
    prose = _prose()
    titles = ["Home"] + [s.capitalize() for s in SECTIONS][: pages - 1]
    titles += [_title(rng, prose) for _ in range(pages - len(titles))]
    paths = _paths(titles)
    for i in range(pages):
        target = TARGET_BYTES if sizes is None else rng.randint(*sizes)
        yield Page(paths[i], titles[i], _render(i, paths, titles, prose, rng, target))


_PROSE: list[str] = []


def _prose() -> list[str]:
    if not _PROSE:
        _PROSE.extend(collect_prose())
    return _PROSE


def write(site: Site, root: Path) -> None:
    """Write the site under ``root`` (``/`` becomes ``index.html`` of its directory)."""
    for path, body in site.files().items():
        target = root / (path.lstrip("/") + ("index.html" if path.endswith("/") else ""))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)


def load(root: Path) -> dict[str, bytes]:
    """URL path -> body of a site written by :func:`write`."""
    files: dict[str, bytes] = {}
    for f in sorted(root.rglob("*")):
        if f.is_file():
            rel = "/" + f.relative_to(root).as_posix()
            if rel.endswith("/index.html"):
                rel = rel[: -len("index.html")]
            files[rel] = f.read_bytes()
    return files


# -- serving -------------------------------------------------------------------


async def serve(files: dict[str, bytes], host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve ``files`` until stdin closes; print the base URL on stdout first."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        body = files.get(request.path)
        if body is None:
            raise web.HTTPNotFound()
        ctype = "text/plain" if request.path.endswith(".txt") else "text/html"
        return web.Response(body=body, content_type=ctype, charset="utf-8")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"http://{host}:{bound}/", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # returns when the parent closes our stdin
    await runner.cleanup()


class SiteServer:
    """``python -m bench.sitegen serve DIR`` in a child process; use as a context manager."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> "SiteServer":
        repo = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.sitegen", "serve", str(self.root)],
            cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self.__exit__()
            raise RuntimeError(f"the site server did not start: {line or 'no output'}")
        self.url = line
        return self

    def __exit__(self, *exc: object) -> None:
        close_child(self.proc)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.sitegen", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    gen = sub.add_parser("generate", help="write the site to a directory")
    gen.add_argument("dir", type=Path)
    gen.add_argument("--pages", type=int, default=600)
    gen.add_argument("--seed", type=int, default=42)
    srv = sub.add_parser("serve", help="serve a written site until stdin closes")
    srv.add_argument("dir", type=Path)
    srv.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    if args.cmd == "generate":
        site = generate(args.pages, args.seed)
        write(site, args.dir)
        print(f"{len(site.pages)} pages, {site.total_bytes() / len(site.pages):.0f} bytes/page, in {args.dir}")
    else:
        asyncio.run(serve(load(args.dir), port=args.port))


if __name__ == "__main__":
    main()
