"""The dependency rules of DESIGN.md and issue 21, checked over ``src/aonode``'s import graph.

Every ``import`` statement counts: at module level, inside functions and under
``if TYPE_CHECKING:`` (a lazy import hides a cycle from Python, not from a reader).
Relative imports are resolved; ``from pkg import name`` is an edge to ``pkg.name``
when that is a module, else to ``pkg``.

Rules name *groups* of modules by pattern, not by file, so they keep holding when
modules move into packages (``cron.py`` today, ``cron/`` tomorrow).  A group that
matches no module fails the test: a rule must never become vacuous by a rename.

``KNOWN_VIOLATIONS`` holds exactly the violations the tree has today.  A new one
fails the test; so does a listed one that no longer exists (shrink the set when
you fix one, so it can only ever get smaller).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "aonode"

Edge = tuple[str, str]  # (importer, imported), both dotted aonode module names


# -- the graph -----------------------------------------------------------------


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Every module under ``src/aonode`` by dotted name (a package by its ``__init__``)."""
    found: dict[str, Path] = {}
    for path in sorted((src / ROOT).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(name: str, path: Path, modules: Iterable[str]) -> set[str]:
    """The aonode modules ``name`` (at ``path``) imports anywhere in its text."""
    known = set(modules)
    package = name if _is_package(path) else name.rpartition(".")[0]
    found: set[str] = set()

    def nearest(dotted: str) -> str | None:
        """``dotted`` if it is a module, else the closest enclosing aonode module."""
        while dotted:
            if dotted in known:
                return dotted
            dotted = dotted.rpartition(".")[0]
        return None

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [f"{stem}.{alias.name}" for alias in node.names]
        for target in targets:
            if target == ROOT or target.startswith(ROOT + "."):
                resolved = nearest(target)
                if resolved is not None and resolved != name:
                    found.add(resolved)
    return found


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    modules = module_files(src)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cyclic_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop(0)
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def cycle_through(graph: dict[str, set[str]], edge: Edge) -> list[str]:
    """A shortest cycle using ``edge``: the path back from its head to its tail."""
    tail, head = edge
    previous: dict[str, str] = {}
    frontier, seen = [head], {head}
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(graph[node]):
                if nxt in seen:
                    continue
                seen.add(nxt)
                previous[nxt] = node
                following.append(nxt)
        frontier = following
    path = [tail]
    while path[-1] != head:
        path.append(previous[path[-1]])
    return [tail, *reversed(path[1:]), tail] if len(path) > 1 else [tail, head, tail]


# -- the rules -----------------------------------------------------------------


def group(*names: str) -> Callable[[str], bool]:
    """Modules named ``names`` or inside a package of one of those names."""
    full = tuple(f"{ROOT}.{n}" for n in names)
    return lambda m: any(m == f or m.startswith(f + ".") for f in full)


VALUES = group("message", "codec", "wallet")
STORE = group("store")
SCHEDULER = group("scheduler")
PROCESS = group("process")
PUSH = group("push")
CRON = group("cron")  # the cron/ package (task values, the timer)
INSTRUMENTATION = group("instrument", "ops.metrics")  # the interface and its metrics
HTTP = group("http")
NODE = group("node")
HTTP_SERVER = group("http.server")  # the composition seam: builds the App from node.services()


@dataclass(frozen=True, slots=True)
class Rule:
    """Modules matching ``importer`` must not import modules matching ``imported``."""

    name: str
    importer: Callable[[str], bool]
    imported: Callable[[str], bool]


RULES = (
    Rule("values import no store", VALUES, STORE),
    Rule(
        "store imports nothing above it",
        STORE,
        lambda m: any(g(m) for g in (SCHEDULER, PROCESS, PUSH, CRON, HTTP, NODE)),
    ),
    Rule("scheduler runs no code", SCHEDULER, PROCESS),
    Rule("scheduler knows no web", SCHEDULER, HTTP),
    Rule("push never imports the node or http", PUSH, lambda m: NODE(m) or HTTP(m)),
    Rule("cron never imports the node or http", CRON, lambda m: NODE(m) or HTTP(m)),
    Rule(
        "instrumentation never imports the node or http",
        INSTRUMENTATION,
        lambda m: NODE(m) or HTTP(m),
    ),
    Rule("the node (composition root) does not import http", NODE, HTTP),
    Rule(
        "http receives services, never the node (http/server.py excepted)",
        lambda m: HTTP(m) and not HTTP_SERVER(m),
        NODE,
    ),
)


def violations(graph: dict[str, set[str]]) -> dict[Edge, str]:
    """Every edge that breaks a rule or lies on an import cycle, with why."""
    found: dict[Edge, str] = {}
    for component in cyclic_components(graph):
        members = set(component)
        for importer in component:
            for imported in graph[importer] & members:
                found[(importer, imported)] = "on a cycle: " + " -> ".join(
                    cycle_through(graph, (importer, imported))
                )
    for importer, targets in graph.items():
        for imported in targets:
            for rule in RULES:
                if rule.importer(importer) and rule.imported(imported):
                    reason = f"breaks {rule.name!r}"
                    if (importer, imported) in found:
                        reason = found[(importer, imported)] + "; " + reason
                    found[(importer, imported)] = reason
    return found


# Violations tolerated for now, each an (importer, imported) edge.  Only ever remove
# entries.  The 11-module cycle through node.py and http/app.py that this once held
# is gone: the node takes cron's dispatch from the HTTP layer, push receives a
# PushHost, metrics is an Instrument fed LiveSources.
KNOWN_VIOLATIONS: frozenset[Edge] = frozenset()  # emptied: every rule holds


# -- the tests -----------------------------------------------------------------


def test_every_rule_group_matches_a_module() -> None:
    modules = set(import_graph())
    for rule in RULES:
        assert any(rule.importer(m) for m in modules), f"{rule.name}: no importer module"
        assert any(rule.imported(m) for m in modules), f"{rule.name}: no imported module"


def test_no_new_violations() -> None:
    found = violations(import_graph())
    new = {edge: why for edge, why in found.items() if edge not in KNOWN_VIOLATIONS}
    assert not new, "new dependency violations:\n" + "\n".join(
        f"  {a} -> {b}: {why}" for (a, b), why in sorted(new.items())
    )


def test_known_violations_still_exist() -> None:
    fixed = KNOWN_VIOLATIONS - set(violations(import_graph()))
    assert not fixed, "fixed, so remove from KNOWN_VIOLATIONS:\n" + "\n".join(
        f"  {a} -> {b}" for a, b in sorted(fixed)
    )


# -- the checker itself, on small trees written here ----------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / ROOT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_checker_sees_lazy_relative_and_type_checking_imports(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "message.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from aonode.store.base import X\n",
            "store/__init__.py": "from .base import X\n",
            "store/base.py": "def f():\n    from ..scheduler import server\n",
            "scheduler/__init__.py": "",
            "scheduler/server.py": "from . import hashchain\nimport aonode.store.base\n",
            "scheduler/hashchain.py": "from aonode import errors, message\n",
            "errors.py": "",
        },
    )
    graph = import_graph(src)
    assert graph["aonode.message"] == {"aonode.store.base"}
    assert graph["aonode.store"] == {"aonode.store.base"}
    assert graph["aonode.store.base"] == {"aonode.scheduler.server"}
    assert graph["aonode.scheduler.server"] == {"aonode.scheduler.hashchain", "aonode.store.base"}
    assert graph["aonode.scheduler.hashchain"] == {"aonode.errors", "aonode.message"}
    found = violations(graph)
    cycle = ["message", "store.base", "scheduler.server", "scheduler.hashchain", "message"]
    assert set(found) == {
        ("aonode.scheduler.server", "aonode.store.base"),  # a short cycle ...
        *((f"aonode.{a}", f"aonode.{b}") for a, b in itertools.pairwise(cycle)),  # ... a long one
    }
    assert "values import no store" in found[("aonode.message", "aonode.store.base")]
    short = found[("aonode.scheduler.server", "aonode.store.base")]
    assert short.startswith(
        "on a cycle: aonode.scheduler.server -> aonode.store.base -> aonode.scheduler.server"
    )
    assert (
        "breaks 'store imports nothing above it'"
        in found[("aonode.store.base", "aonode.scheduler.server")]
    )


@pytest.mark.parametrize(
    ("edit", "edge"),
    [
        ("store/base.py", ("aonode.store.base", "aonode.scheduler")),
        ("message.py", ("aonode.message", "aonode.store")),
    ],
)
def test_checker_reports_a_new_bad_import(tmp_path: Path, edit: str, edge: Edge) -> None:
    src = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "message.py": "",
            "store/__init__.py": "",
            "store/base.py": "",
            "scheduler/__init__.py": "from aonode.store import base\n",
        },
    )
    assert violations(import_graph(src)) == {}
    (src / ROOT / edit).write_text(f"import {edge[1]}\n")
    assert edge in violations(import_graph(src))
