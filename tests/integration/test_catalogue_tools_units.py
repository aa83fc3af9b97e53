"""The tool table against the installed crewai-tools, and the crew child's tool-building rules.

These import crewai (seconds), so they live here rather than in tests/unit;
they need no database. When crewai-tools changes a class the catalogue
relies on (renamed, a new required key, a setting gone), these fail first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import crewai_tools
import pytest
from crewai.tools import BaseTool, EnvVar
from hypothesis import given, settings
from hypothesis import strategies as st

from application.catalogue_seed import BUILTIN_TOOLS
from domain.tool_kinds import TOOL_KINDS, ToolKind
from interface.crew_runtime.catalogue_tools import (
    FIXED_FIELDS,
    ToolError,
    constructor_arguments,
    inside,
    with_options,
)
from interface.crew_runtime.tools import BUILTIN_TOOLS as OWN_TOOLS
from interface.wiring import module_installed

CREWAI_KINDS = sorted(kind.name for kind in TOOL_KINDS.values() if kind.crewai_class)
CONFIG = {tool.name: tool.fields()["config"] for tool in BUILTIN_TOOLS}
TRANSLATED = {"SerperDevTool": {"search_url"}}
"""Catalogue settings ``constructor_arguments`` turns into other fields."""
KEYS_THE_SDK_NEEDS = {"EXASearchTool": {"EXA_API_KEY"}}
"""Keys crewai-tools declares optional but the provider's SDK refuses to start without (exa_py's ``Exa()``)."""
SETTINGS_WITH_NO_EFFECT: dict[str, set[str]] = {}
"""Catalogue settings the tool's class does not take: dropped when the tool is built, so changing them does
nothing. Listed here so that the list is seen (and this test fails when it changes either way)."""


def crewai_class(kind: ToolKind) -> type[BaseTool]:
    cls = getattr(crewai_tools, str(kind.crewai_class), None)
    assert isinstance(cls, type) and issubclass(cls, BaseTool), f"crewai_tools has no tool {kind.crewai_class!r}"
    return cls


def declared_env_vars(cls: type[BaseTool]) -> list[EnvVar]:
    field = cls.model_fields["env_vars"]
    factory: Any = field.default_factory
    return list(factory() if factory is not None else field.default or [])


def settable(cls: type[BaseTool]) -> set[str]:
    return set(cls.model_fields) - FIXED_FIELDS


# --- the table against crewai-tools -----------------------------------------------------------------

@pytest.mark.parametrize("name", CREWAI_KINDS)
def test_the_credentials_of_a_kind_are_the_keys_its_class_requires(name: str) -> None:
    kind = TOOL_KINDS[name]
    env_vars = declared_env_vars(crewai_class(kind))
    required = {var.name for var in env_vars if var.required and var.default is None}
    expected = required | KEYS_THE_SDK_NEEDS.get(name, set())
    assert set(kind.credentials) == expected
    assert set(kind.credentials) <= {var.name for var in env_vars}  # never a key the tool does not read


def test_every_catalogue_setting_of_a_crewai_tool_is_one_its_class_takes_or_a_known_exception() -> None:
    no_effect: dict[str, set[str]] = {}
    for name in CREWAI_KINDS:
        fields = settable(crewai_class(TOOL_KINDS[name])) | TRANSLATED.get(name, set()) | {"result_as_answer"}
        ignored = set(CONFIG[name]) - fields
        if ignored:
            no_effect[name] = ignored
    assert no_effect == SETTINGS_WITH_NO_EFFECT


def test_result_as_answer_is_a_setting_of_every_tool_class() -> None:
    for name in CREWAI_KINDS:
        assert "result_as_answer" in settable(crewai_class(TOOL_KINDS[name])), name
    for cls in OWN_TOOLS.values():
        assert "result_as_answer" in settable(cls), cls.__name__


@pytest.mark.parametrize("name", [n for n in CREWAI_KINDS if not TOOL_KINDS[n].package
                                  or module_installed(str(TOOL_KINDS[n].package))])
def test_the_catalogue_defaults_build_the_tool(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kind = TOOL_KINDS[name]
    for key in kind.credentials:
        monkeypatch.setenv(key, "test-key")
    cls = crewai_class(kind)
    settings_ = {key: value for key, value in CONFIG[name].items() if value not in ("", None)}
    tool = cls(**constructor_arguments(kind, cls, settings_, strict=set()))
    for key, value in settings_.items():
        if key in settable(cls):
            assert getattr(tool, key) == value, key


# --- constructor_arguments ------------------------------------------------------------------------

SERPER = TOOL_KINDS["SerperDevTool"]


def test_serpers_search_url_becomes_its_base_url_and_search_type() -> None:
    cls = crewai_class(SERPER)
    arguments = constructor_arguments(SERPER, cls, {"search_url": "http://127.0.0.1:9/news/", "n_results": 3},
                                      strict={"search_url"})
    assert arguments == {"base_url": "http://127.0.0.1:9", "search_type": "news", "n_results": 3}
    tool = cls(**arguments)
    assert tool._get_search_url(tool.search_type) == "http://127.0.0.1:9/news"


def test_an_explicit_base_url_wins_over_the_one_in_search_url() -> None:
    arguments = constructor_arguments(SERPER, crewai_class(SERPER),
                                      {"search_url": "https://a.example/search", "base_url": "https://b.example"},
                                      strict=set())
    assert arguments == {"base_url": "https://b.example", "search_type": "search"}


def test_catalogue_settings_a_class_lacks_are_dropped_silently() -> None:
    kind = TOOL_KINDS["BraveSearchTool"]
    arguments = constructor_arguments(kind, crewai_class(kind), {"n_results": 4, "country": "de", "name": "x"},
                                      strict=set())
    assert arguments == {"n_results": 4}


def test_an_agent_option_the_class_lacks_fails_naming_it_and_the_options() -> None:
    kind = TOOL_KINDS["BraveSearchTool"]
    with pytest.raises(ToolError) as refused:
        constructor_arguments(kind, crewai_class(kind), {"n_results": 4, "colour": "red", "country": "de"},
                              strict={"colour", "country", "n_results"})
    message = str(refused.value)
    assert "'BraveSearchTool' has no option 'colour', 'country'" in message
    assert "its options:" in message and "n_results" in message and "search_url" in message
    assert "env_vars" not in message and "args_schema" not in message


def test_an_own_tool_takes_known_options_and_refuses_unknown_ones() -> None:
    calculator = OWN_TOOLS["calculator"]()
    assert with_options(calculator, None) is calculator
    assert with_options(calculator, {"result_as_answer": True}).result_as_answer is True
    with pytest.raises(ToolError, match="'calculator' has no option 'precision'; its options: .*result_as_answer"):
        with_options(calculator, {"precision": 3})


# --- inside ---------------------------------------------------------------------------------------

segments = st.lists(st.sampled_from(["a", "b", "..", ".", ""]), max_size=8)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A group directory with some real subdirectories (``a/b``) next to a sibling it must not reach."""
    base = tmp_path_factory.mktemp("inside")
    (base / "group" / "a" / "b").mkdir(parents=True)
    (base / "a").mkdir()
    return os.path.realpath(base / "group")


