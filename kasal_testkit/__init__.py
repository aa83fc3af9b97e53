"""A property-based test kit for any server speaking the Kasal REST API.

It talks HTTP only (``httpx``), so it checks this service and any other
implementation alike:

- ``kasal_testkit.strategies``: hypothesis strategies of valid request bodies
  (agents, tasks, crews with consistent references, templates, schedules,
  executions on ``offline/echo``) and of bodies that must be refused;
- ``kasal_testkit.machine``: ``KasalMachine``, a state machine checking CRUD,
  read-your-writes, pagination, tenancy, ``If-Match``, ``Idempotency-Key``,
  versions and ``as_of`` against a plain in-memory model;
- ``kasal_testkit.conformance``: ``run`` and the ``kasal conformance`` command's report.
"""

from kasal_testkit.client import Identity, Session, Target

__all__ = ["Identity", "Session", "Target"]
