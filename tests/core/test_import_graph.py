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



def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


KNOWN = {module_name(p) for p in PACKAGE.rglob("*.py")}


def our_imports(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module of ours `source` (the text of `module`) imports, wherever the import stands: at the top, in a
    function (a late import to dodge a cycle is still a cycle) or under `if TYPE_CHECKING:` (a cycle of types is a
    cycle of design)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *([node.module] if node.module else [])])
            # `from . import network` names a module; `from .plan import Role` an attribute of one
            candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in candidates if name in KNOWN)
    return found - {module}


def import_cycles(prefix: str) -> list[list[str]]:
    """The import cycles among our modules whose names start with `prefix`."""
    graph = {module_name(p): {m for m in our_imports(p.read_text(encoding="utf-8"), module_name(p),
                                                     is_package=p.name == "__init__.py") if m.startswith(prefix)}
             for p in PACKAGE.rglob("*.py") if module_name(p).startswith(prefix)}
    cycles: list[list[str]] = []
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append([*stack[stack.index(target):], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_late_and_type_only_imports_count() -> None:
    """(runner <-> monitoring was hidden this way: a function-level import one way, a TYPE_CHECKING one back.)"""
    late = "def f() -> None:\n    from .runner import LaunchError\n"
    typed = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .runner import Topology\n"
    for source in (late, typed):
        assert our_imports(source, "handlesim.topology.monitoring") == {"handlesim.topology.runner"}
    assert our_imports("from . import network\nfrom ..core.handle import Prefix\n", "handlesim.topology.runner") \
        == {"handlesim.topology", "handlesim.topology.network", "handlesim.core.handle"}


def test_no_import_cycles_in_topology() -> None:
    assert import_cycles("handlesim.topology") == []


def test_no_import_cycles_in_net() -> None:
    """NodeServer sits on top of net/: faults, metrics and reporting say what they need of a node with a protocol
    (or read its NodeStats) instead of importing the server back."""
    assert our_imports((PACKAGE / "net" / "server.py").read_text(encoding="utf-8"), "handlesim.net.server") >= {
        "handlesim.net.gate", "handlesim.net.answers", "handlesim.net.stats", "handlesim.net.faults",
        "handlesim.net.metrics", "handlesim.net.reporting"}
    assert import_cycles("handlesim.net") == []
