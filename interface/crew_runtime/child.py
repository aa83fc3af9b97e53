"""Runs one crew inside a child process and reports what it observes over a pipe.

This module imports crewai at import time on purpose: it is preloaded by the
forkserver, so every child starts with crewai and litellm already in memory.
The service process itself must never import it (see ``runtime.py``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from interface.settings import quiet_libraries

quiet_libraries()  # before crewai/litellm: importing them otherwise starts network threads

from crewai import Agent, Crew, Process, Task  # noqa: E402
from crewai.events.stream_context import add_stream_sink  # noqa: E402
from crewai.tools import BaseTool  # noqa: E402
from litellm._internal_context import is_internal_call  # noqa: E402
from pydantic import BaseModel, create_model  # noqa: E402

from domain import execution_progress as ep  # noqa: E402
from domain.replay import Diverged, ReplayedFailure, Replayer  # noqa: E402
from domain.run_options import schema_of  # noqa: E402
from interface.crew_runtime.catalogue_tools import (  # noqa: E402
    CatalogueTools,
    ToolError,
    ToolFactory,
    use_credentials,
    with_options,
)
from interface.crew_runtime.messages import CrewJob, decode_job  # noqa: E402
from interface.crew_runtime.observe import EventForwarder, Sender  # noqa: E402
from interface.crew_runtime.repeat import replayed, reuse, reused_observations  # noqa: E402
from interface.crew_runtime.service_llm import ServiceLLM  # noqa: E402
from interface.crew_runtime.tools import UnknownTool  # noqa: E402
from interface.llm_gateway import (  # noqa: E402
    MissingCredential,
    complete,
    require_credential,
)

# Passed to crewai as they are; the rest of an agent's fields are translated in ``_agent``
# (llm, temperature, max_tokens, function_calling_llm, tools, tool_configs) or refused when
# written (``domain/run_options.py``). README "What a run honours" lists every field.
AGENT_OPTIONS = ("allow_delegation", "verbose", "max_iter", "max_rpm", "max_execution_time",
                 "max_retry_limit", "respect_context_window", "inject_date", "reasoning", "cache",
                 "use_system_prompt", "system_template", "prompt_template", "response_template",
                 "date_format", "max_reasoning_attempts", "use_better_compaction", "planning")
AGENT_CALL_OPTIONS = ("temperature", "max_tokens")
TASK_OPTIONS = ("async_execution", "markdown", "allow_crewai_trigger_context")
TASK_CONFIG_OPTIONS = ("markdown", "output_json", "output_pydantic")
SCHEMA_OPTIONS = ("output_json", "output_pydantic")
CREW_OPTIONS = ("verbose", "max_rpm")


class JobError(ValueError):
    """The job description is inconsistent (unknown agent, bad context, ...)."""


def check_credentials(job: CrewJob) -> None:
    """Fail fast, before crewai starts, if any model lacks its API key."""
    models = {spec.get("llm") or job.model for spec in job.agents.values()}
    models |= {job.model} if job.planning else set()
    models |= {job.manager_llm} if job.manager_llm else set()
    models |= {spec["function_calling_llm"] for spec in job.agents.values() if spec.get("function_calling_llm")}
    for name in sorted(models):
        call = job.call(name)
        require_credential(call.model, job.credentials, call)


def _field(spec: Mapping[str, Any], name: str, kind: str, key: str) -> Any:
    if not spec.get(name):
        raise JobError(f"{kind} {key!r} is missing {name!r}")
    return spec[name]


def build_crew(
    job: CrewJob, sender: Sender | None, tool_factory: ToolFactory, replayer: Replayer | None = None,
) -> Crew:
    """Translate the job into crewai objects; inputs are interpolated by kickoff."""
    def llm(model: str) -> ServiceLLM:
        return ServiceLLM.create(job.call(model), job.credentials, sender, replayer)

    def agent_llm(model: str, spec: Mapping[str, Any]) -> ServiceLLM:
        """The agent's own temperature and max_tokens win over its model's."""
        tuned = {name: spec[name] for name in AGENT_CALL_OPTIONS if spec.get(name) is not None}
        return ServiceLLM.create(msgspec.structs.replace(job.call(model), **tuned), job.credentials, sender,
                                 replayer)

    agents = {key: _agent(key, spec, agent_llm(spec.get("llm") or job.model, spec), llm, tool_factory)
              for key, spec in job.agents.items()}
    tasks: dict[str, Task] = {}
    for key, spec in job.tasks.items():
        tasks[key] = _task(key, spec, job, agents, tasks, tool_factory)
    crew_options: dict[str, Any] = {name: job.crew[name] for name in CREW_OPTIONS if job.crew.get(name) is not None}
    if job.process == "hierarchical":
        if not job.manager_llm:
            raise JobError("a hierarchical crew needs manager_llm")
        crew_options["manager_llm"] = llm(job.manager_llm)
    elif job.process != "sequential":
        raise JobError(f"unknown process {job.process!r}; use 'sequential' or 'hierarchical'")
    if job.planning:
        crew_options.update(planning=True, planning_llm=llm(job.model))
    crew_options.setdefault("verbose", False)
    live = reuse(tasks, job.tasks, job.reused) if job.reused else list(tasks.values())
    return Crew(name=job.execution_id, agents=list(agents.values()), tasks=live,
                process=Process(job.process), **crew_options)


def _agent(
    key: str, spec: Mapping[str, Any], model: ServiceLLM, llm: Callable[[str], ServiceLLM], tool_factory: ToolFactory,
) -> Agent:
    options = {name: spec[name] for name in AGENT_OPTIONS if spec.get(name) is not None}
    options.setdefault("allow_delegation", False)
    if spec.get("function_calling_llm"):
        options["function_calling_llm"] = llm(spec["function_calling_llm"])
    configs = spec.get("tool_configs") or {}
    tools = [tool for name in spec.get("tools", []) for tool in tool_factory(name, configs.get(name))]
    return Agent(
        role=_field(spec, "role", "agent", key), goal=_field(spec, "goal", "agent", key),
        backstory=spec.get("backstory", ""), llm=model, tools=tools, **options,
    )


def _task(
    key: str, spec: Mapping[str, Any], job: CrewJob, agents: Mapping[str, Agent], earlier: Mapping[str, Task],
    tool_factory: ToolFactory,
) -> Task:
    agent_key = spec.get("agent")
    if agent_key is not None and agent_key not in agents:
        raise JobError(f"task {key!r} names unknown agent {agent_key!r}")
    if agent_key is None and job.process != "hierarchical":
        raise JobError(f"task {key!r} has no agent (only hierarchical crews may omit it)")
    missing = [name for name in spec.get("context", []) if name not in earlier]
    if missing:
        raise JobError(f"task {key!r} uses context {missing} that is not an earlier task")
    config = spec.get("config") or {}
    options = {name: config[name] for name in TASK_CONFIG_OPTIONS if config.get(name) not in (None, "")}
    options |= {name: spec[name] for name in (*TASK_OPTIONS, *SCHEMA_OPTIONS) if spec.get(name) not in (None, "")}
    for name in SCHEMA_OPTIONS:
        if name in options:
            options[name] = output_model(f"{key}_{name}", options[name])
    if "context" in spec:  # absent means crewai's default: the previous task's output
        options["context"] = [earlier[name] for name in spec["context"]]
    return Task(
        name=key, description=_field(spec, "description", "task", key),
        expected_output=_field(spec, "expected_output", "task", key),
        agent=agents.get(agent_key) if agent_key else None,
        tools=[tool for name in spec.get("tools", []) for tool in tool_factory(name, None)], **options,
    )


_JSON_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool,
                               "array": list, "object": dict}


def output_model(name: str, value: Any) -> type[BaseModel]:
    """A pydantic model for a task's ``output_json``/``output_pydantic`` JSON schema (one level deep)."""
    schema = schema_of(value)
    if schema is None:
        raise JobError(f"{name} is not a JSON schema of an object")
    required = set(schema.get("required") or [])
    fields: dict[str, Any] = {}
    for prop, sub in (schema.get("properties") or {}).items():
        kind = _JSON_TYPES.get(str(sub.get("type")) if isinstance(sub, Mapping) else "", Any)
        fields[prop] = (kind, ...) if prop in required else (kind | None, None)
    model: type[BaseModel] = create_model(re.sub(r"\W", "_", str(schema.get("title") or name)), **fields)
    return model


