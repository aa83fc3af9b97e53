"""Runs one crew inside a child process and reports what it observes over a pipe.

This module imports crewai at import time on purpose: it is preloaded by the
forkserver, so every child starts with crewai and litellm already in memory.
The service process itself must never import it (see ``runtime.py``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any, Protocol

import msgspec

from interface.settings import quiet_libraries

quiet_libraries()  # before crewai/litellm: importing them otherwise starts network threads

import litellm  # noqa: E402
from crewai import Agent, Crew, Process, Task  # noqa: E402
from crewai.events.stream_context import add_stream_sink  # noqa: E402
from crewai.events.types import agent_events as ae  # noqa: E402
from crewai.events.types import crew_events as ce  # noqa: E402
from crewai.events.types import task_events as te  # noqa: E402
from crewai.events.types import tool_usage_events as tue  # noqa: E402
from crewai.events.types.llm_events import LLMCallType  # noqa: E402
from crewai.llms.base_llm import BaseLLM, llm_call_context  # noqa: E402
from crewai.tools import BaseTool  # noqa: E402
from litellm._internal_context import is_internal_call  # noqa: E402
from pydantic import BaseModel, PrivateAttr, create_model  # noqa: E402

from domain import execution_progress as ep  # noqa: E402
from domain.model_config import ModelCall  # noqa: E402
from domain.replay import Diverged, ReplayedFailure, Replayer  # noqa: E402
from domain.run_options import schema_of  # noqa: E402
from interface.crew_runtime.catalogue_tools import (  # noqa: E402
    CatalogueTools,
    ToolError,
    ToolFactory,
    use_credentials,
    with_options,
)
from interface.crew_runtime.messages import CrewJob, decode_job, encode  # noqa: E402
from interface.crew_runtime.repeat import replayed, reuse, reused_observations  # noqa: E402
from interface.crew_runtime.tools import UnknownTool  # noqa: E402
from interface.llm_gateway import (  # noqa: E402
    BACKING_MODEL,
    CompletionResult,
    MissingCredential,
    complete,
    is_offline,
    prompt_text,
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


class Sender:
    """Thread-safe writer of observations; crewai emits from several threads."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, observation: ep.Observation) -> None:
        data = encode(observation)
        with self._lock:
            self._conn.send_bytes(data)

    def log(self, level: str, source: str, message: str) -> None:
        self.send(ep.LogLine(level=level, source=source, message=message, at=time.time()))


