"""Decode one config field (YAML text, JSON text or a mapping) safely.

Limits, and why:

* Text larger than ``MAX_TEXT_BYTES`` (256 KiB, UTF-8) is rejected before
  parsing: a crew config is a few KiB, and parsing cost grows with size.
* YAML anchors and aliases are allowed (people use ``<<: *defaults``), but the
  composed document is measured *with aliases expanded* before anything is
  constructed, and rejected above ``MAX_NODES``.  That stops "billion laughs"
  alias bombs and the quadratic/exponential ``<<`` merge-key expansion that
  ``yaml.safe_load`` would otherwise perform during construction.  Recursive
  aliases (``&a [*a]``) expand forever and are rejected by the same rule.
* Every decoded value (including mappings passed in directly) is walked
  iteratively and rejected when it exceeds ``MAX_NODES`` values,
  ``MAX_DEPTH`` levels or ``MAX_TEXT_BYTES`` characters of text, so later
  code and JSON encoders never recurse without bound.  Mapping keys must be
  strings at every level, which keeps a report encodable as JSON; strings
  holding lone surrogates (from ``\\ud800``-style escapes) are rejected for
  the same reason.
* Agent and task keys are at most ``MAX_KEY_LENGTH`` characters: they are
  repeated in the path of every finding about their entry, so an unbounded
  key would let a small config produce an enormous report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal, TypeAlias

import yaml

from ._model import Finding
from ._util import child, describe, encodable, item, noun_for

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_TEXT_BYTES = 256 * 1024
MAX_NODES = 50_000
MAX_DEPTH = 64
MAX_KEY_LENGTH = 100
_MAX_KEY_FINDINGS = 20
_SURROGATE = "contains an invalid Unicode escape (a lone surrogate such as \\ud800)"

Decoded = tuple[object, list[Finding]]


def load_mapping(value: object, *, field: str) -> tuple[dict[str, object] | None, list[Finding]]:
    """Decode ``value`` into a string-keyed mapping, or explain why not.

    Empty text (or YAML/JSON ``null``) yields an empty mapping: saying that
    nothing is defined is the caller's job, not a syntax problem.
    """
    data, findings = _decode(value, field)
    if findings:
        return None, findings
    if data is None:
        return {}, []
    usable, findings = _check_structure(data, field)
    if not usable:
        return None, findings
    if not isinstance(data, Mapping):
        noun = noun_for(field)
        message = f"must be a mapping of {noun} keys to {noun} definitions, got {describe(data)}"
        return None, [Finding(field, message)]
    return _string_keyed(data, field, findings)


def split_entries(
    mapping: dict[str, object], *, field: str
) -> tuple[dict[str, dict[str, object]], list[Finding]]:
    """Keep the entries that are mappings; report every other one."""
    noun = noun_for(field)
    entries: dict[str, dict[str, object]] = {}
    findings: list[Finding] = []
    for key, entry in mapping.items():
        if isinstance(entry, Mapping):
            entries[key] = dict(entry)
        else:
            message = f"must be a mapping of {noun} options, got {describe(entry)}"
            findings.append(Finding(child(field, key), message))
    return entries, findings


def parse_config_map(
    value: str | Mapping[str, object] | None, *, field: str
) -> tuple[dict[str, dict[str, object]] | None, list[Finding]]:
    """Decode one of ``agents_yaml``/``tasks_yaml`` into ``{key: definition}``.

    Returns ``None`` when the field is unusable as a whole (missing, syntax
    error, not a mapping, over a limit).  Otherwise returns the entries that are
    mappings, with findings for the ones that are not.  All findings here are
    errors; option-level checks live in ``validate_crew``.
    """
    mapping, findings = load_mapping(value, field=field)
    if mapping is None:
        return None, findings
    entries, entry_findings = split_entries(mapping, field=field)
    return entries, findings + entry_findings


def _decode(value: object, field: str) -> Decoded:
    """Turn the accepted input shapes into plain Python data."""
    if value is None:
        return None, [Finding(field, "is missing; expected YAML or JSON text or a mapping")]
    if isinstance(value, Mapping):
        return value, []
    if isinstance(value, str):
        return _decode_text(value, field)
    return None, [Finding(field, f"must be YAML or JSON text or a mapping, got {describe(value)}")]


def _decode_text(text: str, field: str) -> Decoded:
    """Parse text as JSON when it looks like JSON, otherwise (or as fallback) as YAML.

    JSON is tried first for ``{``/``[`` because YAML flow syntax is not a full
    JSON superset (tabs, escapes); if JSON fails but YAML flow syntax parses,
    the YAML reading wins, otherwise the JSON error is the more useful one.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TEXT_BYTES:
        return None, [Finding(field, f"is too large ({size} bytes; the limit is {MAX_TEXT_BYTES})")]
    if not encodable(text):
        line, column = _line_column(text, next(i for i, c in enumerate(text) if not encodable(c)))
        return None, [Finding(field, f"invalid text at line {line}, column {column}: {_SURROGATE}")]
    if not text.lstrip().startswith(("{", "[")):
        return _decode_yaml(text, field)
    data, json_findings = _decode_json(text, field)
    if not json_findings:
        return data, []
    data, yaml_findings = _decode_yaml(text, field)
    return (data, []) if not yaml_findings else (None, json_findings)


def _decode_json(text: str, field: str) -> Decoded:
    """``json.loads`` with every failure turned into a located finding."""
    try:
        return json.loads(text), []
    except json.JSONDecodeError as exc:
        return None, [Finding(field, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")]
    except RecursionError:
        return None, [Finding(field, "invalid JSON: nested too deeply")]
    except ValueError as exc:
        return None, [Finding(field, f"invalid JSON: {exc}")]


def _decode_yaml(text: str, field: str) -> Decoded:
    """Safe YAML decoding: compose, measure the expanded size, then construct.

    libyaml's loader is used when PyYAML has it: it is an order of magnitude
    faster on large configs and refuses nesting deeper than 1000 levels
    itself; the pure-Python loader turns deep nesting into ``RecursionError``.

    Any exception is reported rather than raised because validation must never
    fail on user input; SafeConstructor raises plain ``ValueError`` and friends
    for inputs such as ``!!int x`` or 5000-digit integers.
    """
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None, []
        if _expands_beyond(node, MAX_NODES):
            return None, [Finding(field, _too_many_nodes())]
        return loader.construct_document(node), []
    except yaml.MarkedYAMLError as exc:
        return None, [Finding(field, _marked_message(exc))]
    except yaml.reader.ReaderError as exc:
        return None, [Finding(field, _reader_message(text, exc))]
    except RecursionError:
        return None, [Finding(field, "invalid YAML: nested too deeply")]
    except Exception as exc:  # see docstring: never raise on input
        return None, [Finding(field, f"invalid YAML: {exc}")]
    finally:
        if loader is not None:
            loader.dispose()


def _marked_message(exc: yaml.MarkedYAMLError) -> str:
    """"invalid YAML at line N, column M: problem (context)", 1-based like editors."""
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = exc.problem or exc.context or "syntax error"
    context = f" ({exc.context})" if exc.problem and exc.context else ""
    return f"invalid YAML{where}: {problem}{context}"


def _reader_message(text: str, exc: yaml.reader.ReaderError) -> str:
    """Reader errors carry a character offset only; convert it to line/column."""
    line, column = _line_column(text, exc.position)
    character = exc.character
    what = f"#x{character:04x}" if isinstance(character, int) else repr(character)
    return f"invalid YAML at line {line}, column {column}: unacceptable character {what}: {exc.reason}"


def _line_column(text: str, position: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    position = min(max(position, 0), len(text))
    line = text.count("\n", 0, position) + 1
    return line, position - (text.rfind("\n", 0, position) + 1) + 1


def _too_many_nodes() -> str:
    return (
        f"expands to more than {MAX_NODES} values (recursive or heavily "
        "repeated YAML anchors/aliases?)"
    )


def _expands_beyond(root: yaml.Node, limit: int) -> bool:
    """Count composed nodes as if every alias were copied; stop past ``limit``."""
    stack: list[yaml.Node] = [root]
    count = 0
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
    return False


# Where a value sits, as a linked list (parent, step, is_index), so that the
# walk stays O(1) per value; paths are rendered only for the few findings.
# A step is a list index, or a mapping key (any hashable YAML gives).
_Step: TypeAlias = "tuple[_Trail, int, Literal[True]] | tuple[_Trail, object, Literal[False]]"
_Trail: TypeAlias = "_Step | None"


def _check_structure(data: object, field: str) -> tuple[bool, list[Finding]]:
    """Walk decoded data iteratively, enforcing the limits and string keys.

    Returns ``(usable, findings)``; a limit breach makes the data unusable,
    non-string keys are reported (a bounded number of them) but not fatal.
    Text is counted per visit, so a string repeated through YAML aliases or
    shared references counts every time it would be shown or copied.
    """
    stack: list[tuple[object, _Trail, int]] = [(data, None, 0)]
    nodes = chars = 0
    findings: list[Finding] = []
    while stack:
        value, trail, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return False, [Finding(field, _too_many_nodes())]
        if depth > MAX_DEPTH:
            return False, [Finding(_render(field, trail), f"is nested more than {MAX_DEPTH} levels deep")]
        if isinstance(value, str):
            chars += len(value)
            if chars > MAX_TEXT_BYTES:
                return False, [Finding(field, f"holds more than {MAX_TEXT_BYTES} characters of text")]
            if not encodable(value):
                return False, [Finding(_render(field, trail), _SURROGATE)]
        elif isinstance(value, Mapping):
            stack.extend(_mapping_children(value, field, trail, depth, findings))
        elif isinstance(value, list | tuple | set | frozenset):
            stack.extend((v, (trail, i, True), depth + 1) for i, v in reversed(list(enumerate(value))))
    return True, findings


def _mapping_children(
    value: Mapping[object, object], field: str, trail: _Trail, depth: int, findings: list[Finding]
) -> list[tuple[object, _Trail, int]]:
    """Keys and values of a mapping to visit (in reverse, so findings stay in order)."""
    children: list[tuple[object, _Trail, int]] = []
    for key, entry in value.items():
        if not isinstance(key, str) and len(findings) < _MAX_KEY_FINDINGS:
            message = f"has the non-string key {key!r}; keys must be strings"
            findings.append(Finding(_render(field, trail), message))
        children.append((key, trail, depth + 1))
        children.append((entry, (trail, key, False), depth + 1))
    children.reverse()
    return children


def _render(field: str, trail: _Trail) -> str:
    """The dotted path of a trail, e.g. ``agents_yaml.a.tools[0]``."""
    steps: list[_Step] = []
    while trail is not None:
        steps.append(trail)
        trail = trail[0]
    path = field
    for step in reversed(steps):
        path = item(path, step[1]) if step[2] else child(path, step[1])
    return path


def _string_keyed(
    data: Mapping[object, object], field: str, findings: list[Finding]
) -> tuple[dict[str, object] | None, list[Finding]]:
    """Top-level entries under usable keys; non-string keys were already reported."""
    noun = noun_for(field)
    mapping: dict[str, object] = {}
    for key, entry in data.items():
        if not isinstance(key, str):
            continue
        if not key.strip():
            findings.append(Finding(child(field, key), f"{noun} keys must not be blank"))
            continue
        if len(key) > MAX_KEY_LENGTH:
            message = f"{noun} keys must be at most {MAX_KEY_LENGTH} characters, got {describe(key)}"
            findings.append(Finding(field, message))
            continue
        mapping[key] = entry
    return mapping, findings