def result_text(output: Any) -> str:
    """The crew's answer; a last task with ``output_json``/``output_pydantic`` answers its JSON."""
    if output.json_dict:
        return json.dumps(output.json_dict)
    if output.pydantic is not None:
        return str(output.pydantic.model_dump_json())
    return str(output.raw)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (MissingCredential, UnknownTool, JobError, ToolError, Diverged, ReplayedFailure)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def main(conn: Connection, payload: bytes, tool_factory: Callable[[str], BaseTool] | None = None) -> None:
    """Child entry point: run the job, then send exactly one terminal message.

    ``tool_factory`` (tests) replaces the catalogue: it builds a tool by name.
    """
    sender = Sender(conn)
    stack = ExitStack()  # MCP servers the tools started, stopped whatever happens
    try:
        job = decode_job(payload)
        sender.log("info", "runtime", f"child started for execution {job.execution_id}")
        replayer = Replayer(job.replay) if job.replay is not None else None
        if replayer is None:  # a replay calls no model: it needs no key
            check_credentials(job)
        use_credentials(job)
        catalogue = CatalogueTools(job, stack)
        tools: ToolFactory = catalogue
        if tool_factory is not None:
            given = tool_factory
            tools = lambda name, options: [with_options(given(name), options)]  # noqa: E731
        if replayer is not None:
            tools = replaying(tools, replayer)
        crew = build_crew(job, sender, tools, replayer)
        for observation in reused_observations(job):
            sender.send(observation)
        sender.log("info", "runtime", f"crew built: {len(job.agents)} agents, {len(job.tasks)} tasks")
        add_stream_sink(EventForwarder(sender, catalogue.names))
        started = time.perf_counter()
        output = crew.kickoff(inputs=dict(job.inputs))
        sender.log("info", "runtime", f"crew finished in {time.perf_counter() - started:.2f} s")
        sender.send(ep.CrewCompleted(result=result_text(output), at=time.time()))
    except Exception as exc:
        sender.send(ep.CrewFailed(error=_describe(exc), at=time.time()))
    finally:
        stack.close()
        conn.close()


def replaying(tools: ToolFactory, replayer: Replayer) -> ToolFactory:
    """The tool factory of a replay: the same tools, each answered from the recording."""
    return lambda name, options: [replayed(tool, replayer) for tool in tools(name, options)]


def _warm() -> None:
    """Run one offline call now (tokenizer, lazy litellm imports) so children skip it.

    The call is flagged internal so litellm does not start its logging thread:
    the forkserver must stay single-threaded, or a lock held by that thread at
    fork time could deadlock a child (and the child would inherit an executor
    whose worker does not exist, silently dropping success callbacks).
    """
    token = is_internal_call.set(True)
    try:
        complete("offline/echo", [{"role": "user", "content": "warm up"}], {})
    finally:
        is_internal_call.reset(token)


_warm()
