"""The crew's language model: every call through the service's gateway, or from a recording.

``ServiceLLM`` is what every agent, manager and planner of a crew talks to:
one LiteLLM path for offline and real models, keys passed per call, each
call reported as an ``LlmCall`` observation with the request it made. In a
replay it answers from the recording (``domain.replay.Replayer``) instead.

Child side only (it imports crewai): ``child`` imports it once the libraries are quieted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import litellm
from crewai.events.types.llm_events import LLMCallType
from crewai.llms.base_llm import BaseLLM, llm_call_context
from pydantic import PrivateAttr

from domain import execution_progress as ep
from domain.model_config import ModelCall
from domain.replay import Replayer
from interface.crew_runtime.observe import Sender, task_key
from interface.llm_gateway import BACKING_MODEL, CompletionResult, complete, is_offline, prompt_text


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
