"""No import circle among the repository's modules, lazy imports included: every `import` statement of
iqrl/, baselines/, analysis/, slurm/ and apps/ (at module level or inside a function) is an edge, read with
ast without importing anything, and the graph has no cycle. A type two modules share lives below both. The
top-level packages import one way (BELOW), and the rooms of iqrl/ are floors: a module imports its own room
and the rooms below it, never one above (LAYERS); and no source file passes the size a reader takes in at
once (MAX_LINES)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("iqrl", "baselines", "analysis", "slurm", "apps")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported(node: ast.AST, here: str, is_package: bool, known: set[str]) -> list[str]:
    """The repository modules an import statement names (`from a import b` is a.b when that is a module)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the package of `here`
            package = here.split(".") if is_package else here.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    found = []
    for name in names:
        while name and name not in known:  # `import a.b.c` names the deepest module of ours it reaches
            name = name.rpartition(".")[0]
        if name and name != here:
            found.append(name)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name].update(imported(node, name, path.name == "__init__.py", known))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [cycle_in(graph, c) for c in components]


def cycle_in(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A closed path a -> ... -> a inside a strongly connected component, for the message."""
    members, path = set(component), [component[0]]
    while True:
        nxt = min(w for w in graph[path[-1]] if w in members)
        if nxt in path:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)


def test_the_cycle_finder_finds_lazy_and_package_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    tree = ast.parse("def f():\n    from iqrl.envs import suites\n")
    (node,) = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert imported(node, "iqrl.envs.make", False, {"iqrl", "iqrl.envs", "iqrl.envs.suites"}) == [
        "iqrl.envs.suites"
    ]
    rel = ast.parse("from .plan import x\n").body[0]
    assert imported(rel, "apps.gpu_report.parts", False, {"apps.gpu_report.plan"}) == ["apps.gpu_report.plan"]


def test_no_import_cycles_lazy_imports_included():
    found = cycles(import_graph())
    assert not found, "import cycles (move what the modules share below both): " + "; ".join(
        " -> ".join(c) for c in found
    )


# The top-level packages and the others each may import: iqrl is the ground (the methods of baselines are
# registered by name, never imported); analysis and slurm stand beside each other on it; the applications
# (apps) on all three.
BELOW = {
    "iqrl": (),
    "baselines": ("iqrl",),
    "analysis": ("iqrl",),
    "slurm": ("iqrl",),
    "apps": ("iqrl", "analysis", "slurm"),
}


def imports_across_the_top(graph: dict[str, set[str]]) -> list[str]:
    """Edges `a -> b` between top-level packages that BELOW does not allow `a`'s package."""
    top = lambda module: module.split(".")[0]  # noqa: E731
    return sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if top(a) != top(b) and top(b) not in BELOW[top(a)]
    )


def test_the_top_level_check_finds_an_import_of_a_package_above():
    graph = {
        "iqrl.loop.trainer": {"iqrl.core.registry", "analysis.runs.load"},
        "slurm.projection": {"iqrl.bench.gpu_rows", "apps.gpu_report.results"},
        "analysis.runs.load": {"slurm.spec"},
        "apps.demo": {"iqrl.train", "analysis.figures.plots", "slurm.spec"},
    }
    assert imports_across_the_top(graph) == [
        "analysis.runs.load -> slurm.spec",
        "iqrl.loop.trainer -> analysis.runs.load",
        "slurm.projection -> apps.gpu_report.results",
    ]


def test_the_top_level_packages_import_one_way():
    assert set(BELOW) == set(PACKAGES)
    found = imports_across_the_top(import_graph())
    assert not found, "imports of a package above (move what both need down): " + "; ".join(found)


# iqrl's rooms, lowest first: a module of one may import its own room and those before it, never one after
# (each room's __init__ docstring says what it owns). Methods (iqrl.agent, iqrl.learners, baselines) sit on
# iqrl.core and iqrl.nn only; the modes and commands (multiseed, bench, train, ...) on everything.
LAYERS = ("iqrl.nn", "iqrl.core", "iqrl.envs", "iqrl.runfolder", "iqrl.config", "iqrl.loop")
METHODS = ("iqrl.learners", "iqrl.agent", "baselines")
MAX_LINES = 560


def room(module: str) -> str | None:
    return next((r for r in (*LAYERS, *METHODS) if module == r or module.startswith(r + ".")), None)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Edges `a -> b` where b's room is above a's (LAYERS), or a method reaches past iqrl.core and iqrl.nn."""
    bad = []
    for a, targets in graph.items():
        ra = room(a)
        for b in targets:
            rb = room(b)
            if ra is None or rb is None or ra == rb:
                continue
            if ra in METHODS:
                ok = rb in ("iqrl.nn", "iqrl.core") or rb in METHODS
            elif rb in METHODS:
                ok = False  # the harness names methods by string (the registry), never imports them
            else:
                ok = LAYERS.index(rb) < LAYERS.index(ra)
            if not ok:
                bad.append(f"{a} -> {b}")
    return sorted(bad)


def test_the_layer_check_finds_an_import_that_points_up():
    graph = {"iqrl.core.registry": {"iqrl.loop.trainer"}, "iqrl.loop.trainer": {"iqrl.core.registry"}}
    assert upward_imports(graph) == ["iqrl.core.registry -> iqrl.loop.trainer"]
    assert upward_imports({"baselines.td3": {"iqrl.envs.make"}}) == ["baselines.td3 -> iqrl.envs.make"]
    assert upward_imports({"iqrl.loop.parts": {"baselines.td3"}}) == ["iqrl.loop.parts -> baselines.td3"]


def test_imports_point_down_the_rooms_of_iqrl():
    found = upward_imports(import_graph())
    assert not found, "imports that point up a room (move the shared piece down): " + "; ".join(found)


def test_no_source_file_passes_560_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for folder in (*PACKAGES, "scripts")
        for p in sorted((ROOT / folder).rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"files over {MAX_LINES} lines (split by subject): {long}"


def test_the_layout_page_lists_every_top_level_package():
    tree = (ROOT / "docs" / "layout.md").read_text().split("```")[1]
    top = {line.split("/")[0] for line in tree.splitlines() if line[:1].isalpha() and "/" in line.split()[0]}
    assert set(PACKAGES) <= top, f"docs/layout.md's tree lacks {sorted(set(PACKAGES) - top)}"
