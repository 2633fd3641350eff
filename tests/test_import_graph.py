"""The import graph of tui, engine and store has no cycle, counting function-level imports.

import-linter (`lint-imports` in `make test`) keeps the layers' contracts; a cycle inside one layer is
not a contract it checks, so this test walks grimp's graph (the one import-linter builds: every import
statement, lazy ones included, `if TYPE_CHECKING:` imports left out) and looks for strongly connected groups.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every group of two or more modules that import each other (Tarjan), and modules importing themselves."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in edges.get(v, ()):
                found.append(sorted(group))

    for m in sorted(edges):
        if m not in index:
            visit(m)
    return found


def build(*packages: str) -> grimp.ImportGraph:
    return grimp.build_graph(*packages, exclude_type_checking_imports=True, cache_dir=None)


def test_no_import_cycle_among_tui_engine_and_store() -> None:
    graph = build("tui", "engine", "store")
    assert len(graph.modules) > 50  # the real tree, not an empty graph
    assert cycles(graph) == []


def test_the_cycle_finder_sees_a_lazy_import_cycle_and_ignores_type_checking(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyc import b\n")
    (pkg / "b.py").write_text(textwrap.dedent("""
        def later():
            from cyc import a  # a lazy import is still a dependency
            return a
    """))
    (pkg / "c.py").write_text(textwrap.dedent("""
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from cyc import d
    """))
    (pkg / "d.py").write_text("from cyc import c\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cycles(build("cyc")) == [["cyc.a", "cyc.b"]]
