"""The tool runtime table: one entry per catalogue tool, why a tool cannot run, MCP and key refusals.

Everything here is pure (no crewai import); the checks of the table against
the installed ``crewai_tools`` classes live in
``tests/integration/test_catalogue_tools_units.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.catalogue_seed import BUILTIN_TOOLS
from application.tool_access import ToolAccess, required_keys
from domain.tool_kinds import BROWSER, CUSTOM_TOOL, DATABRICKS, EMBEDDINGS, TOOL_KINDS, mcp_refusal, unavailable_reason

ROWS = {tool.name: tool.fields() for tool in BUILTIN_TOOLS}
"""Each built-in tool as a group sees it before changing anything."""
OPTIONAL_PACKAGES = {kind.package for kind in TOOL_KINDS.values() if kind.package}


def everything(_: str) -> bool:
    return True


def nothing(_: str) -> bool:
    return False


def row(name: str, **changes: Any) -> dict[str, Any]:
    return {**ROWS[name], **changes}


def custom(name: str = "my_tool") -> dict[str, Any]:
    return {"name": name, "tool_type": "custom", "config": {}, "enabled": True}


# --- the table covers the catalogue ---------------------------------------------------------------

def test_every_catalogue_tool_has_a_kind_and_every_kind_a_catalogue_tool() -> None:
    assert set(ROWS) == set(TOOL_KINDS)
    assert len(ROWS) == len(BUILTIN_TOOLS)  # no name twice in the catalogue


def test_a_kind_either_runs_somehow_or_says_why_not() -> None:
    for kind in TOOL_KINDS.values():
        assert (kind.implementation is None) == (kind.unavailable is not None), kind.name


# --- unavailable_reason ---------------------------------------------------------------------------

def test_a_custom_tool_is_never_runnable_and_points_at_mcp() -> None:
    assert unavailable_reason(custom(), everything) == CUSTOM_TOOL
    assert unavailable_reason(custom("calculator"), everything) == CUSTOM_TOOL  # a name is not an implementation
    assert "MCPTool" in CUSTOM_TOOL


def test_a_builtin_the_table_does_not_know_has_no_implementation() -> None:
    reason = unavailable_reason({"name": "NoSuchTool", "tool_type": "builtin"}, everything)
    assert reason is not None and "no implementation" in reason


@pytest.mark.parametrize("name", sorted(k.name for k in TOOL_KINDS.values() if k.package))
def test_a_tool_whose_package_is_missing_names_the_package_until_it_is_installed(name: str) -> None:
    package = TOOL_KINDS[name].package
    asked: list[str] = []

    def only_not_package(module: str) -> bool:
        asked.append(module)
        return module != package

    reason = unavailable_reason(row(name), only_not_package)
    assert reason is not None and repr(package) in reason and "not installed" in reason
    assert asked == [package]
    assert unavailable_reason(row(name), everything) is None


@pytest.mark.parametrize(("name", "reason"), [
    ("SeleniumScrapingTool", BROWSER), ("GithubSearchTool", EMBEDDINGS), ("PDFSearchTool", EMBEDDINGS),
    ("GenieTool", DATABRICKS), ("DatabricksJobsTool", DATABRICKS),
])
def test_a_tool_no_deployment_can_run_says_why_whatever_is_installed(name: str, reason: str) -> None:
    assert unavailable_reason(row(name), everything) == reason
    assert unavailable_reason(row(name), nothing) == reason


def test_tools_that_need_no_package_run_even_when_nothing_optional_is_installed() -> None:
    runnable = {name for name in ROWS if unavailable_reason(ROWS[name], nothing) is None}
    assert runnable == {k.name for k in TOOL_KINDS.values() if k.implementation and not k.package}
    assert {"calculator", "current_datetime", "SerperDevTool", "ScrapeWebsiteTool", "FileReadTool"} <= runnable


# --- mcp_refusal ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
mcp_keys = st.sampled_from(["server_type", "command", "server_url", "args", "env"]) | st.text(max_size=8)
server_types = st.sampled_from(["sse", "streamable-http", "stdio"]) | json_values
allowlists = st.frozensets(st.text(max_size=10), max_size=4)
http_urls = st.builds(lambda scheme, rest: f"{scheme}://{rest}", st.sampled_from(["http", "https"]),
                      st.text(max_size=30))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(mcp_keys, json_values, max_size=6), server_types, allowlists)
def test_mcp_refusal_never_raises_on_any_json_config(config: dict[str, Any], server_type: Any,
                                                     allowed: frozenset[str]) -> None:
    for candidate in (config, {**config, "server_type": server_type}):
        assert mcp_refusal(candidate, allowed) is None or isinstance(mcp_refusal(candidate, allowed), str)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12), allowlists, st.booleans())
def test_a_stdio_command_is_allowed_exactly_when_the_operator_listed_it(
    command: str, allowed: frozenset[str], listed: bool,
) -> None:
    if listed:
        allowed |= {command}
    refusal = mcp_refusal({"server_type": "stdio", "command": command}, allowed)
    assert (refusal is None) == (command != "" and command in allowed)
    if refusal is not None and command:
        assert repr(command) in refusal and "KASAL_MCP_STDIO_COMMANDS" in refusal


def test_a_stdio_server_without_a_command_is_refused_even_if_the_empty_command_is_listed() -> None:
    for config in ({"server_type": "stdio"}, {"server_type": "stdio", "command": None},
                   {"server_type": "stdio", "command": ""}):
        assert mcp_refusal(config, frozenset({""})) == "a stdio MCP server needs a command"


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["sse", "streamable-http", None]), http_urls | st.text(max_size=30) | json_values,
       allowlists)
def test_a_url_server_needs_an_http_or_https_url(server_type: str | None, url: Any,
                                                 allowed: frozenset[str]) -> None:
    config: dict[str, Any] = {"server_url": url, "command": "uvx"}
    if server_type is not None:  # sse when not said
        config["server_type"] = server_type
    refusal = mcp_refusal(config, allowed)
    good = isinstance(url, str) and url.startswith(("http://", "https://"))
    assert (refusal is None) == good
    if not good:
        assert "server_url" in str(refusal)


@settings(max_examples=200, deadline=None)
@given(json_values.filter(lambda value: value not in ("sse", "streamable-http", "stdio", None)), allowlists)
def test_an_unknown_server_type_is_refused(server_type: Any, allowed: frozenset[str]) -> None:
    config = {"server_type": server_type, "server_url": "https://mcp.example/sse", "command": "uvx"}
    refusal = mcp_refusal(config, allowed | {"uvx"})
    assert refusal is not None and "server_type must be" in refusal


def test_an_mcp_tool_is_refused_by_tool_access_for_its_configuration_only_once_it_can_run() -> None:
    access = ToolAccess(installed=everything, mcp_stdio_commands=frozenset({"mcp-weather"}))
    stdio = row("MCPTool", config={"server_type": "stdio", "command": "bash"})
    assert "'bash' is not allowed" in str(access.refusal(stdio))
    assert access.refusal(row("MCPTool", config={"server_type": "stdio", "command": "mcp-weather"})) is None
    assert access.refusal(row("MCPTool")) is None  # the catalogue default is an sse URL
    missing_package = ToolAccess(installed=nothing, mcp_stdio_commands=frozenset({"bash"}))
    assert "'mcp'" in str(missing_package.refusal(stdio))


# --- ToolAccess -----------------------------------------------------------------------------------

def test_a_tool_needing_a_key_is_blocked_naming_the_key_until_the_group_stores_it() -> None:
    access = ToolAccess(installed=everything)
    blocked = access.blocked([row("SerperDevTool"), row("calculator")], key_names=set())
    assert list(blocked) == ["SerperDevTool"]
    assert "SERPER_API_KEY" in blocked["SerperDevTool"] and "POST /api/v1/api-keys" in blocked["SerperDevTool"]
    assert access.blocked([row("SerperDevTool")], key_names={"OPENAI_API_KEY"}).keys() == {"SerperDevTool"}
    assert access.blocked([row("SerperDevTool")], key_names={"SERPER_API_KEY"}) == {}


def test_unavailable_tools_are_blocked_with_their_reason_whatever_keys_are_stored() -> None:
    access = ToolAccess(installed=nothing)
    every_key = {name for kind in TOOL_KINDS.values() for name in kind.credentials}
    blocked = access.blocked([row("SeleniumScrapingTool"), row("TavilySearchTool"), custom()], every_key)
    assert blocked["SeleniumScrapingTool"] == BROWSER
    assert "'tavily'" in blocked["TavilySearchTool"] and "TAVILY_API_KEY" not in blocked["TavilySearchTool"]
    assert blocked["my_tool"] == CUSTOM_TOOL


def test_a_custom_tool_named_like_a_keyed_builtin_is_blocked_as_custom_not_for_a_key() -> None:
    blocked = ToolAccess(installed=everything).blocked([custom("SerperDevTool")], key_names=set())
    assert blocked == {"SerperDevTool": CUSTOM_TOOL}
    assert required_keys(custom("SerperDevTool")) == []
    assert required_keys(row("SerperDevTool")) == ["SERPER_API_KEY"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(sorted(ROWS)), unique=True), st.lists(st.booleans(), min_size=len(ROWS),
       max_size=len(ROWS)), st.sets(st.sampled_from(sorted({c for k in TOOL_KINDS.values() for c in k.credentials}))),
       st.sets(st.sampled_from(sorted(OPTIONAL_PACKAGES))))
def test_whether_a_tool_is_enabled_does_not_change_what_blocks_it(
    names: list[str], enabled: list[bool], key_names: set[str], installed_packages: set[str],
) -> None:
    access = ToolAccess(installed=installed_packages.__contains__)
    as_seeded = [row(name) for name in names]
    toggled = [row(name, enabled=flag) for name, flag in zip(names, enabled, strict=False)]
    blocked = access.blocked(as_seeded, key_names)
    assert access.blocked(toggled, key_names) == blocked
    runnable = {tool["name"] for tool in access.runnable(as_seeded)}
    assert runnable == {tool["name"] for tool in access.runnable(toggled)}
    for name in names:  # blocked = cannot run here, or can but lacks a key
        missing = [key for key in TOOL_KINDS[name].credentials if key not in key_names]
        assert (name in blocked) == (name not in runnable or bool(missing)), name


@pytest.mark.parametrize("installed", [everything, nothing])
def test_runnable_keeps_exactly_the_tools_with_no_refusal(installed: Callable[[str], bool]) -> None:
    access = ToolAccess(installed=installed)
    tools = [*ROWS.values(), custom()]
    assert [t["name"] for t in access.runnable(tools)] == [t["name"] for t in tools if access.refusal(t) is None]
    assert {"SeleniumScrapingTool", "GithubSearchTool", "my_tool"}.isdisjoint(t["name"] for t in access.runnable(tools))
