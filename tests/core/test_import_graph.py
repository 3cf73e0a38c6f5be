"""The dependency direction of DESIGN.md: the core imports nothing of asyncio, aiohttp, sqlite3 or the rest of us."""

from __future__ import annotations

import ast
from pathlib import Path

import handlesim

PACKAGE = Path(handlesim.__file__).parent
FORBIDDEN_IN_CORE = {"asyncio", "aiohttp", "sqlite3", "msgpack", "socket", "time", "click", "uvloop"}
LAYERS_ABOVE_CORE = {"store", "wire", "net", "topology", "bench", "demo", "cli"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names.add(node.module)
            elif node.level == 2 and node.module:  # from ..net import x
                names.add("handlesim." + node.module)
    return names


def test_core_is_pure() -> None:
    core_files = sorted((PACKAGE / "core").glob("*.py"))
    assert core_files
    for path in core_files:
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN_IN_CORE, f"{path.name} imports {name}"
            if name.startswith("handlesim."):
                assert name.split(".")[1] == "core", f"{path.name} imports {name}"


def test_nothing_imports_cli() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.name == "cli.py" or path.parent.name == "cli":
            continue
        assert not any(n.startswith("handlesim.cli") for n in imported_modules(path)), path
