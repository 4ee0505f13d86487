"""The import layering of docs/architecture.md, checked on every test run (so in CI).

Imports run downward by rank; `model` imports nothing of syncd; the engine reaches the
targets only through `targets.base` and `targets.templates` (never a wire module such as
`targets.ef45`); no module is over 600 lines (split by responsibility).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import syncd

PACKAGE = Path(syncd.__file__).parent
RANK = {
    "model": 0, "errors": 0, "config": 1,
    "mapping": 2, "ledger": 2, "sources": 2, "targets": 2, "emulators": 2,
    "engine": 3, "daemon": 4, "cli": 5, "__main__": 5,
}  # fmt: skip
ENGINE_MAY_SEE = frozenset({"base", "templates"})
MAX_LINES = 600


def imported(rel: Path, source: str) -> Iterator[str]:
    """Yield the absolute name of every module the module `rel` (a path inside syncd,
    holding `source`) imports, relative imports resolved."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.module or ""
                continue
            package = ("syncd", *rel.parts[:-1])
            base = package[: len(package) - (node.level - 1)]
            yield ".".join((*base, node.module) if node.module else base)


def layering_problems(rel: Path, source: str) -> list[str]:
    """Return what the module `rel` (holding `source`) imports against the layering."""
    top = rel.parts[0].removesuffix(".py")
    if top not in RANK:
        return []
    problems = []
    for name in imported(rel, source):
        parts = name.split(".")
        if parts[0] != "syncd" or len(parts) < 2 or parts[1] not in RANK:
            continue
        dep = parts[1]
        if RANK[dep] > RANK[top]:
            problems.append(f"{rel} imports syncd.{dep} (upward)")
        wire = len(parts) > 2 and parts[2] not in ENGINE_MAY_SEE
        if top == "engine" and dep == "targets" and wire:
            problems.append(f"{rel} imports {name} (the engine sees targets.base only)")
        if top == "model" and dep != "model":
            problems.append(f"{rel}: model imports syncd.{dep}")
    return problems


def test_imports_run_downward() -> None:
    problems = [
        problem
        for path in sorted(PACKAGE.rglob("*.py"))
        for problem in layering_problems(path.relative_to(PACKAGE), path.read_text("utf-8"))
    ]
    assert problems == []


def test_no_module_is_over_600_lines() -> None:
    sizes = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {str(p.relative_to(PACKAGE)): n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_an_upward_import_is_found() -> None:
    """The check itself: an engine module importing the CLI or a wire module is caught."""
    source = (
        "from syncd.cli import commands\n"
        "from syncd.targets.ef45 import client\n"
        "from . import plan\n"
    )
    assert layering_problems(Path("engine/probe.py"), source) == [
        "engine/probe.py imports syncd.cli (upward)",
        "engine/probe.py imports syncd.targets.ef45 (the engine sees targets.base only)",
    ]
    assert layering_problems(Path("model.py"), "from syncd import errors\n") == []
    assert layering_problems(Path("model.py"), "import syncd.config\n") == [
        "model.py imports syncd.config (upward)",
        "model.py: model imports syncd.config",
    ]
