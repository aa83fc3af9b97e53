"""A hypothesis state machine that drives a Kasal REST API server and checks it against a plain model.

Each example is a short random sequence of requests by two callers (A and B:
two fresh groups in local mode, two tokens otherwise). The model is what those
requests must have done: per caller and resource, the items created and not
deleted, with every body a write answered (by version). Every rule checks the
answers against it, and each check names the property it belongs to:

- ``crud``: creates answer 201 with what was sent, updates 200 with the change
  and the next version, deletes 204 and then 404;
- ``read-your-writes``: a read right after a write shows it (by id, as the
  newest item of the list, and in every list after);
- ``pagination``: walking ``limit``/``offset`` meets every item exactly once,
  with ``total`` and ``has_more`` right on every page;
- ``tenancy``: nothing of one caller is in the other's lists, and the other's
  reads, updates and deletes of it are 404 and change nothing;
- ``if-match``: a stale ``If-Match`` is 412 and changes nothing, the current one succeeds;
- ``idempotency``: a create sent again with its ``Idempotency-Key`` answers the
  same and creates nothing;
- ``versions`` and ``as_of`` (when the server offers them): each version the
  writes answered reads back as it was.

``disabled`` turns a property's checks off, so that after one property fails
the others can still be judged (``kasal_testkit.conformance`` does that).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from kasal_testkit import strategies as kit
from kasal_testkit.client import Exchange, Identity, Session, Target

CRUD = "crud"
READ_YOUR_WRITES = "read-your-writes"
PAGINATION = "pagination"
TENANCY = "tenancy"
IF_MATCH = "if-match"
IDEMPOTENCY = "idempotency"
VERSIONS = "versions"
AS_OF = "as_of"
EXECUTION = "execution"
PROPERTIES = (CRUD, READ_YOUR_WRITES, PAGINATION, TENANCY, IF_MATCH, IDEMPOTENCY, VERSIONS, AS_OF)
"""What the state machine checks (``execution`` is checked by ``conformance.check_executions``)."""

RESOURCES = ("agents", "tasks", "crews", "templates")
UNIQUE_NAMES = frozenset({"crews", "templates"})


class ConformanceFailure(AssertionError):
    """A check of ``prop`` failed; ``exchanges`` are the requests of the example so far."""

    def __init__(self, prop: str, message: str, exchanges: list[Exchange]) -> None:
        super().__init__(f"[{prop}] {message}")
        self.prop = prop
        self.message = message
        self.exchanges = exchanges


@dataclass(frozen=True)
class Features:
    """The optional parts of the API the server offers (probed once before the run)."""

    versions: bool = True
    as_of: bool = True
    tenancy: bool = True
    """False when only one identity is available (token mode without a second token)."""


@dataclass
class Item:
    """What the model knows of one resource: its latest body and the body answered at each version."""

    body: dict[str, Any]
    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.body["id"])

    @property
    def version(self) -> int | None:
        version = self.body.get("version")
        return version if isinstance(version, int) else None

    def next_version(self, changes: Mapping[str, Any]) -> int | None:
        """The version an update to ``changes`` must answer: the next one, or this one if nothing changes."""
        if self.version is None:
            return None
        return self.version + 1 if any(self.body.get(k) != v for k, v in changes.items()) else self.version

    def record(self, body: dict[str, Any]) -> None:
        self.body = body
        if self.version is not None:
            self.snapshots[self.version] = body


sides = st.sampled_from([0, 1])
picks = st.integers(0, 63)
resources = st.sampled_from(RESOURCES)


class KasalMachine(RuleBasedStateMachine):
    """The rules; ``machine_class`` binds them to a session, the probed features and the disabled checks."""

    session: ClassVar[Session]
    target: ClassVar[Target]
    features: ClassVar[Features]
    disabled: ClassVar[frozenset[str]]
    examples: ClassVar[list[int]]
    """One entry per example started (the conformance runner counts them)."""
    failures: ClassVar[list[ConformanceFailure]]
    """Every failure raised, the last one first to look at when hypothesis ends on another error
    (a server that answers a replayed example differently makes hypothesis report it as flaky)."""

    def __init__(self) -> None:
        super().__init__()
        type(self).examples.append(1)
        self.session.exchanges.clear()
        first, second = self.target.identities()
        self.who: list[Identity | None] = [first, second]
        self.items: dict[tuple[int, str], dict[str, Item]] = {}
        self.baseline: dict[tuple[int, str], set[str]] = {}
        self.names = itertools.count(1)
        self.run_tag = uuid.uuid4().hex[:12]

    # -- helpers ---------------------------------------------------------------

    def check(self, prop: str, ok: bool, message: str) -> bool:
        """Fail the example for ``prop`` unless ``ok`` (or ``prop`` is disabled); answers ``ok``."""
        if not ok and prop not in self.disabled:
            failure = ConformanceFailure(prop, message, list(self.session.exchanges))
            type(self).failures.append(failure)
            raise failure
        return ok

    def expect(self, prop: str, response: httpx.Response, *statuses: int) -> bool:
        return self.check(prop, response.status_code in statuses,
                          f"{response.request.method} {response.request.url.path} answered "
                          f"{response.status_code}, expected {' or '.join(map(str, statuses))}: {response.text[:300]}")

    def body_of(self, prop: str, response: httpx.Response) -> dict[str, Any] | None:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.check(prop, False, f"{response.request.url.path} answered no JSON object: {response.text[:300]}")
            return None
        return body

    def identity(self, side: int) -> tuple[int, Identity]:
        """The caller for ``side``; side B falls back to A when there is only one identity."""
        who = self.who[side]
        if who is None:
            side, who = 0, self.who[0]
        assert who is not None
        return side, who

    def call(self, who: Identity, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.session.call(who, method, path, **kwargs)

    def live(self, side: int, resource: str) -> dict[str, Item]:
        return self.items.setdefault((side, resource), {})

    def pick(self, index: int) -> tuple[int, Identity, str, Item] | None:
        """One of all the items the example holds (any caller, any resource), by a drawn index."""
        every = [(side, resource, item) for (side, resource), live in self.items.items() for item in live.values()]
        if not every:
            return None
        side, resource, item = every[index % len(every)]
        who = self.who[side]
        assert who is not None
        return side, who, resource, item

    def ensure_baseline(self, side: int, resource: str) -> None:
        """Note what the caller already sees of ``resource`` (built-ins, a token's earlier data) before writing."""
        if (side, resource) in self.baseline:
            return
        _, who = self.identity(side)
        seen: set[str] = set()
        offset = 0
        while True:
            response = self.call(who, "GET", f"/{resource}", params={"limit": 100, "offset": offset})
            if not self.expect(CRUD, response, 200):
                break
            page = self.body_of(PAGINATION, response) or {}
            items = page.get("items") or []
            self.check(TENANCY, not (foreign := [i.get("id") for i in items if self.foreign(side, resource, i)]),
                       f"GET /{resource} as {who.label} lists other groups' items: {foreign}")
            seen.update(str(i.get("id")) for i in items if not self.foreign(side, resource, i))
            offset += len(items)
            if not page.get("has_more") or not items:
                break
        self.baseline[(side, resource)] = seen - set(self.live(side, resource))

    def foreign(self, side: int, resource: str, item: Mapping[str, Any]) -> bool:
        """Whether a listed item is the other caller's, or (local mode) of a group another example made."""
        if str(item.get("id")) in self.live(1 - side, resource):
            return True
        own = self.who[side]
        group = item.get("group_id")
        return (self.target.local_mode and own is not None and isinstance(group, str) and group.startswith("kit-")
                and group != own.headers.get("X-Group-Id"))

    def unique(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with a name no other item of this example has (crews and templates have unique names)."""
        if resource in UNIQUE_NAMES:
            return {**body, "name": f"{body['name']} #{next(self.names)}"}
        return body

    def referenced(self, side: int, item_id: str) -> bool:
        """Whether a task or crew of the caller names this id (deleting it could be refused)."""
        for resource in ("tasks", "crews"):
            for other in self.live(side, resource).values():
                body = other.body
                refs = [body.get("agent_id"), *(body.get("context") or []), *(body.get("agent_ids") or []),
                        *(body.get("task_ids") or [])]
                if item_id in refs:
                    return True
        return False

    def draw_body(self, data: st.DataObject, side: int, resource: str) -> dict[str, Any]:
        agent_ids = list(self.live(side, "agents"))
        task_ids = list(self.live(side, "tasks"))
        strategy = {
            "agents": kit.agent_bodies(),
            "tasks": kit.task_bodies(agent_ids, task_ids),
            "crews": kit.crew_bodies(agent_ids, task_ids),
            "templates": kit.template_bodies(),
        }[resource]
        return self.unique(resource, data.draw(strategy))

    @staticmethod
    def changes(resource: str) -> st.SearchStrategy[dict[str, Any]]:
        return {"agents": kit.agent_changes(), "tasks": kit.task_changes(), "crews": kit.crew_changes(),
                "templates": kit.template_changes()}[resource]

    def shows(self, prop: str, answer: Mapping[str, Any], sent: Mapping[str, Any], what: str) -> bool:
        wrong = {k: (v, answer.get(k)) for k, v in sent.items() if answer.get(k) != v}
        return self.check(prop, not wrong, f"{what} answered other values than sent (sent, answered): {wrong}")

    def read_back(self, who: Identity, resource: str, item: Item) -> None:
        """A GET right after a write answers exactly what the write answered."""
        response = self.call(who, "GET", f"/{resource}/{item.id}")
        if self.expect(READ_YOUR_WRITES, response, 200):
            self.check(READ_YOUR_WRITES, response.json() == item.body,
                       f"GET /{resource}/{item.id} right after the write differs from the write's answer")

    def unchanged(self, who: Identity, resource: str, item: Item, prop: str, after: str) -> None:
        response = self.call(who, "GET", f"/{resource}/{item.id}")
        if self.expect(prop, response, 200):
            self.check(prop, response.json() == item.body, f"{resource} {item.id} changed after {after}")

    def created(self, side: int, who: Identity, resource: str, body: dict[str, Any],
                response: httpx.Response) -> Item | None:
        if not self.expect(CRUD, response, 201):
            return None
        answer = self.body_of(CRUD, response)
        if answer is None or "id" not in answer:
            self.check(CRUD, False, f"POST /{resource} answered no id")
            return None
        self.shows(CRUD, answer, body, f"POST /{resource}")
        item = Item(body=answer)
        item.record(answer)
        self.live(side, resource)[item.id] = item
        return item

    # -- rules -------------------------------------------------------------------

    @rule(data=st.data(), resource=resources, side=sides)
    def create(self, data: st.DataObject, resource: str, side: int) -> None:
        side, who = self.identity(side)
        self.ensure_baseline(side, resource)
        body = self.draw_body(data, side, resource)
        item = self.created(side, who, resource, body, self.call(who, "POST", f"/{resource}", json_body=body))
        if item is None:
            return
        self.read_back(who, resource, item)
        newest = self.call(who, "GET", f"/{resource}", params={"limit": 1})
        if self.expect(READ_YOUR_WRITES, newest, 200):
            first = [i.get("id") for i in newest.json().get("items", [])]
            self.check(READ_YOUR_WRITES, first[:1] == [item.id],
                       f"GET /{resource}?limit=1 right after creating {item.id} shows {first}, not the new item")

    @rule(data=st.data(), index=picks)
    def update(self, data: st.DataObject, index: int) -> None:
        if (picked := self.pick(index)) is None:
            return
        side, who, resource, item = picked
        changes = data.draw(self.changes(resource))
        response = self.call(who, "PUT", f"/{resource}/{item.id}", json_body=changes)
        if not self.expect(CRUD, response, 200):
            return
        answer = self.body_of(CRUD, response)
        if answer is None:
            return
        self.shows(CRUD, answer, changes, f"PUT /{resource}/{item.id}")
        if item.version is not None:
            self.check(CRUD, answer.get("version") == item.next_version(changes),
                       f"PUT /{resource}/{item.id} at version {item.version} answered version {answer.get('version')}"
                       f", not {item.next_version(changes)}")
        item.record(answer)
        self.read_back(who, resource, item)

    @rule(index=picks)
    def delete(self, index: int) -> None:
        if (picked := self.pick(index)) is None:
            return
        side, who, resource, item = picked
        if self.referenced(side, item.id):
            return
        response = self.call(who, "DELETE", f"/{resource}/{item.id}")
        if not self.expect(CRUD, response, 204, 200):
            return
        del self.live(side, resource)[item.id]
        gone = self.call(who, "GET", f"/{resource}/{item.id}")
        self.expect(READ_YOUR_WRITES, gone, 404)

    @rule(resource=resources, side=sides, limit=st.integers(1, 4))
    def page_through(self, resource: str, side: int, limit: int) -> None:
        side, who = self.identity(side)
        self.ensure_baseline(side, resource)
        mine = self.live(side, resource)
        expected = set(mine) | self.baseline[(side, resource)]
        theirs = set(self.live(1 - side, resource)) if self.who[1] is not None else set()
        seen: list[str] = []
        totals: set[int] = set()
        offset = 0
        for _ in range(len(expected) // limit + 3):
            response = self.call(who, "GET", f"/{resource}", params={"limit": limit, "offset": offset})
            if not self.expect(PAGINATION, response, 200):
                return
            page = self.body_of(PAGINATION, response)
            if page is None:
                return
            items = page.get("items") or []
            total = page.get("total")
            ids = [str(i.get("id")) for i in items]
            leaked = [i for i in ids if i in theirs or i not in expected]
            self.check(TENANCY, not leaked, f"GET /{resource} as {who.label} lists items that are not its own: "
                                            f"{leaked} ({'the other caller' if set(leaked) & theirs else 'unknown'})")
            for raw in items:
                ours = mine.get(str(raw.get("id")))
                if ours is not None:
                    self.check(READ_YOUR_WRITES, raw.get("version") == ours.version,
                               f"GET /{resource} shows {ours.id} at version {raw.get('version')}, "
                               f"its last write answered {ours.version}")
            self.check(PAGINATION, page.get("limit") == limit and page.get("offset") == offset,
                       f"page answered limit={page.get('limit')} offset={page.get('offset')} "
                       f"for limit={limit} offset={offset}")
            if isinstance(total, int):
                totals.add(total)
                self.check(PAGINATION, len(items) == max(0, min(limit, total - offset)),
                           f"page at offset {offset} (limit {limit}, total {total}) has {len(items)} items")
                self.check(PAGINATION, page.get("has_more") == (offset + len(items) < total),
                           f"has_more={page.get('has_more')} at offset {offset} with {len(items)} items of {total}")
            seen.extend(ids)
            offset += len(items)
            if not page.get("has_more") or not items:
                break
        self.check(PAGINATION, len(totals) <= 1, f"total changed while paging with nothing written: {sorted(totals)}")
        duplicates = sorted({i for i in seen if seen.count(i) > 1})
        self.check(PAGINATION, not duplicates, f"paging /{resource} by {limit} met items twice: {duplicates}")
        missing = sorted(expected - set(seen))
        self.check(PAGINATION, not missing, f"paging /{resource} by {limit} never met {missing}")
        self.check(PAGINATION, totals <= {len(expected)},
                   f"total {sorted(totals)} but the caller has {len(expected)} {resource}")

    @precondition(lambda self: self.features.tenancy)
    @rule(data=st.data(), index=picks)
    def trespass(self, data: st.DataObject, index: int) -> None:
        if (picked := self.pick(index)) is None:
            return
        side, owner, resource, item = picked
        intruder = self.who[1 - side]
        if intruder is None:
            return
        path = f"/{resource}/{item.id}"
        self.expect(TENANCY, self.call(intruder, "GET", path), 404)
        self.expect(TENANCY, self.call(intruder, "PUT", path, json_body=data.draw(self.changes(resource))), 404)
        self.expect(TENANCY, self.call(intruder, "DELETE", path), 404)
        self.unchanged(owner, resource, item, TENANCY, f"{intruder.label}'s update and delete")

    @rule(data=st.data(), index=picks)
    def conditional_update(self, data: st.DataObject, index: int) -> None:
        if (picked := self.pick(index)) is None:
            return
        side, who, resource, item = picked
        if item.version is None:
            return
        changes = data.draw(self.changes(resource))
        response = self.call(who, "PUT", f"/{resource}/{item.id}", json_body=changes,
                             headers={"If-Match": f'"{item.version}"'})
        if self.expect(IF_MATCH, response, 200) and (answer := self.body_of(IF_MATCH, response)) is not None:
            self.check(IF_MATCH, answer.get("version") == item.next_version(changes),
                       f"a PUT with the current If-Match {item.version} answered version {answer.get('version')}"
                       f", not {item.next_version(changes)}")
            item.record(answer)

    @rule(data=st.data(), index=picks, delete=st.booleans())
    def stale_write(self, data: st.DataObject, index: int, delete: bool) -> None:
        if (picked := self.pick(index)) is None:
            return
        side, who, resource, item = picked
        if item.version is None or (delete and self.referenced(side, item.id)):
            return
        stale = item.version - 1 if item.version > 1 else item.version + 1
        headers = {"If-Match": f'"{stale}"'}
        if delete:
            response = self.call(who, "DELETE", f"/{resource}/{item.id}", headers=headers)
        else:
            response = self.call(who, "PUT", f"/{resource}/{item.id}", json_body=data.draw(self.changes(resource)),
                                 headers=headers)
        if self.expect(IF_MATCH, response, 412):
            self.unchanged(who, resource, item, IF_MATCH, f"a {'DELETE' if delete else 'PUT'} with a stale If-Match")
        elif response.is_success:  # with if-match disabled: follow what the server did, so other checks hold
            if delete:
                del self.live(side, resource)[item.id]
            elif (answer := self.body_of(CRUD, response)) is not None:
                item.record(answer)

    @rule(data=st.data(), resource=resources, side=sides)
    def idempotent_create(self, data: st.DataObject, resource: str, side: int) -> None:
        side, who = self.identity(side)
        self.ensure_baseline(side, resource)
        body = self.draw_body(data, side, resource)
        headers = {"Idempotency-Key": f"kit-{self.run_tag}-{next(self.names)}"}
        first = self.call(who, "POST", f"/{resource}", json_body=body, headers=headers)
        item = self.created(side, who, resource, body, first)
        if item is None:
            return
        again = self.call(who, "POST", f"/{resource}", json_body=dict(reversed(body.items())), headers=headers)
        if not self.expect(IDEMPOTENCY, again, 201):
            return
        self.check(IDEMPOTENCY, again.json() == first.json(),
                   f"the replayed POST /{resource} answered another body: {again.text[:300]}")
        self.check(IDEMPOTENCY, again.headers.get("location") == first.headers.get("location"),
                   f"the replayed POST /{resource} answered Location {again.headers.get('location')}, "
                   f"not {first.headers.get('location')}")
        counted = self.call(who, "GET", f"/{resource}", params={"limit": 1})
        if self.expect(IDEMPOTENCY, counted, 200):
            expected = len(self.live(side, resource)) + len(self.baseline[(side, resource)])
            total = counted.json().get("total")
            self.check(IDEMPOTENCY, total == expected,
                       f"after a create and its replay, total is {total}; the caller made {expected}")

    @precondition(lambda self: self.features.versions)
    @rule(index=picks, which=picks)
    def versions(self, index: int, which: int) -> None:
        if (picked := self.pick(index)) is None:
            return
        _, who, resource, item = picked
        if item.version is None:
            return
        response = self.call(who, "GET", f"/{resource}/{item.id}/versions", params={"limit": 100})
        if not self.expect(VERSIONS, response, 200):
            return
        listed = [v.get("version") for v in response.json().get("items", [])]
        self.check(VERSIONS, listed == list(range(1, item.version + 1)),
                   f"/{resource}/{item.id}/versions lists {listed}; its writes answered versions 1 to {item.version}")
        known = sorted(item.snapshots)
        version = known[which % len(known)]
        one = self.call(who, "GET", f"/{resource}/{item.id}/versions/{version}")
        if self.expect(VERSIONS, one, 200):
            self.check(VERSIONS, one.json() == item.snapshots[version],
                       f"/{resource}/{item.id}/versions/{version} differs from what version {version}'s write answered")

    @precondition(lambda self: self.features.as_of)
    @rule(index=picks, which=picks)
    def as_of(self, index: int, which: int) -> None:
        if (picked := self.pick(index)) is None:
            return
        _, who, resource, item = picked
        if not item.snapshots:
            return
        known = sorted(item.snapshots)
        snapshot = item.snapshots[known[which % len(known)]]
        instant = snapshot.get("updated_at")
        if not isinstance(instant, str):
            return
        response = self.call(who, "GET", f"/{resource}/{item.id}", params={"as_of": instant})
        if self.expect(AS_OF, response, 200):
            self.check(AS_OF, response.json() == snapshot,
                       f"GET /{resource}/{item.id}?as_of={instant} differs from version {snapshot.get('version')}")

    def teardown(self) -> None:
        """In token mode, delete what the example created (fresh groups in local mode need no cleaning)."""
        if self.target.local_mode:
            return
        for (side, resource), live in sorted(self.items.items(), key=lambda kv: RESOURCES.index(kv[0][1]),
                                             reverse=True):
            who = self.who[side]
            for item_id in list(live)[::-1]:
                if who is not None:
                    self.session.call(who, "DELETE", f"/{resource}/{item_id}")


def machine_class(target: Target, session: Session, features: Features,
                  disabled: frozenset[str] = frozenset()) -> type[KasalMachine]:
    """``KasalMachine`` bound to a server, for ``run_state_machine_as_test``."""
    return type("KasalConformance", (KasalMachine,), {
        "target": target, "session": session, "features": features, "disabled": disabled, "examples": [],
        "failures": [],
    })
