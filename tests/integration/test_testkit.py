"""kasal_testkit against this service: it passes, it catches seeded faults, and its bodies are right.

The kit talks HTTP through any ``httpx.Client``; here that is Litestar's test
client over the in-process app, and for the faults a client whose transport
rewrites the service's answers (or the requests) the way a faulty server would.
"""

from __future__ import annotations

import itertools
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from interface.app import create_app
from interface.settings import Settings
from interface.wiring import wire
from kasal_testkit import strategies as kit
from kasal_testkit.client import Target
from kasal_testkit.conformance import FAILED, PASSED, run
from kasal_testkit.machine import EXECUTION, IF_MATCH, PAGINATION, PROPERTIES, TENANCY

API = "/api/v1"
UNIQUE = itertools.count()
"""Suffixes for names that must be unique in a group (hypothesis may draw one name twice)."""


def app_client(settings: Settings, run_workers: bool) -> TestClient[Any]:
    return TestClient(app=create_app(wire(settings.with_(run_workers=run_workers, pool_size=3))), timeout=120)


@pytest.fixture
def service(settings: Settings) -> Iterator[TestClient[Any]]:
    with app_client(settings, run_workers=False) as client:
        yield client


def test_the_kit_passes_against_this_service_at_hundreds_of_examples(settings: Settings) -> None:
    with app_client(settings, run_workers=True) as client:
        report = run(Target(client=client), examples=300, run_seed=20260501, executions=3)
    assert {o.name: o.status for o in report.outcomes} == dict.fromkeys((*PROPERTIES, EXECUTION), PASSED), \
        report.render()
    assert report.ok and report.examples >= 300
    assert report.examples_per_second > 3, report.render()
    print(f"\n{report.examples} examples in {report.seconds:.1f} s: {report.examples_per_second:.1f} examples/s")
    suite = ET.fromstring(report.junit_xml())
    assert suite.get("failures") == "0" and len(suite.findall("testcase")) == len(PROPERTIES) + 1


# -- seeded faults -------------------------------------------------------------------


class Faulty(httpx.BaseTransport):
    """Passes requests to the service's transport, letting ``fault`` rewrite each request and answer."""

    def __init__(self, inner: httpx.BaseTransport,
                 fault: Callable[[httpx.Request, dict[str, Any] | None], dict[str, Any] | None]) -> None:
        self.inner = inner
        self.fault = fault

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        try:
            body = response.json()
        except ValueError:
            body = None
        changed = self.fault(request, body if isinstance(body, dict) else None)
        if changed is None:
            return response
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, headers=headers, content=json.dumps(changed).encode())


def is_list(request: httpx.Request, body: dict[str, Any] | None) -> bool:
    return request.method == "GET" and body is not None and isinstance(body.get("items"), list)


def drop_from_page_two(request: httpx.Request, body: dict[str, Any] | None) -> dict[str, Any] | None:
    if is_list(request, body) and int(request.url.params.get("offset", 0)) > 0 and body and body["items"]:
        return {**body, "items": body["items"][1:]}
    return None


class LeakAcrossGroups:
    """Remembers an item some group listed and adds it to the last page of another group's list."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, dict[str, Any]]] = {}

    def __call__(self, request: httpx.Request, body: dict[str, Any] | None) -> dict[str, Any] | None:
        kind = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if not is_list(request, body) or body is None or kind not in ("agents", "tasks", "crews", "templates"):
            return None
        group = request.headers.get("x-group-id", "")
        remembered = self.seen.get(kind)
        if body["items"] and not body["items"][0].get("built_in"):
            self.seen[kind] = (group, body["items"][0])
        if remembered and remembered[0] != group and not body["has_more"]:
            return {**body, "items": [*body["items"], remembered[1]]}
        return None


def reverse_logs(request: httpx.Request, body: dict[str, Any] | None) -> dict[str, Any] | None:
    if "/execution-logs/" in request.url.path and body is not None and len(body.get("items", [])) > 1:
        return {**body, "items": body["items"][::-1]}
    return None


class IgnoreIfMatch(httpx.BaseTransport):
    """A server that never looks at If-Match."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if "if-match" in request.headers:
            del request.headers["if-match"]
        return self.inner.handle_request(request)


def faulty_client(service: TestClient[Any], wrap: Callable[[httpx.BaseTransport], httpx.BaseTransport]) -> httpx.Client:
    return httpx.Client(base_url=service.base_url, transport=wrap(service._transport), timeout=60)


