"""The package's layers: every module imports, no import cycle, no import that runs upward.

Imports are read with `ast` from the source files (function-local imports included), so a lazy import
inside a function counts as much as one at the top of the file. `FILTERPRIOR_SRC` points the test at
another source tree (e.g. an older checkout) to check it too.
"""

from __future__ import annotations

import ast
import importlib
import os
from pathlib import Path

import pytest

SRC = Path(os.environ.get("FILTERPRIOR_SRC") or Path(__file__).resolve().parents[1] / "src")
PACKAGE = "filterprior"

# Bottom to top: a module may import from its own layer and the layers below it, never from above.
LAYERS = [
    ("base", {"filterprior", "filterprior.errors", "filterprior.utils", "filterprior.config", "filterprior.stats"}),
    ("results", {"filterprior.results"}),
    ("figures", {"filterprior.figures"}),
    ("data", {"filterprior.data"}),
    ("models", {"filterprior.models"}),
    ("banks", {"filterprior.banks"}),
    ("priors", {"filterprior.priors"}),
    ("train", {"filterprior.train"}),
    ("study", {"filterprior.study"}),
    ("report", {"filterprior.report"}),
    ("commands", {"filterprior.commands", "filterprior.__main__"}),
]


def module_names() -> dict[str, Path]:
    """Every module under src/filterprior: dotted name -> file (a package is its __init__.py)."""
    names = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def layer_of(module: str) -> int:
    """The index in LAYERS of the longest prefix that names `module` or a package holding it."""
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None or (best_len == len(PACKAGE) and module != PACKAGE):
        raise AssertionError(f"module {module} is in no layer: add its package to LAYERS in {__file__}")
    return best


def _layer_or_none(module: str) -> int | None:
    try:
        return layer_of(module)
    except AssertionError:
        return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported filterprior module, line) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import sub` imports the module pkg.sub when there is one, else names from pkg
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                while target not in modules:  # `import filterprior.x.y` of a name: its module
                    target = target.rsplit(".", 1)[0]
                if target != module:
                    found.append((target, node.lineno))
    return found


def import_graph() -> tuple[dict[str, Path], dict[str, list[tuple[str, int]]]]:
    modules = module_names()
    return modules, {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target, _ in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_is_in_a_layer_and_imports() -> None:
    modules = module_names()
    assert len(modules) > 40  # the tree was found
    for name in modules:
        layer_of(name)
        if SRC == Path(__file__).resolve().parents[1] / "src" and name != "filterprior.__main__":
            importlib.import_module(name)  # __main__ would run the CLI


def test_no_import_runs_upward() -> None:
    modules, graph = import_graph()
    layer = {name: _layer_or_none(name) for name in modules}  # a module in no layer fails the test above
    upward = sorted({
        f"{modules[name].relative_to(SRC)}:{line} imports {target} "
        f"({LAYERS[layer[name]][0]} -> {LAYERS[layer[target]][0]})"
        for name, targets in sorted(graph.items())
        for target, line in targets
        if layer[name] is not None and layer[target] is not None and layer[target] > layer[name]
    })
    assert not upward, "imports that run upward between layers:\n" + "\n".join(upward)


def test_no_import_cycle() -> None:
    _, graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles (function-local imports count):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    """The analysis itself: a made-up tree with a cycle and an upward import is caught."""
    pkg = tmp_path / PACKAGE
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "utils.py").write_text("def f():\n    from filterprior.data.a import x\n")
    (pkg / "data" / "__init__.py").write_text("")
    (pkg / "data" / "a.py").write_text("from . import b\nx = 1\n")
    (pkg / "data" / "b.py").write_text("import filterprior.data.a\n")
    global SRC
    saved, SRC = SRC, tmp_path
    try:
        modules, graph = import_graph()
        assert ("filterprior.data.a", 2) in graph["filterprior.utils"]
        assert layer_of("filterprior.data.a") > layer_of("filterprior.utils")
        assert cycles(graph) == [["filterprior.data.a", "filterprior.data.b"]]
        with pytest.raises(AssertionError, match="imports that run upward"):
            test_no_import_runs_upward()
    finally:
        SRC = saved
