"""docker-compose.yml parses and every service runs a command the CLI has."""

from __future__ import annotations

from pathlib import Path

import yaml

from interface.cli import parser

ROOT = Path(__file__).resolve().parents[2]


def cli_commands() -> set[str]:
    sub = next(a for a in parser()._actions if a.dest == "command")
    return set(sub.choices)  # type: ignore[arg-type]


def test_compose_has_postgres_api_and_worker_wired_by_database_url() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "api", "worker"} <= set(services)
    assert "healthcheck" in services["postgres"]
    for name in ("api", "worker"):
        assert services[name]["environment"]["KASAL_DATABASE_URL"].startswith("postgresql://")
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_compose_command_is_a_kasal_cli_command() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = cli_commands()
    for name, service in compose["services"].items():
        command = service.get("command")
        if command:
            assert command[0] == "kasal", name
            assert command[1] in commands, f"{name} runs 'kasal {command[1]}', which the CLI lacks"


def test_ci_script_runs_the_readme_test_command_against_the_machine_database() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "KASAL_TEST_DATABASE_URL" in ci
    assert "make test" in (ROOT / "README.md").read_text()