@pytest.mark.parametrize(("fault", "caught_as", "also"), [
    (lambda inner: Faulty(inner, drop_from_page_two), PAGINATION, set()),
    # The leaked item makes its page one longer than the total says, which pagination notices too.
    (lambda inner: Faulty(inner, LeakAcrossGroups()), TENANCY, {PAGINATION}),
    (IgnoreIfMatch, IF_MATCH, set()),
], ids=["drops-an-item-from-page-two", "leaks-another-groups-item", "ignores-if-match"])
def test_a_seeded_fault_fails_the_kit_with_its_requests(
        service: TestClient[Any], fault: Callable[[httpx.BaseTransport], httpx.BaseTransport], caught_as: str,
        also: set[str],
) -> None:
    started = time.perf_counter()
    with faulty_client(service, fault) as client:
        report = run(Target(client=client), run_seed=7, executions=0)  # the default 100 examples
    outcome = {o.name: o for o in report.outcomes}[caught_as]
    assert outcome.status == FAILED, report.render()
    assert outcome.requests, "the report shows the failing example's requests"
    others = {o.name: o.status for o in report.outcomes if o.name not in {caught_as, EXECUTION, *also}}
    assert others == {p: PASSED for p in PROPERTIES if p not in {caught_as, *also}}, report.render()
    assert not report.ok and "reproduce with --seed 7" in report.render()
    assert time.perf_counter() - started < 120
    print(f"\n{report.render()}")


def test_reordered_execution_logs_fail_the_execution_check(settings: Settings) -> None:
    with app_client(settings, run_workers=True) as service, \
            faulty_client(service, lambda inner: Faulty(inner, reverse_logs)) as client:
        report = run(Target(client=client), examples=5, run_seed=3, executions=2)
    outcomes = {o.name: o for o in report.outcomes}
    assert outcomes[EXECUTION].status == FAILED and "not in order" in outcomes[EXECUTION].detail, report.render()
    assert all(outcomes[p].status == PASSED for p in PROPERTIES), report.render()


# -- the strategies against this service ---------------------------------------------

SETTINGS = hypothesis_settings(max_examples=25, deadline=None, database=None,
                               suppress_health_check=[HealthCheck.function_scoped_fixture])


def post(client: TestClient[Any], path: str, body: Any, group: str = "kit-bodies") -> dict[str, Any]:
    response = client.post(f"{API}/{path}", json=body, headers={"X-Group-Id": group})
    assert response.status_code == 201, (path, body, response.text)
    return dict(response.json())


@SETTINGS
@given(agent=kit.agent_bodies(), task=kit.task_bodies(), template=kit.template_bodies())
def test_every_generated_agent_task_and_template_is_created(
        service: TestClient[Any], agent: dict[str, Any], task: dict[str, Any], template: dict[str, Any],
) -> None:
    assert post(service, "agents", agent)["role"] == agent["role"]
    assert post(service, "tasks", task)["description"] == task["description"]
    assert post(service, "templates", {**template, "name": f"{template['name']} #{next(UNIQUE)}"})["variables"] == \
        template["variables"]


@SETTINGS
@given(plan=kit.crew_plans(), data=st.data())
def test_every_generated_crew_with_its_references_and_a_schedule_is_created(
        service: TestClient[Any], plan: kit.CrewPlan, data: st.DataObject,
) -> None:
    group = f"kit-crew-{next(UNIQUE)}"
    agent_ids = [post(service, "agents", body, group)["id"] for body in plan.agents]
    task_ids: list[str] = []
    for index in range(len(plan.tasks)):
        task = post(service, "tasks", plan.task_body(index, agent_ids, task_ids), group)
        assert task["context"] == [task_ids[i] for i in plan.tasks[index].context]
        task_ids.append(task["id"])
    crew = post(service, "crews", plan.crew_body(agent_ids, task_ids), group)
    assert crew["agent_ids"] == agent_ids and crew["task_ids"] == task_ids
    schedule = data.draw(kit.schedule_bodies(crew["id"], plan.inputs()))
    created = post(service, "scheduler/schedules", schedule, group)
    assert created["cron_expression"] == schedule["cron_expression"]
    assert created["timezone"] == schedule.get("timezone", "UTC")
    checked = service.post(f"{API}/crews/debug", json={"crew_id": crew["id"]}, headers={"X-Group-Id": group})
    assert checked.status_code == 200, checked.text


@SETTINGS
@given(body=kit.execution_bodies())
def test_every_generated_execution_is_accepted(service: TestClient[Any], body: dict[str, Any]) -> None:
    started = post(service, "executions", body)
    assert started["status"] == "PENDING"
    assert set(body["inputs"]) == set(kit.placeholders_in(body["agents_yaml"], body["tasks_yaml"]))


@hypothesis_settings(max_examples=60, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(invalid=kit.invalid_bodies())
def test_every_invalid_body_gets_its_stated_error(service: TestClient[Any], invalid: kit.InvalidBody) -> None:
    response = service.post(f"{API}/{invalid.resource}", json=invalid.body, headers={"X-Group-Id": "kit-invalid"})
    assert invalid.matches(response.status_code, response.text), (invalid.why, response.status_code, response.text)
