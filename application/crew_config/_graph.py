"""Cycle detection over task ``context`` references.

Iterative on purpose: a long chain of tasks must not hit Python's recursion
limit, because validation promises never to raise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

_ACTIVE, _DONE = 1, 2


def find_cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Cycles as closed paths (``["a", "b", "a"]``), one per back edge, each once.

    Roots are visited in key order so the reported paths start where a reader
    of the YAML would start.  Not every elementary cycle is listed, but every
    cyclic group of tasks yields at least one, which is enough to fix it.
    """
    state: dict[str, int] = {}
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for root in graph:
        if root not in state:
            _walk(root, graph, state, cycles, seen)
    return cycles


def _walk(
    root: str,
    graph: Mapping[str, Sequence[str]],
    state: dict[str, int],
    cycles: list[list[str]],
    seen: set[tuple[str, ...]],
) -> None:
    """Depth-first search from ``root`` with an explicit stack."""
    path = [root]
    pending = [iter(graph.get(root, ()))]
    state[root] = _ACTIVE
    while pending:
        target = next(pending[-1], None)
        if target is None:
            state[path.pop()] = _DONE
            pending.pop()
        elif target not in state:
            state[target] = _ACTIVE
            path.append(target)
            pending.append(iter(graph.get(target, ())))
        elif state[target] == _ACTIVE:
            _record(path[path.index(target):] + [target], cycles, seen)


def _record(cycle: list[str], cycles: list[list[str]], seen: set[tuple[str, ...]]) -> None:
    """Keep a cycle unless a rotation of it was already recorded."""
    ring = cycle[:-1]
    start = ring.index(min(ring))
    canonical = tuple(ring[start:] + ring[:start])
    if canonical not in seen:
        seen.add(canonical)
        cycles.append(cycle)
