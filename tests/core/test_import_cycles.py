"""No import cycle inside durable_core at run time.

import-linter's layers contract checks imports between layers; a cycle inside one layer (two
store modules importing each other through function-local imports, say) passes it. This test
closes that gap: it reads every import the package runs (top level and inside functions; not
the ones under ``if TYPE_CHECKING:``) and fails naming each cycle.
"""

from __future__ import annotations

import grimp

PACKAGE = "durable_core"


def run_time_import_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph(PACKAGE, exclude_type_checking_imports=True, cache_dir=None)
    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        # The package itself only re-exports; importing it is how users get the API, and
        # a module importing a name from it would fail at import time anyway.
        targets = graph.find_modules_directly_imported_by(module) - {PACKAGE}
        edges[module] = {t for t in targets if t.startswith(PACKAGE + ".")}
    return edges


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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
    return found


def test_strongly_connected_finds_a_cycle_and_nothing_else() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(graph) == [["a", "b", "c"]]


def test_durable_core_has_no_run_time_import_cycle() -> None:
    cycles = strongly_connected(run_time_import_graph())
    assert cycles == [], "run-time import cycles in durable_core: " + "; ".join(
        " <-> ".join(c) for c in cycles
    )
