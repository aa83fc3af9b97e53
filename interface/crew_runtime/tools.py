"""Built-in offline tools that crews can use without network access or secrets."""

from __future__ import annotations

import ast
import operator
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from crewai.tools import BaseTool
from pydantic import BaseModel, Field

Number = int | float
_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_MAX_EXPONENT = 1000
_MAX_LENGTH = 500


def evaluate(expression: str) -> Number:
    """Evaluate plain arithmetic by walking the AST, so no code can ever run.

    Raises ValueError for anything but numbers, + - * / // % ** and parentheses.
    """
    if len(expression) > _MAX_LENGTH:
        raise ValueError("expression is too long")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from exc
    return _eval(tree.body)


def _eval(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant) and isinstance(node.value, Number) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError("exponent is too large")
        return _BINARY[type(node.op)](left, right)
    raise ValueError(f"unsupported element in expression: {ast.dump(node)[:60]}")


class CalculatorInput(BaseModel):
    """Arguments of the calculator tool."""

    expression: str = Field(description="Arithmetic expression, e.g. '(2 + 3) * 4'")


class CalculatorTool(BaseTool):  # type: ignore[misc]  # mypy skips crewai, so BaseTool is Any
    """Exact arithmetic, because language models are unreliable at it."""

    name: str = "calculator"
    description: str = "Evaluates an arithmetic expression with + - * / // % ** and parentheses."
    args_schema: type[BaseModel] = CalculatorInput

    def _run(self, expression: str) -> str:
        try:
            return str(evaluate(expression))
        except (ValueError, ZeroDivisionError, OverflowError) as exc:
            return f"error: {exc}"


class NoInput(BaseModel):
    """The datetime tool takes no arguments."""


class CurrentDatetimeTool(BaseTool):  # type: ignore[misc]  # mypy skips crewai, so BaseTool is Any
    """The current UTC time, because models do not know what day it is."""

    name: str = "current_datetime"
    description: str = "Returns the current date and time in UTC, ISO 8601 format."
    args_schema: type[BaseModel] = NoInput

    def _run(self, **_: Any) -> str:
        return datetime.now(UTC).isoformat(timespec="seconds")


BUILTIN_TOOLS: dict[str, type[BaseTool]] = {
    CalculatorTool.model_fields["name"].default: CalculatorTool,
    CurrentDatetimeTool.model_fields["name"].default: CurrentDatetimeTool,
}


class UnknownTool(LookupError):
    """A job names a tool that no factory can build."""


class PerplexityInput(BaseModel):
    """Arguments of the Perplexity tool."""

    query: str = Field(description="The question to answer from the web")


class PerplexityTool(BaseTool):  # type: ignore[misc]  # mypy skips crewai, so BaseTool is Any
    """Web-grounded answers with citations from Perplexity's chat completions API.

    The key is ``PERPLEXITY_API_KEY`` from the group's key store (put into the
    crew's process for its run); ``base_url`` points at the API or a proxy.
    """

    name: str = "PerplexityTool"
    description: str = "Answers a question with a web-grounded, cited response from Perplexity AI."
    args_schema: type[BaseModel] = PerplexityInput
    base_url: str = "https://api.perplexity.ai"
    model: str = "sonar"
    max_tokens: int = 2000
    temperature: float = 0.1
    top_p: float = 0.9
    search_recency_filter: str = "month"
    return_images: bool = False
    timeout_s: float = 60.0

    def _run(self, query: str) -> str:
        body = {
            "model": self.model, "messages": [{"role": "user", "content": query}],
            "max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
            "search_recency_filter": self.search_recency_filter, "return_images": self.return_images,
        }
        headers = {"Authorization": f"Bearer {os.environ['PERPLEXITY_API_KEY']}"}
        response = httpx.post(f"{self.base_url.rstrip('/')}/chat/completions", json=body, headers=headers,
                              timeout=self.timeout_s)
        response.raise_for_status()
        answer = response.json()
        text = str(answer["choices"][0]["message"]["content"])
        citations = answer.get("citations") or []
        return text + ("\n\nSources:\n" + "\n".join(f"- {c}" for c in citations) if citations else "")