@settings(max_examples=300, deadline=None)
@given(segments)
def test_a_path_is_accepted_exactly_when_it_stays_within_the_root(root: str, parts: list[str]) -> None:
    path = "/".join(parts)
    expected = os.path.normpath(os.path.join(root, path))
    within = expected == root or expected.startswith(root + os.sep)
    if within:
        assert inside(root, path) == expected
    else:
        with pytest.raises(ValueError, match="outside this group's files directory"):
            inside(root, path)


def test_symlinks_are_followed_and_refused_when_they_lead_out(tmp_path: Path) -> None:
    group, outside = tmp_path / "group", tmp_path / "outside"
    (group / "docs").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    (group / "docs" / "notes.txt").write_text("yours")
    (group / "out").symlink_to(outside, target_is_directory=True)
    (group / "leak.txt").symlink_to(outside / "secret.txt")
    (group / "here").symlink_to(group / "docs", target_is_directory=True)
    for path in ("out", "out/secret.txt", "leak.txt", str(group / "out" / "secret.txt"), str(outside)):
        with pytest.raises(ValueError, match="outside"):
            inside(str(group), path)
    assert inside(str(group), "here/notes.txt") == os.path.realpath(group / "docs" / "notes.txt")
    assert inside(str(group), str(group / "docs")) == os.path.realpath(group / "docs")
