"""Shared configs and finders for the crew-config tests."""


from __future__ import annotations

from application.crew_config import CrewReport, Finding

AGENTS_YAML = """\
researcher:
  role: Senior Researcher
  goal: Find facts about {topic}
  backstory: A careful analyst.
  llm: offline/echo
  tools: []
writer:
  role: Writer
  goal: Explain {topic} to {audience}
  backstory: Writes plainly.
  llm: offline/echo
"""

TASKS_YAML = """\
research:
  description: Research {topic}
  expected_output: A short report
  agent: researcher
  context: []
write:
  description: Write it up
  expected_output: An article
  agent: writer
  context: [research]
"""


def agent(**overrides: object) -> dict:
    """A minimal valid agent definition, with overrides."""
    return {"role": "Role", "goal": "Goal", "backstory": "Story", "llm": "offline/echo", **overrides}


def task(agent_key: str | None = "a", **overrides: object) -> dict:
    """A minimal valid task definition, with overrides."""
    base = {"description": "Do it", "expected_output": "Done"}
    if agent_key is not None:
        base["agent"] = agent_key
    return {**base, **overrides}


def paths(findings: list[Finding]) -> list[str]:
    return [finding.path for finding in findings]


def messages_at(findings: list[Finding], path: str) -> list[str]:
    return [finding.message for finding in findings if finding.path == path]


def only_error(report: CrewReport) -> Finding:
    assert len(report.errors) == 1, report.errors
    return report.errors[0]


