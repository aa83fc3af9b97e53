"""Shared machinery of the rules: the policy, name catalogues, finding collection.

Cost matters as much as correctness here: a 256 KiB config can hold tens of
thousands of references, so membership tests are O(1), listings of known
names are built once, and "did you mean" hints (difflib, quadratic-ish) are
rationed per validation.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field

from ._model import Finding
from ._options import Check
from ._util import child, describe, item, listing, suggestion

MAX_HINTS = 25
MAX_HINT_OPTIONS = 200


@dataclass(frozen=True)
class Names:
    """Names something may refer to: ordered, O(1) lookup, listing ready for messages."""

    ordered: tuple[str, ...]
    members: frozenset[str]
    shown: str

    @classmethod
    def of(cls, names: Collection[str], *, sort: bool = False) -> Names:
        ordered = tuple(sorted(names, key=str) if sort else names)
        return cls(ordered, frozenset(ordered), listing(ordered))

    def __contains__(self, name: object) -> bool:
        return name in self.members


@dataclass(frozen=True)
class Policy:
    """What the deployment allows: tools, models and the crew process."""

    known_tools: Names | None
    disabled_tools: frozenset[str]
    blocked_tools: Mapping[str, str]
    """Tools that exist but cannot run now, with why (no implementation here, a missing key)."""
    known_models: Names | None
    default_model: str | None
    blocked_models: Mapping[str, str]
    """Models the group may name but cannot call now (a missing key), with why."""
    process: object

    @property
    def hierarchical(self) -> bool:
        return self.process == "hierarchical"


@dataclass
class Checker:
    """Collects findings while the rules run, so each rule stays a small function."""

    policy: Policy
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    hints_left: int = MAX_HINTS

    def error(self, path: str, message: str) -> None:
        self.errors.append(Finding(path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Finding(path, message))

    def hint(self, name: str, options: Collection[str]) -> str:
        """A "did you mean" suffix while the budget lasts (difflib is not cheap)."""
        if self.hints_left <= 0 or len(options) > MAX_HINT_OPTIONS or len(name) > 100:
            return ""
        self.hints_left -= 1
        return suggestion(name, options)

    def options(
        self,
        entry: Mapping[str, object],
        path: str,
        spec: tuple[tuple[str, ...], dict[str, Check], frozenset[str], str],
    ) -> None:
        """Required fields present, typed fields well-typed, unknown ones flagged."""
        required, checks, known, noun = spec
        for name in required:
            if entry.get(name) is None:
                self.error(child(path, name), "is required")
        for name, value in entry.items():
            if value is None or not isinstance(name, str):  # an invalid config may hold other keys
                continue
            check = checks.get(name)
            if check is None and name not in known:
                hint = self.hint(name, known)
                self.warn(child(path, name), f"is not a known CrewAI {noun} option and will be ignored{hint}")
            problem = check(value) if check else None
            if problem:
                self.error(child(path, name), problem)

    def names(self, value: object, path: str, what: str) -> Iterator[tuple[str, str]]:
        """``(path, name)`` for the usable strings of a name list; reports the rest.

        A generator, so callers' findings about good names and ours about bad
        ones come out in list order.
        """
        if not isinstance(value, list):
            return
        for index, name in enumerate(value):
            if isinstance(name, str) and name.strip():
                yield item(path, index), name
            else:
                self.error(item(path, index), f"must be a {what} name, got {describe(name)}")

    def tools(self, entry: Mapping[str, object], path: str) -> None:
        """Each tool must exist (when a catalogue is given) and not be disabled."""
        known = self.policy.known_tools
        listed: set[str] = set()
        for tool_path, name in self.names(entry.get("tools"), child(path, "tools"), "tool"):
            if name in listed:
                self.warn(tool_path, f"tool {name} is listed more than once")
            listed.add(name)
            if name in self.policy.disabled_tools:
                self.error(tool_path, f"tool {name} is disabled")
            elif name in self.policy.blocked_tools:
                self.error(tool_path, f"tool {name} cannot run: {self.policy.blocked_tools[name]}")
            elif known is not None and name not in known:
                hint = self.hint(name, known.ordered)
                self.error(tool_path, f"unknown tool {name!r}{hint}; known tools: {known.shown}")

    def model(self, value: object, path: str) -> None:
        """A model name must be in the catalogue when one is given."""
        known = self.policy.known_models
        if known is not None and isinstance(value, str) and value.strip() and value not in known:
            hint = self.hint(value, known.ordered)
            self.error(path, f"unknown model {value!r}{hint}; known models: {known.shown}")
        elif isinstance(value, str) and value in self.policy.blocked_models:
            self.error(path, f"model {value} cannot run: {self.policy.blocked_models[value]}")
