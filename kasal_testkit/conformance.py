"""``kasal conformance``: run the kit against a server and report each property.

``run`` probes the optional features once, runs ``KasalMachine`` for the
requested number of examples and then the execution check. When a property
fails, hypothesis's shortest failing example is kept (its steps and the
requests it sent) and the machine runs again, with the same seed, with that
property's checks off, until every property is judged: passed, failed, or not
supported by the server.
"""

from __future__ import annotations

import argparse
import random
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import FlakyFailure
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

from kasal_testkit import strategies as kit
from kasal_testkit.client import Identity, Session, Target
from kasal_testkit.machine import (
    AS_OF,
    EXECUTION,
    PROPERTIES,
    TENANCY,
    VERSIONS,
    ConformanceFailure,
    Features,
    machine_class,
)

PASSED, FAILED, NOT_SUPPORTED = "passed", "failed", "not supported"
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
MISSING = frozenset({404, 405, 501})
"""Answers that say a feature is not there."""


@dataclass
class Outcome:
    """How one property fared, and for a failure, what shows it."""

    name: str
    status: str
    detail: str = ""
    steps: str = ""
    requests: list[str] = field(default_factory=list)


@dataclass
class Report:
    """Every property's outcome, with the run's size, speed and seed."""

    outcomes: list[Outcome]
    seed: int
    examples: int
    seconds: float
    base_url: str

    @property
    def ok(self) -> bool:
        return all(o.status != FAILED for o in self.outcomes)

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0

    def render(self) -> str:
        lines = [f"kasal conformance against {self.base_url} (seed {self.seed})", ""]
        for outcome in self.outcomes:
            lines.append(f"  {outcome.status.upper():<14} {outcome.name}" + (f": {outcome.detail}"
                                                                             if outcome.detail else ""))
        lines.append("")
        lines.append(f"{self.examples} state-machine examples in {self.seconds:.1f} s "
                     f"({self.examples_per_second:.1f} examples/s)")
        for outcome in self.outcomes:
            if outcome.status != FAILED:
                continue
            lines += ["", f"--- {outcome.name} failed: {outcome.detail}"]
            if outcome.steps:
                lines += ["shortest failing example (hypothesis):", outcome.steps]
            if outcome.requests:
                lines.append("its requests:")
                lines += [f"  {r}" for r in outcome.requests]
            lines.append(f"reproduce with --seed {self.seed}")
        return "\n".join(lines)

    def junit_xml(self) -> str:
        suite = ET.Element("testsuite", name="kasal conformance", tests=str(len(self.outcomes)),
                           failures=str(sum(o.status == FAILED for o in self.outcomes)),
                           skipped=str(sum(o.status == NOT_SUPPORTED for o in self.outcomes)),
                           time=f"{self.seconds:.3f}")
        for outcome in self.outcomes:
            case = ET.SubElement(suite, "testcase", classname="kasal_testkit", name=outcome.name)
            if outcome.status == FAILED:
                failure = ET.SubElement(case, "failure", message=outcome.detail)
                failure.text = "\n".join([outcome.steps, *outcome.requests, f"reproduce with --seed {self.seed}"])
            elif outcome.status == NOT_SUPPORTED:
                ET.SubElement(case, "skipped", message=outcome.detail or NOT_SUPPORTED)
        return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def probe(target: Target, session: Session) -> tuple[Features, dict[str, str]]:
    """Ask once which optional features the server has, on an agent made for the purpose."""
    first, second = target.identities()
    reasons: dict[str, str] = {}
    if second is None:
        reasons[TENANCY] = "needs a second identity (--second-token)"
    body = {"name": "kit probe", "role": "Prober", "goal": "Probe", "backstory": "Short-lived",
            "llm": kit.OFFLINE_MODEL}
    created = session.call(first, "POST", "/agents", json_body=body)
    if created.status_code != 201:
        raise RuntimeError(f"POST /api/v1/agents answered {created.status_code}: {created.text[:300]}")
    agent = created.json()
    versions = session.call(first, "GET", f"/agents/{agent['id']}/versions")
    if versions.status_code in MISSING:
        reasons[VERSIONS] = f"GET /agents/{{id}}/versions answered {versions.status_code}"
    as_of = session.call(first, "GET", f"/agents/{agent['id']}", params={"as_of": agent.get("updated_at", "")})
    if as_of.status_code in MISSING or as_of.status_code == 400:
        reasons[AS_OF] = f"GET /agents/{{id}}?as_of= answered {as_of.status_code}"
    session.call(first, "DELETE", f"/agents/{agent['id']}")
    session.exchanges.clear()
    features = Features(versions=VERSIONS not in reasons, as_of=AS_OF not in reasons, tenancy=TENANCY not in reasons)
    return features, reasons


