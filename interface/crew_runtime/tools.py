"""Built-in offline tools that crews can use without network access or secrets."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

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


def builtin_tool_factory(name: str) -> BaseTool:
    """Default tool factory: only the built-in offline tools are available."""
    try:
        return BUILTIN_TOOLS[name]()
    except KeyError:
        raise UnknownTool(f"unknown tool {name!r}; available tools: {', '.join(sorted(BUILTIN_TOOLS))}") from None
