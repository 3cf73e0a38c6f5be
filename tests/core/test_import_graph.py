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


def package_imports(path: Path) -> set[str]:
    """The handlesim modules a file imports anywhere in it (module level, under TYPE_CHECKING or inside a function:
    an import moved into a function to dodge a cycle is still that cycle)."""
    module = ".".join(("handlesim", *path.relative_to(PACKAGE).with_suffix("").parts))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:  # relative: `.` is the file's package, `..` its parent
                parts = package.split(".")
                base = ".".join([*parts[:len(parts) - node.level + 1], *([node.module] if node.module else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import rest` names a module
    return {name.removesuffix(".__init__") for name in names if name.startswith("handlesim")}


def import_cycle(modules: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the import graph `modules` (module -> the modules it imports), or None."""
    state: dict[str, str] = {}  # module -> "open" while on the path, "done" once all it reaches was seen

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for imported in sorted(modules[module] & modules.keys()):
            if state.get(imported) == "open":
                return [*path[path.index(imported):], imported]
            if imported not in state and (cycle := visit(imported, [*path, imported])) is not None:
                return cycle
        state[module] = "done"
        return None

    for start in sorted(modules):
        if start not in state and (cycle := visit(start, [start])) is not None:
            return cycle
    return None


def test_import_cycles_are_found() -> None:
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_net_layer_has_no_import_cycles() -> None:
    """Each module of handlesim.net imports only modules below it (NodeServer at the top): no circle such as
    server <-> faults / metrics / reporting, not even under TYPE_CHECKING or inside a function."""
    modules = {".".join(("handlesim", "net", path.stem)): package_imports(path)
               for path in sorted((PACKAGE / "net").glob("*.py")) if path.name != "__init__.py"}
    assert "handlesim.net.server" in modules and "handlesim.net.gate" in modules["handlesim.net.server"]
    assert import_cycle(modules) is None, " -> ".join(import_cycle(modules) or [])