def _settings(examples: int, steps: int) -> hypothesis_settings:
    return hypothesis_settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, database=None, derandomize=False,
        report_multiple_bugs=False, print_blob=False, suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
    )


def _failure_of(error: BaseException) -> ConformanceFailure | None:
    if isinstance(error, ConformanceFailure):
        return error
    if isinstance(error, FlakyFailure):
        for inner in error.exceptions:
            if isinstance(inner, ConformanceFailure):
                return inner
    return None


def _run_property_test(test: Callable[[], None]) -> tuple[BaseException | None, str]:
    """Run a hypothesis test, answering the error it ended with and what hypothesis reported."""
    reported: list[object] = []
    with with_reporter(reported.append):
        try:
            test()
        except Exception as error:  # a failing property, or a server the kit could not talk to
            notes = [str(n) for n in getattr(error, "__notes__", [])]
            return error, "\n".join([*(str(r) for r in reported), *notes])
    return None, "\n".join(str(r) for r in reported)


def run_machine(target: Target, session: Session, features: Features, examples: int, steps: int,
                run_seed: int, unsupported: dict[str, str]) -> tuple[list[Outcome], int, float]:
    """Run the state machine until every property is judged; answers outcomes, examples and seconds."""
    outcomes: dict[str, Outcome] = {p: Outcome(p, NOT_SUPPORTED, why) for p, why in unsupported.items()}
    disabled = frozenset(unsupported)
    counted, seconds = 0, 0.0
    while True:
        machine = seed(run_seed)(machine_class(target, session, features, disabled))

        def test(machine: Any = machine) -> None:
            run_state_machine_as_test(machine, settings=_settings(examples, steps))

        started = time.perf_counter()
        error, steps_text = _run_property_test(test)
        if not counted:
            counted, seconds = len(machine.examples), time.perf_counter() - started
        if error is None:
            break
        failure = _failure_of(error)
        if failure is None and machine.failures:
            failure = machine.failures[-1]
            steps_text = (f"(hypothesis could not replay it: the server answered the same requests differently, "
                          f"{type(error).__name__}; these are the requests of the last failing example)")
        if failure is None or failure.prop in disabled:
            for prop in PROPERTIES:
                if prop not in disabled and prop not in outcomes:
                    outcomes[prop] = Outcome(prop, FAILED, f"the run stopped on an unexpected error: {error!r}",
                                             steps_text)
            break
        outcomes[failure.prop] = Outcome(failure.prop, FAILED, failure.message, steps_text,
                                         [str(e) for e in failure.exchanges])
        disabled |= {failure.prop}
    for prop in PROPERTIES:
        outcomes.setdefault(prop, Outcome(prop, PASSED))
    return [outcomes[p] for p in PROPERTIES], counted, seconds


