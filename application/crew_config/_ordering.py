"""Rules about task order: context references, cycles and async execution.

CrewAI refuses, when a ``Crew`` is built, a context task that runs later
("context dependency on a future task") whatever the process, a crew ending
with several async tasks, and an async task whose context is another async
task of the same parallel run.  All three are errors here for that reason.
"""

from __future__ import annotations

from itertools import pairwise

from ._checker import Checker, Names
from ._graph import find_cycles
from ._util import child, item

TASKS = "tasks_yaml"
MAX_CYCLE_SHOWN = 12


def check_context(tasks: dict[str, dict[str, object]], checker: Checker) -> None:
    """Context entries name existing, earlier tasks, without cycles.

    A "runs later" error is not repeated for edges already reported as part
    of a cycle: every cycle contains such an edge, and the cycle says more.
    """
    order = {key: index for index, key in enumerate(tasks)}
    known = Names.of(list(tasks))
    edges = {key: _context_edges(key, entry, known, checker) for key, entry in tasks.items()}
    in_cycle: set[tuple[str, str]] = set()
    graph = {key: list(targets) for key, targets in edges.items()}
    for cycle in find_cycles(graph):
        in_cycle.update(pairwise(cycle))
        checker.error(edges[cycle[-2]][cycle[-1]], _cycle_message(cycle))
    for key, targets in edges.items():
        for target, path in targets.items():
            if order[target] > order[key] and (key, target) not in in_cycle:
                checker.error(path, f"refers to {target}, which runs after {key}; context may only name earlier tasks")


def _context_edges(key: str, entry: dict[str, object], known: Names, checker: Checker) -> dict[str, str]:
    """``{target: path}`` for each resolvable context entry of one task."""
    path = child(child(TASKS, key), "context")
    edges: dict[str, str] = {}
    for entry_path, target in checker.names(entry.get("context"), path, "task"):
        if target not in known:
            hint = checker.hint(target, known.ordered)
            checker.error(entry_path, f"unknown task {target!r}{hint}; known tasks: {known.shown}")
        elif target in edges:
            checker.warn(entry_path, f"task {target} is listed more than once")
        else:
            edges[target] = entry_path
    return edges


def _cycle_message(cycle: list[str]) -> str:
    """Name the cycle; very long ones are elided so messages stay small."""
    if len(cycle) == 2:
        return f"a task cannot be its own context ({cycle[0]} -> {cycle[1]})"
    shown = cycle
    if len(cycle) > MAX_CYCLE_SHOWN:
        hidden = len(cycle) - MAX_CYCLE_SHOWN
        shown = cycle[: MAX_CYCLE_SHOWN // 2] + [f"... ({hidden} more)"] + cycle[-MAX_CYCLE_SHOWN // 2 :]
    return f"context cycle: {' -> '.join(shown)}"


def check_async(tasks: dict[str, dict[str, object]], checker: Checker) -> None:
    """CrewAI's two async rules: one trailing async task, no async-on-async context.

    Consecutive async tasks run in parallel, so one cannot consume another's
    output; and the crew's final output needs a single last task to wait on.
    """
    keys = list(tasks)
    is_async = [tasks[key].get("async_execution") is True for key in keys]
    trailing = _trailing_true(is_async)
    if trailing > 1:
        names = ", ".join(keys[-trailing:][:MAX_CYCLE_SHOWN])
        checker.error(
            TASKS, f"the crew must end with at most one asynchronous task; {names} all run asynchronously at the end"
        )
    order = {key: index for index, key in enumerate(keys)}
    run_start = 0
    for index, key in enumerate(keys):
        if not is_async[index]:
            run_start = index + 1
        else:
            _check_parallel_context(key, tasks[key], range(run_start, index), order, checker)


def _trailing_true(flags: list[bool]) -> int:
    count = 0
    for flag in reversed(flags):
        if not flag:
            break
        count += 1
    return count


def _check_parallel_context(
    key: str, entry: dict[str, object], parallel: range, order: dict[str, int], checker: Checker
) -> None:
    """Report context naming an async task of the same parallel run as ``key``."""
    context = entry.get("context")
    if not isinstance(context, list):
        return
    for position, target in enumerate(context):
        if isinstance(target, str) and order.get(target, -1) in parallel:
            checker.error(
                item(child(child(TASKS, key), "context"), position),
                f"{target} runs asynchronously in parallel with this task, so its output is not available; "
                "put a synchronous task between them",
            )
