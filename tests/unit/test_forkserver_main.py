"""Crew children skip re-importing the service's command line: the forkserver preloads it."""

from __future__ import annotations

import sys
import types
from importlib.machinery import ModuleSpec

import pytest

from interface.crew_runtime.runtime import PRELOAD_MODULES, main_modules


def as_main(monkeypatch: pytest.MonkeyPatch, module: types.ModuleType) -> None:
    monkeypatch.setitem(sys.modules, "__main__", module)


def test_python_m_interface_cli_preloads_the_cli_module(monkeypatch) -> None:
    main = types.ModuleType("__main__")
    main.__spec__ = ModuleSpec("interface.cli", None)
    as_main(monkeypatch, main)
    assert main_modules() == ["interface.cli"]


def test_the_kasal_script_preloads_itself_as_main(monkeypatch) -> None:
    from interface.cli import main as cli_main

    script = types.ModuleType("__main__")
    script.main = cli_main  # type: ignore[attr-defined]  # what the console script imports
    as_main(monkeypatch, script)
    assert main_modules() == ["__main__"]


def test_another_program_preloads_only_the_crew_child(monkeypatch) -> None:
    other = types.ModuleType("__main__")
    other.__spec__ = ModuleSpec("pytest.__main__", None)
    as_main(monkeypatch, other)
    assert main_modules() == []
    assert PRELOAD_MODULES == ["interface.crew_runtime.child"]
