"""The package's shape (docs/architecture.md): imports only run down the layers, and modules
and functions stay small."""

import ast
from pathlib import Path

import bayesfm

PACKAGE = Path(bayesfm.__file__).parent
LAYERS = ["common", "tokens", "sources", "model", "bayes", "infer", "catalogue"]
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 250, 60
SHELL = len(LAYERS)  # cli, fitting, plots and the package face sit on top


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 2 and parts[1] in LAYERS else SHELL


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(("bayesfm", *path.relative_to(PACKAGE).with_suffix("").parts))
        yield name.removesuffix(".__init__"), path, ast.parse(path.read_text())


def _imports(tree) -> set:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bayesfm"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("bayesfm")}
    return found


def test_imports_only_run_down_the_layers():
    upward = [
        f"{name} -> {target}"
        for name, _, tree in _modules()
        for target in _imports(tree)
        if _layer(target) > _layer(name)
    ]
    assert upward == []


def test_no_import_cycles():
    graph = {name: _imports(tree) for name, _, tree in _modules()}
    state = {}

    def visit(node, path):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", " -> ".join([*path, node])
        state[node] = "open"
        for target in graph.get(node, ()):
            visit(target, [*path, node])
        state[node] = "done"

    for name in graph:
        visit(name, [])


def test_modules_and_functions_stay_small():
    long_modules, long_functions = [], []
    for name, path, tree in _modules():
        if len(path.read_text().splitlines()) > MAX_MODULE_LINES:
            long_modules.append(name)
        long_functions += [
            f"{name}.{node.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
        ]
    assert long_modules == []
    assert long_functions == []
