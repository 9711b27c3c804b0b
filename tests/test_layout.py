"""The house rules of docs/architecture.md that no import contract can check.

(The floors themselves are checked by ``lint-imports`` in .ci/run, from the
contracts in pyproject.toml.)
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "yasearch"
MAX_MODULE_LINES = 500


def test_no_module_is_over_500_lines():
    too_long = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}, f"split these along their seams: {too_long}"


def test_the_wheel_installs_only_yasearch_and_all_of_it():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    assert {name.split(".")[0] for name in listed} == {"yasearch"}, "a top-level name other than yasearch"
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in PACKAGE.rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert on_disk - listed == set(), "packages missing from pyproject.toml would be missing from the wheel"
    assert listed - on_disk == set(), "pyproject.toml lists packages that do not exist"


def test_readme_and_docs_link_only_inside_the_repository():
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto: are not files
                continue
            path = (doc.parent / target).resolve()
            if not path.exists() or ROOT not in path.parents:
                broken.append(f"{doc.name}: {target}")
    assert broken == []
