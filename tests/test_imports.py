"""The package's import layering, read from the source (every import statement, also those inside
functions, so a lazy import cannot hide a cycle): f2l never imports probes or analyses, the world is a
leaf that needs only ``f2l.video``, nothing in f2l depends on the base-training package, and f2l's
packages and top-level modules import one another without a cycle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from support import REPO

ROOT = REPO
PACKAGE = ROOT / "f2l"
OUTSIDE = ("probes", "analyses")  # they import f2l; f2l never imports them


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(source: str, name: str, is_package: bool) -> list[tuple[str, int]]:
    """Every module an import statement anywhere in ``source`` names (module-level, in functions, in
    classes, under conditions), as (absolute dotted name, line). ``from a import b`` names ``a.b`` when
    that is a module of f2l, else ``a``; relative imports are resolved against ``name``."""
    here = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in MODULES else base, node.lineno))
    return list(dict.fromkeys(found))  # one entry per module a statement names


def unit(module: str) -> str:
    """The node of the package-level graph a module belongs to: ``f2l`` itself, a subpackage
    (``f2l.world``) or a top-level module (``f2l.pipeline``); outside f2l, the top-level name."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "f2l" else parts[0]


def f2l_imports() -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) for every import of f2l, probes or analyses in f2l."""
    edges = []
    for name, path in MODULES.items():
        for target, line in imported_modules(path.read_text(), name, path.name == "__init__.py"):
            if target.split(".")[0] in ("f2l", *OUTSIDE):
                edges.append((name, target, line))
    return edges


EDGES = f2l_imports()


def where(edges) -> str:
    return "\n".join(f"  {source} (line {line}) imports {target}" for source, target, line in edges)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_reader_sees_imports_inside_functions_and_relative_ones():
    source = (
        "import f2l.video\n"
        "from f2l import world\n"
        "def f():\n"
        "    from f2l.data import manifest\n"
        "    from ..models import load_base\n"
        "class C:\n"
        "    def g(self):\n"
        "        import probes.hooks\n"
    )
    found = {target for target, _ in imported_modules(source, "f2l.eval.harness", is_package=False)}
    assert found == {"f2l.video", "f2l.world", "f2l.data.manifest", "f2l.models", "probes.hooks"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_covers_the_package():
    assert {"f2l.world", "f2l.world.render", "f2l.basetrain.pretrain", "f2l.data.manifest"} <= set(MODULES)
    assert any(s == "f2l.data.manifest" and t.startswith("f2l.world") for s, t, _ in EDGES)


def test_f2l_never_imports_probes_or_analyses():
    bad = [e for e in EDGES if unit(e[1]) in OUTSIDE]
    assert not bad, "f2l must not import probes/ or analyses/:\n" + where(bad)


def test_the_world_is_a_leaf_that_needs_only_video():
    bad = [e for e in EDGES if unit(e[0]) == "f2l.world" and unit(e[1]) not in ("f2l.world", "f2l.video")]
    assert not bad, "f2l.world may import only f2l.video of f2l:\n" + where(bad)


def test_nothing_in_f2l_depends_on_base_training():
    bad = [e for e in EDGES if unit(e[1]) == "f2l.basetrain" and unit(e[0]) != "f2l.basetrain"]
    assert not bad, "f2l.basetrain builds checkpoints; f2l must not import it:\n" + where(bad)


def test_no_import_cycle_between_f2l_packages_and_modules():
    """Package-level: an edge from A to B wherever a module of A imports one of B (A, B: ``f2l``, its
    subpackages and its top-level modules), counting imports inside functions."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target, _ in EDGES:
        if unit(source) != unit(target):
            graph[unit(source)].add(unit(target))
    found = cycles(graph)
    detail = "\n".join(
        f"cycle through {', '.join(c)}:\n"
        + where(e for e in EDGES if unit(e[0]) != unit(e[1]) and {unit(e[0]), unit(e[1])} <= set(c))
        for c in found
    )
    assert not found, detail
