"""The package's import graph, read statically (function-level imports included): no cycles, and
nothing below the command layer imports it (docs/architecture.md)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "harness"
COMMAND_LAYER = ("harness.cli", "harness.__main__", "harness.commands")
# The pipeline's layers, bottom up (docs/architecture.md): a module may import its own package and
# the layers below it, never a layer above, nor a sibling package of its own layer.
LAYERS = [
    {"harness", "errors", "paths", "jsonio"},
    {"tasks", "config"},
    {"backends"},
    {"evaluation"},
    {"execution"},
    {"comparison"},
    {"analysis"},
    {"bisect", "regress"},
    {"commands", "cli", "__main__"},
]
ONE_LAYER = {"commands", "cli", "__main__"}  # the command layer is one unit


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """harness modules that ``path`` imports anywhere in its body: ``from a.b import c`` counts
    as ``a.b.c`` when that is a module, else as ``a.b``."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "harness")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "harness":
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in modules else base)
    return {m for m in out if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imported(path, name, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walker_sees_function_level_and_relative_imports(tmp_path):
    graph = import_graph()
    # function-level: commands/bisect.py imports the orchestrator inside run()
    assert "harness.bisect.orchestrator" in graph["harness.commands.bisect"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def layer_of(module: str) -> tuple[int, str]:
    top = module.split(".")[1] if "." in module else "harness"
    return next(i for i, names in enumerate(LAYERS) if top in names), top


def test_every_package_has_a_layer():
    assert all(layer_of(m) for m in import_graph())


def test_imports_go_down_the_pipeline_only():
    bad = []
    for mod, deps in import_graph().items():
        level, top = layer_of(mod)
        for dep in sorted(deps):
            dep_level, dep_top = layer_of(dep)
            sibling = dep_level == level and dep_top != top and level > 0 and top not in ONE_LAYER
            if dep_level > level or sibling:
                bad.append(f"{mod} imports {dep}")
    assert not bad, "; ".join(bad)


def test_nothing_below_the_command_layer_imports_it():
    bad = []
    for mod, deps in import_graph().items():
        if mod.startswith(COMMAND_LAYER):
            continue
        bad += [f"{mod} imports {d}" for d in sorted(deps) if d.startswith(COMMAND_LAYER)]
    assert not bad, "; ".join(bad)