class ServiceLLM(BaseLLM):  # type: ignore[misc]  # mypy skips crewai, so BaseLLM is Any
    """crewai LLM whose every call goes through ``llm_gateway.complete``.

    crewai's own ``LLM`` routes some providers to native SDKs and reads keys
    from the environment; this class keeps one LiteLLM path for offline and
    real models, passes credentials per call, and reports each call.
    """

    llm_type: str = "kasal"
    _credentials: dict[str, str] = PrivateAttr(default_factory=dict)
    _sender: Sender | None = PrivateAttr(default=None)
    _call: ModelCall | None = PrivateAttr(default=None)
    _replayer: Replayer | None = PrivateAttr(default=None)

    @classmethod
    def create(
        cls, call: ModelCall | str, credentials: Mapping[str, str], sender: Sender | None,
        replayer: Replayer | None = None,
    ) -> ServiceLLM:
        """An LLM calling ``call`` (a model's configuration, or a bare LiteLLM name); with a
        ``replayer``, one that answers from a recording and calls nothing."""
        call = ModelCall(model=call) if isinstance(call, str) else call
        llm = cls(model=call.model, temperature=call.temperature, max_tokens=call.max_tokens)
        llm._credentials = dict(credentials)
        llm._sender = sender
        llm._call = call
        llm._replayer = replayer
        return llm

    def supports_function_calling(self) -> bool:
        """Tools and structured output use crewai's text (ReAct) protocol, for every model."""
        return False

    def get_input_tokens_count(self, messages: Any, tools: Any = None, response_model: Any = None) -> int:
        """Count with LiteLLM's tokenizer instead of crewai's noisy 4-chars guess."""
        text = messages if isinstance(messages, str) else prompt_text(messages)
        return int(litellm.token_counter(model=BACKING_MODEL.split("/", 1)[1], text=text))

    def call(
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        params: dict[str, Any] = {}
        if not is_offline(self.model):
            params = {"stop": self.stop_sequences or None, "drop_params": True}
        with llm_call_context():
            self._emit_call_started_event(messages=messages, from_task=from_task, from_agent=from_agent)
            try:
                if self._replayer is not None:
                    result = replayed_completion(self._replayer, self.model, messages)
                else:
                    result = complete(self.model, messages, self._credentials, call=self._call, **params)
            except Exception as exc:
                self._emit_call_failed_event(str(exc), from_task, from_agent)
                raise
            text: str = self._apply_stop_words(result.text)
            usage = {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                     "total_tokens": result.prompt_tokens + result.completion_tokens}
            self._track_token_usage_internal(usage)
            self._emit_call_completed_event(text, LLMCallType.LLM_CALL, from_task, from_agent, messages, usage)
        if self._sender is not None:
            request = result.request or {}
            self._sender.send(ep.LlmCall(
                model=self.model, prompt=prompt_text(messages), response=text,
                prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                latency_ms=result.latency_ms, cost=result.cost,
                agent=getattr(from_agent, "role", None), task=task_key(from_task), at=time.time(),
                temperature=request.get("temperature"), max_tokens=request.get("max_tokens"),
                parameters=request.get("parameters") or {}, api_base=request.get("api_base"),
                headers=list(request.get("headers") or []), system_prompt=system_prompt(messages),
                tools=offered_tools(from_agent, tools), replayed=self._replayer is not None,
            ))
        return text


def replayed_completion(replayer: Replayer, model: str, messages: Any) -> CompletionResult:
    """The recorded answer to this call, as if the model had given it (at no cost)."""
    recorded = replayer.answer(model, prompt_text(messages))
    return CompletionResult(text=recorded.response, prompt_tokens=recorded.prompt_tokens,
                      completion_tokens=recorded.completion_tokens, latency_ms=0.0, cost=0.0, request=None)


def system_prompt(messages: Any) -> str:
    """The first system message's text ("" when the call has none)."""
    for message in messages:
        if isinstance(message, Mapping) and message.get("role") == "system":
            return prompt_text([message]).removeprefix("system: ")
    return ""


def offered_tools(agent: Any, tools: Any = None) -> list[str]:
    """Names of the tools the calling agent may use now (its executor's, which include the task's)."""
    offered = tools or getattr(getattr(agent, "agent_executor", None), "tools", None) or getattr(agent, "tools", None)
    names = []
    for tool in offered or []:
        name = tool.get("function", {}).get("name") if isinstance(tool, Mapping) else getattr(tool, "name", None)
        if name:
            names.append(str(name))
    return names


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


class _Timestamped(Protocol):
    """What every crewai event carries."""

    timestamp: datetime


def _at(event: _Timestamped) -> float:
    return event.timestamp.timestamp()


def _role(agent: Any) -> str:
    return str(getattr(agent, "role", "") or "")


def task_key(task: Any) -> str | None:
    """The job's key for a task; crewai's own tasks (e.g. the planner) get a short label."""
    if task is None:
        return None
    name = getattr(task, "name", None)
    if name:
        return str(name)
    words = str(getattr(task, "description", "")).split()
    return "(crewai) " + " ".join(words[:6])


def translate(event: Any) -> ep.Observation | None:
    """Map one crewai event to an observation (None for events we do not forward)."""
    at = _at(event)
    if isinstance(event, ce.CrewKickoffStartedEvent):
        return ep.CrewStarted(name=event.crew_name or "crew", at=at)
    if isinstance(event, ae.AgentExecutionStartedEvent):
        return ep.AgentStarted(agent=_role(event.agent), at=at)
    if isinstance(event, ae.AgentExecutionCompletedEvent):
        return ep.AgentCompleted(agent=_role(event.agent), output=event.output, at=at)
    if isinstance(event, ae.AgentExecutionErrorEvent):
        return ep.LogLine(level="error", source=_role(event.agent), message=event.error, at=at)
    task = getattr(event, "task", None)
    task_name = task_key(task) or str(getattr(event, "task_name", None) or "")
    task_agent = _role(getattr(task, "agent", None))
    if isinstance(event, te.TaskStartedEvent):
        return ep.TaskStarted(task=task_name, agent=task_agent, at=at)
    if isinstance(event, te.TaskCompletedEvent):
        return ep.TaskCompleted(task=task_name, agent=task_agent, output=event.output.raw, at=at)
    if isinstance(event, te.TaskFailedEvent):
        return ep.TaskFailed(task=task_name, agent=task_agent, error=event.error, at=at)
    if isinstance(event, (tue.ToolUsageFinishedEvent, tue.ToolUsageErrorEvent)):
        args = event.tool_args if isinstance(event.tool_args, str) else json.dumps(event.tool_args, default=str)
        finished = isinstance(event, tue.ToolUsageFinishedEvent)
        return ep.ToolUsed(
            tool=event.tool_name, input=args,
            output=str(event.output) if finished else None,
            error=None if finished else str(event.error),
            agent=_role(event.agent) or event.agent_role, task=task_key(event.from_task) or event.task_name, at=at,
        )
    if isinstance(event, (tue.ToolSelectionErrorEvent, tue.ToolValidateInputErrorEvent)):
        return ep.LogLine(level="warning", source=event.agent_role or "tool", message=str(event.error), at=at)
    return None


class EventForwarder:
    """Stream sink that forwards crewai events in emission order.

    Handlers registered with ``crewai_event_bus.on`` run on a thread pool, so
    their order is not the emission order; stream sinks are called inline by
    ``crewai_event_bus.emit`` in the emitting thread, which keeps the order.
    """

    def __init__(self, sender: Sender, tool_names: Mapping[str, str] | None = None) -> None:
        self._sender = sender
        self._tool_names = tool_names or {}

    def __call__(self, source: Any, event: Any) -> None:
        try:
            message = translate(event)
            if isinstance(message, ep.ToolUsed) and message.tool in self._tool_names:
                message = msgspec.structs.replace(message, tool=self._tool_names[message.tool])
        except Exception as exc:
            message = ep.LogLine(level="warning", source="runtime", message=f"cannot forward {event.type}: {exc!r}",
                             at=time.time())
        if message is not None:
            self._sender.send(message)


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
