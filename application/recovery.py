"""What a runner cleans up when it starts: runs a gone process left unfinished, and sealed inputs.

A claimed run is orphaned when its runner is no longer alive; an unclaimed
PENDING run only when no other process of the service is alive (API-only
processes register too), since then this start is the restart of the
service itself. Orphans are cancelled through events as ``system:recovery``.
Sealed secret inputs are destroyed by whoever records a run's end; the sweep
catches runs that ended while no runner held them.
"""

from __future__ import annotations

import logging
from uuid import UUID

from application.executions import ExecutionService
from application.store import KasalStore
from domain.context import Actor, acting_as
from domain.errors import ConflictError, DomainError
from domain.execution import RESTART_MESSAGE, Execution

log = logging.getLogger("kasal.runner")


def recover_orphans(service: ExecutionService, store: KasalStore, others_alive: set[str]) -> list[UUID]:
    """Cancel the unfinished executions whose owner is gone; returns their ids."""
    recovered: list[UUID] = []
    for execution_id in service.index.unfinished():
        execution = store.find(execution_id)
        if not isinstance(execution, Execution) or execution.finished:
            continue
        owner = execution.claimed_by
        if (owner is None and others_alive) or (owner is not None and owner in others_alive):
            continue
        with acting_as(Actor(execution.group_id, "system:recovery", "admin", "recovery")):
            try:
                service.cancel(execution_id, RESTART_MESSAGE)
            except (ConflictError, DomainError):
                continue
        recovered.append(execution_id)
    if recovered:
        log.warning("cancelled %d execution(s) left unfinished by a previous process", len(recovered))
    return recovered


def sweep_sealed_inputs(service: ExecutionService) -> int:
    """Destroy the sealed inputs of runs that ended without destroying them (best effort)."""
    try:
        swept = service.sweep_secret_inputs()
    except Exception as exc:
        log.warning("sweeping sealed inputs failed: %s", exc)
        return 0
    if swept:
        log.info("destroyed the sealed inputs of %d ended execution(s)", swept)
    return swept
