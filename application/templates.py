"""Commands on prompt templates, and the built-in generation templates.

Built-ins live in the ``system`` group with ids derived from their names, so
seeding is idempotent across restarts and processes, and never touches what a
group has made: a group customises a built-in by owning a template of the same
name (editing a built-in through the API creates that override for the group).
"""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from application.documents import DocumentService, ExpectedVersions, Written
from application.store import KasalStore
from domain.context import Actor, acting_as, current_actor
from domain.errors import ConflictError, ForbiddenError
from domain.template import SYSTEM_GROUP, Template

SEED_ACTOR = Actor(group_id=SYSTEM_GROUP, actor="system:seed", role="admin", correlation_id="seed-templates")

_JSON_ONLY = (
    "Answer with ONE JSON object and nothing else: no explanations, no Markdown, no code fences."
)

GENERATE_AGENT = f"""You design one AI agent for a CrewAI crew.

What the user wants:
{{description}}

Tools the agent may use (use only these exact names; [] when none fits):
{{tools}}

{_JSON_ONLY}
The object has exactly this shape:
{{{{
  "name": "a short name for the agent, 2 to 5 words",
  "role": "the agent's job title, e.g. Senior Market Researcher",
  "goal": "what the agent tries to achieve, in one or two sentences",
  "backstory": "the experience and working style that make the agent good at its goal",
  "tools": ["names from the tool list above"]
}}}}"""

GENERATE_TASK = f"""You design one task for an AI agent in a CrewAI crew.

What the user wants done:
{{description}}

Tools the task may use (use only these exact names; [] when none fits):
{{tools}}

{_JSON_ONLY}
The object has exactly this shape:
{{{{
  "name": "a short name for the task, 2 to 6 words",
  "description": "what to do, step by step, with any constraints; name inputs as {{{{input_name}}}}",
  "expected_output": "what the finished result looks like: format, length and content",
  "tools": ["names from the tool list above"]
}}}}"""

GENERATE_CREW = f"""You design a complete CrewAI crew: the agents and the tasks they perform.

What the user wants the crew to achieve:
{{description}}

Tools the agents and tasks may use (use only these exact names; [] when none fits):
{{tools}}

Use as few agents as the work needs (usually 1 to 4) and order the tasks in
the order they run. Every task names the agent that performs it by that
agent's "name". A task's "context" lists the names of earlier tasks whose
output it needs ([] when none).

{_JSON_ONLY}
The object has exactly this shape:
{{{{
  "agents": [
    {{{{
      "name": "short unique agent name",
      "role": "the agent's job title",
      "goal": "what the agent tries to achieve",
      "backstory": "the experience that makes the agent good at its goal",
      "tools": ["names from the tool list above"]
    }}}}
  ],
  "tasks": [
    {{{{
      "name": "short unique task name",
      "description": "what to do, step by step",
      "expected_output": "what the finished result looks like",
      "agent": "the name of one agent above",
      "context": ["names of earlier tasks whose output this task uses"],
      "tools": ["names from the tool list above"]
    }}}}
  ]
}}}}"""

GENERATE_JOB_NAME = f"""Give a short, human-friendly name to one run of an AI crew, so that
people can tell runs apart in a list: 2 to 6 words, no dates, no quotes
inside the name.

What the run does:
{{description}}

{_JSON_ONLY}
The object has exactly this shape:
{{{{"name": "the run name"}}}}"""

BUILTIN_TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "name": "generate_agent",
        "description": "Prompt for generating one agent (name, role, goal, backstory, tools) from a description.",
        "template": GENERATE_AGENT,
    },
    {
        "name": "generate_task",
        "description": "Prompt for generating one task (name, description, expected_output, tools).",
        "template": GENERATE_TASK,
    },
    {
        "name": "generate_crew",
        "description": (
            "Prompt for generating a crew: {agents: [...], tasks: [...]} with tasks naming agent and context."
        ),
        "template": GENERATE_CREW,
    },
    {
        "name": "generate_job_name",
        "description": "Prompt for naming one execution run from what it does.",
        "template": GENERATE_JOB_NAME,
    },
)


def builtin_id(name: str) -> UUID:
    """The same id on every start and in every process: seeding is a no-op the second time."""
    return uuid5(NAMESPACE_URL, f"kasal:template:builtin:{name}")


class TemplateService:
    """Create/change/delete a group's templates; seed the built-ins."""

    def __init__(self, store: KasalStore) -> None:
        self.store = store
        self.documents = DocumentService(store, Template, unique_names=True)

    def create(self, fields: dict[str, Any]) -> Written:
        return self.documents.create(fields)

    def change(
        self, template_id: UUID, changes: dict[str, Any], expected_version: ExpectedVersions | None = None
    ) -> Written:
        """Change the fields sent; changing a built-in creates the caller's group override.

        The answer then names the override (a new id); the built-in itself,
        which every other group sees, stays as it is.
        """
        builtin = self._builtin(template_id)
        if builtin is None:
            return self.documents.change(template_id, changes, expected_version)
        if expected_version is not None:
            expected_version.check("template", template_id, builtin.version)
        return self.documents.create(Template.with_changes(builtin.fields, changes))

    def delete(self, template_id: UUID, expected_version: ExpectedVersions | None = None) -> Written:
        """Delete a group's template; deleting an override brings the built-in back."""
        if self._builtin(template_id) is not None:
            raise ForbiddenError(
                "Built-in templates cannot be deleted; edit it to give your group its own version"
            )
        return self.documents.delete(template_id, expected_version)

    def restore(
        self, template_id: UUID, version: int, expected_version: ExpectedVersions | None = None
    ) -> Written:
        """Bring back an earlier version of a group's template; built-ins change only with a release."""
        if self._builtin(template_id) is not None:
            raise ForbiddenError(
                "Built-in templates cannot be restored; edit it to give your group its own version"
            )
        return self.documents.restore(template_id, version, expected_version)

    def seed_builtins(self) -> int | None:
        """Create missing built-ins; the log position of the last one created (None: nothing new)."""
        position = None
        with acting_as(SEED_ACTOR):
            for spec in BUILTIN_TEMPLATES:
                template_id = builtin_id(spec["name"])
                if self.store.find(template_id) is not None:
                    continue
                try:
                    position = self.documents.create(dict(spec), id=template_id).position or position
                except ConflictError:
                    continue  # another process seeded it at the same moment
        return position

    def _builtin(self, template_id: UUID) -> Template | None:
        """The live built-in with this id, when the caller is not the system group itself."""
        if current_actor().group_id == SYSTEM_GROUP:
            return None
        found = self.store.find(template_id)
        if isinstance(found, Template) and found.built_in and not found.deleted:
            return found
        return None
