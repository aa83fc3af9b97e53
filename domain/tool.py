"""Tools agents can use: a catalogue of built-ins shared by every group, plus each group's own.

Built-in tools are stored once, under ``BUILTIN_GROUP``, with ids derived from
their names, so seeding them again (a restart, a second process, an upgrade)
finds them instead of duplicating them. A group never changes a built-in
itself: what it decides about one (enabled or not, its configuration) is a
``ToolSetting`` of that group whose id is derived from (group, tool), so
another group's view is untouched and a re-seed cannot undo it. Custom tools
created through the API are ordinary documents of their group.
"""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.base import Document, stable_topics
from domain.errors import ConflictError, InvalidError
from domain.name_index import normalise_name

BUILTIN_GROUP = "__builtin__"
"""The owner of built-in catalogue entries; answered as ``group_id: null``."""

TOOL_DEFAULTS: dict[str, Any] = {
    "description": "",
    "tool_type": "custom",
    "icon": None,
    "config": {},
    "enabled": True,
}
SETTING_FIELDS = ("enabled", "config")
RESULT_AS_ANSWER_HINT = {
    "description": "Return the tool's output as the agent's final answer instead of reasoning further.",
}
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def builtin_tool_id(name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"kasal:builtin-tool:{normalise_name(name)}")


def tool_setting_id(group_id: str, tool_id: UUID) -> UUID:
    return uuid5(NAMESPACE_URL, f"kasal:tool-setting:{group_id}:{tool_id}")


@stable_topics("tool")
class Tool(Document):
    """A tool definition: its name (Kasal's ``title``), description, type and configuration."""

    KIND = "tool"

    @classmethod
    def prepare(cls, fields: dict[str, Any]) -> dict[str, Any]:
        merged = {**TOOL_DEFAULTS, **{k: v for k, v in fields.items() if v is not None}}
        name = str(merged.get("name") or "").strip()
        if not name:
            raise InvalidError("A tool needs a name (or title)", errors=[("name", "Field required")])
        if not isinstance(merged["config"], dict):
            raise InvalidError("A tool's config must be an object", errors=[("config", "Expected an object")])
        merged["name"] = name
        merged["icon"] = merged["icon"] or merged["tool_type"]
        merged["enabled"] = bool(merged["enabled"])
        return merged

    @property
    def builtin(self) -> bool:
        return self.group_id == BUILTIN_GROUP

    def override(self, changes: dict[str, Any]) -> dict[str, Any]:
        """What a group's change to this built-in amounts to: its ``enabled`` and ``config``.

        Clients may echo the shared fields back unchanged, but not change them:
        the definition belongs to every group.
        """
        fixed = sorted(k for k, v in changes.items() if k not in SETTING_FIELDS and self.fields.get(k) != v)
        if fixed:
            raise ConflictError(
                f"Built-in tool '{self.name}' is shared by every group: its {', '.join(fixed)} cannot be "
                "changed; only enabled and config can",
                errors=[(k, "fixed for built-in tools") for k in fixed],
            )
        if "config" in changes and not isinstance(changes["config"], dict):
            raise InvalidError("A tool's config must be an object", errors=[("config", "Expected an object")])
        return {k: changes[k] for k in SETTING_FIELDS if k in changes}

    def check_removable(self) -> None:
        if self.builtin:
            raise ConflictError(
                f"Built-in tool '{self.name}' is shared by every group and cannot be deleted; disable it instead",
                errors=[("id", "built-in tools cannot be deleted")],
            )


@stable_topics("tool_setting")
class ToolSetting(Document):
    """One group's choices about one built-in tool: ``enabled`` and config overrides."""

    KIND = "tool setting"

    @classmethod
    def prepare(cls, fields: dict[str, Any]) -> dict[str, Any]:
        if not fields.get("tool_id"):
            raise InvalidError("A tool setting names its tool", errors=[("tool_id", "Field required")])
        enabled = fields.get("enabled")
        config = fields.get("config")
        if config is not None and not isinstance(config, dict):
            raise InvalidError("A tool's config must be an object", errors=[("config", "Expected an object")])
        return {"tool_id": str(fields["tool_id"]), "enabled": None if enabled is None else bool(enabled),
                "config": config}

    @classmethod
    def for_tool(cls, group_id: str, tool_id: UUID, fields: dict[str, Any]) -> ToolSetting:
        return cls.new(group_id, {**fields, "tool_id": str(tool_id)}, id=tool_setting_id(group_id, tool_id))


def effective_tool(tool: dict[str, Any], setting: dict[str, Any] | None) -> dict[str, Any]:
    """A built-in tool as one group sees it: its setting's choices over the shared definition.

    A configuration override is laid over the defaults key by key, so keys a
    later upgrade adds to a built-in's defaults still appear.
    """
    if not setting:
        return dict(tool)
    seen = dict(tool)
    if setting.get("enabled") is not None:
        seen["enabled"] = setting["enabled"]
    if setting.get("config") is not None:
        seen["config"] = {**tool.get("config", {}), **setting["config"]}
    return seen


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    for python_type, json_type in ((int, "integer"), (float, "number"), (str, "string"),
                                   (list, "array"), (dict, "object")):
        if isinstance(value, python_type):
            return json_type
    return None


def _common_type(values: list[Any]) -> str | None:
    """The JSON type every item of a list has (integers count as numbers beside floats)."""
    types = {_json_type(v) for v in values}
    if types == {"integer", "number"}:
        return "number"
    return types.pop() if len(types) == 1 else None


def config_schema(
    tool_name: str, config: dict[str, Any], hints: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A JSON Schema of a tool's configuration, derived from its current values.

    Each key's type comes from its value (a ``null`` value admits anything),
    its ``default`` is the value, and ``hints`` add what values cannot say
    (descriptions, enums). Unknown keys stay allowed: tools read what they know.
    """
    hints = {"result_as_answer": RESULT_AS_ANSWER_HINT, **(hints or {})}
    properties: dict[str, Any] = {}
    for key, value in config.items():
        prop: dict[str, Any] = {}
        json_type = _json_type(value)
        if json_type is not None:
            prop["type"] = json_type
        if isinstance(value, list) and (item_type := _common_type(value)) is not None:
            prop["items"] = {"type": item_type}
        prop["default"] = value
        prop.update(hints.get(key, {}))
        properties[key] = prop
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": f"{tool_name} configuration",
        "type": "object",
        "properties": properties,
        "additionalProperties": True,
    }