def wait_for_end(session: Session, who: Identity, execution_id: str, timeout: float) -> dict[str, Any]:
    """Poll an execution until it is COMPLETED, FAILED or CANCELLED (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        response = session.call(who, "GET", f"/executions/{execution_id}")
        body = response.json() if response.status_code == 200 else {}
        if body.get("status") in TERMINAL or time.monotonic() > deadline:
            return dict(body)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def check_executions(target: Target, session: Session, examples: int, run_seed: int) -> Outcome:
    """Inline crews on ``offline/echo`` run to COMPLETED, and their logs come in order, whole and paged."""

    # No shrinking: every attempt is a whole run, and the drawn crews are small already.
    @hypothesis_settings(_settings(examples, 1), phases=(Phase.generate,), max_examples=examples)
    @given(body=kit.execution_bodies())
    def runs_end_with_ordered_logs(body: dict[str, Any]) -> None:
        session.exchanges.clear()
        who, _ = target.identities()

        def fail(message: str) -> None:
            raise ConformanceFailure(EXECUTION, message, list(session.exchanges))

        started = session.call(who, "POST", "/executions", json_body=body)
        if started.status_code != 201:
            fail(f"POST /executions answered {started.status_code}: {started.text[:300]}")
        execution_id = started.json().get("execution_id")
        ended = wait_for_end(session, who, execution_id, target.execution_timeout)
        if ended.get("status") != "COMPLETED":
            fail(f"execution {execution_id} on {kit.OFFLINE_MODEL} ended {ended.get('status')!r} "
                 f"(error: {ended.get('error')!r}) within {target.execution_timeout:.0f} s")
        whole = session.call(who, "GET", f"/execution-logs/{execution_id}", params={"limit": 1000})
        if whole.status_code != 200:
            fail(f"GET /execution-logs/{execution_id} answered {whole.status_code}")
        seqs = [line.get("seq") for line in whole.json().get("items", [])]
        if not seqs:
            fail(f"a completed execution has no log lines: {whole.text[:300]}")
        if any(not isinstance(s, int) for s in seqs) or seqs != sorted(set(seqs)):
            fail(f"log lines of {execution_id} are not in order: seq {seqs}")
        paged: list[Any] = []
        after = 0
        for _ in range(len(seqs) + 2):
            page = session.call(who, "GET", f"/execution-logs/{execution_id}", params={"after": after, "limit": 2})
            lines = page.json().get("items", []) if page.status_code == 200 else []
            paged += [line.get("seq") for line in lines]
            if not lines or not page.json().get("has_more"):
                break
            after = lines[-1].get("seq")
        if paged != seqs:
            fail(f"paging the log by after= met seq {paged}; the whole log is {seqs}")

    error, steps_text = _run_property_test(seed(run_seed)(runs_end_with_ordered_logs))
    if error is None:
        return Outcome(EXECUTION, PASSED)
    failure = _failure_of(error)
    if failure is None:
        return Outcome(EXECUTION, FAILED, f"unexpected error: {error!r}", steps_text)
    return Outcome(EXECUTION, FAILED, failure.message, steps_text, [str(e) for e in failure.exchanges])


def run(target: Target, *, examples: int = 100, run_seed: int | None = None, steps: int = 10,
        executions: int | None = None) -> Report:
    """Check a server: the state machine over ``examples`` examples, then ``executions`` runs
    (default: one per 25 examples, at least 2; 0 skips them)."""
    run_seed = random.randrange(2**32) if run_seed is None else run_seed
    client = target.open()
    try:
        session = Session(client)
        features, unsupported = probe(target, session)
        outcomes, counted, seconds = run_machine(target, session, features, examples, steps, run_seed, unsupported)
        runs = max(2, examples // 25) if executions is None else executions
        outcomes.append(check_executions(target, session, runs, run_seed) if runs
                        else Outcome(EXECUTION, NOT_SUPPORTED, "skipped (--executions 0)"))
    finally:
        if client is not target.client:
            client.close()
    return Report(outcomes, run_seed, counted, seconds, target.base_url if target.client is None
                  else str(target.client.base_url))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``kasal conformance``."""
    parser.add_argument("--base-url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--token", help="bearer token (token mode); without one, local mode with fresh groups")
    parser.add_argument("--second-token", help="a token of another group, for the tenancy checks")
    parser.add_argument("--examples", type=int, default=100, help="state-machine examples (default 100)")
    parser.add_argument("--steps", type=int, default=10, help="requests rules per example (default 10)")
    parser.add_argument("--executions", type=int, help="executions to run (default examples/25, at least 2)")
    parser.add_argument("--seed", type=int, help="hypothesis seed, to reproduce a run")
    parser.add_argument("--junit-xml", help="also write the outcomes as JUnit XML to this file")


def main(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    """Run ``kasal conformance`` with parsed arguments; 1 when a property failed."""
    target = Target(base_url=args.base_url, token=args.token, second_token=args.second_token)
    try:
        report = run(target, examples=args.examples, run_seed=args.seed, steps=args.steps,
                     executions=args.executions)
    except (httpx.HTTPError, RuntimeError) as error:
        out(f"kasal conformance: cannot check {args.base_url}: {error}")
        return 2
    out(report.render())
    if args.junit_xml:
        with open(args.junit_xml, "w", encoding="utf-8") as file:
            file.write(report.junit_xml())
    return 0 if report.ok else 1


__all__: Sequence[str] = ("Outcome", "Report", "add_arguments", "check_executions", "main", "probe", "run")
