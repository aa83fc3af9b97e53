"""Cycle detection over task ``context`` references.

Iterative on purpose: a long chain of tasks must not hit Python's recursion
limit, because validation promises never to raise.  The number of cycles
reported is capped so that a crafted config cannot make the report (each
cycle is a path of task names) grow quadratically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

MAX_CYCLES = 20


def find_cycles(graph: Mapping[str, Sequence[str]], limit: int = MAX_CYCLES) -> list[list[str]]:
    """Up to ``limit`` cycles as closed paths (``["a", "b", "a"]``), each once.

    Roots are visited in key order so the reported paths start where a reader
    of the YAML would start.  Not every elementary cycle is listed, but every
    cyclic group of tasks yields at least one (below the limit), which is
    enough to fix it.
    """
    done: set[str] = set()
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for root in graph:
        if root not in done and len(cycles) < limit:
            _walk(root, graph, done, cycles, seen, limit)
    return cycles


def _walk(
    root: str,
    graph: Mapping[str, Sequence[str]],
    done: set[str],
    cycles: list[list[str]],
    seen: set[tuple[str, ...]],
    limit: int,
) -> None:
    """Depth-first search from ``root`` with an explicit stack."""
    path = [root]
    on_path = {root: 0}
    pending = [iter(graph.get(root, ()))]
    while pending and len(cycles) < limit:
        target = next(pending[-1], None)
        if target is None:
            finished = path.pop()
            del on_path[finished]
            done.add(finished)
            pending.pop()
        elif target in on_path:
            _record(path[on_path[target]:] + [target], cycles, seen)
        elif target not in done:
            on_path[target] = len(path)
            path.append(target)
            pending.append(iter(graph.get(target, ())))


def _record(cycle: list[str], cycles: list[list[str]], seen: set[tuple[str, ...]]) -> None:
    """Keep a cycle unless a rotation of it was already recorded."""
    ring = cycle[:-1]
    start = ring.index(min(ring))
    canonical = tuple(ring[start:] + ring[:start])
    if canonical not in seen:
        seen.add(canonical)
        cycles.append(cycle)
