"""What must never be recorded, and input no walk over it can choke on.

Secrets are kept out of the log two ways. *By name*: inputs whose names look
secret (``SECRET_NAME``) are replaced by ``REDACTED`` before an event is made.
*By value*: a run fills its secret inputs into prompts (``{placeholder}``), the
model repeats them, and a provider error can quote the key a run was handed;
so those values (``KnownSecrets``) are replaced wherever they appear in what
the run records. Values shorter than ``MIN_SECRET_CHARS`` are only redacted by
name: scrubbing "a", "true" or "2024" by value would garble every text.

Free-form input (``inputs``) nests at most ``MAX_INPUT_DEPTH`` levels, and the
walks here use explicit stacks, so no depth can make them fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import msgspec

from domain.errors import InvalidError

SECRET_NAME = re.compile(r"key|token|secret|password", re.IGNORECASE)
REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 8
MAX_INPUT_DEPTH = 32
"""How deeply ``inputs`` may nest (mappings and lists, the inputs themselves included)."""

S = TypeVar("S", bound=msgspec.Struct)


class KnownSecrets:
    """Values that must never be recorded, replaced by ``REDACTED`` wherever they appear in text.

    Each value is also matched as it looks inside JSON text (escaped), and
    longest first, so a secret that contains another is hidden whole.
    """

    def __init__(self, values: Iterable[Any] = ()) -> None:
        found: set[str] = set()
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                continue
            text = str(value)
            for variant in (text, text.strip(), json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]):
                if len(variant) >= MIN_SECRET_CHARS:
                    found.add(variant)
        self.values = frozenset(found)
        ordered = sorted(found, key=lambda v: (-len(v), v))
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __or__(self, other: KnownSecrets) -> KnownSecrets:
        return KnownSecrets([*self.values, *other.values])

    def hide(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(REDACTED, text)


NO_SECRETS = KnownSecrets()


def scrub(value: Any, secrets: KnownSecrets = NO_SECRETS) -> Any:
    """``value`` made storable: NUL characters removed from every string (PostgreSQL text and
    jsonb refuse them, and one such character in an event would stop the read models that fold
    it), and every known secret replaced by ``REDACTED``, in keys and values alike.

    Tuples become lists.
    """

    def text(item: str) -> str:
        return secrets.hide(item.replace("\x00", "") if "\x00" in item else item)

    pending: list[tuple[Any, Any]] = []

    def copy(item: Any) -> Any:
        """A string cleaned, a leaf as is, a container as an empty copy filled later."""
        if isinstance(item, str):
            return text(item)
        if isinstance(item, (dict, list, tuple)):
            fresh: dict[Any, Any] | list[Any] = {} if isinstance(item, dict) else []
            pending.append((item, fresh))
            return fresh
        return item

    result = copy(value)
    while pending:
        source, target = pending.pop()
        if isinstance(source, dict):
            for key, item in source.items():
                target[text(key) if isinstance(key, str) else key] = copy(item)
        else:
            target.extend(copy(item) for item in source)
    return result


def scrub_struct(struct: S, secrets: KnownSecrets) -> S:
    """``struct`` (an observation of a run) with every known secret hidden in all of its texts,
    names included: an agent's role is filled from the inputs too."""
    if not secrets:
        return struct
    return msgspec.convert(scrub(msgspec.to_builtins(struct), secrets), type(struct))


def check_nesting(value: Any, field: str = "inputs", limit: int = MAX_INPUT_DEPTH) -> None:
    """Refuse a value nested deeper than ``limit`` mappings or lists (answered 422).

    No input a crew fills placeholders with needs more, and every layer that
    walks a value (JSON encoders, PostgreSQL's jsonb) has a depth it fails at.
    """
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (Mapping, list, tuple)):
            if depth >= limit:
                raise InvalidError(f"{field} are nested deeper than {limit} levels",
                                   errors=[(field, f"nested deeper than {limit} levels")])
            children = item.values() if isinstance(item, Mapping) else item
            pending.extend((child, depth + 1) for child in children)


def _secret_entries(inputs: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """Inputs with secret-looking values replaced, and (dotted name, value) of each one replaced,
    in document order."""
    hidden: list[tuple[str, Any]] = []
    root: dict[str, Any] = {}
    pending: list[tuple[Any, Any, str]] = [(iter(inputs.items()), root, "")]
    while pending:
        entries, target, path = pending[-1]
        entry = next(entries, None)
        if entry is None:
            pending.pop()
            continue
        key, item = entry
        if isinstance(target, dict):
            name = f"{path}.{key}" if path else str(key)
            if SECRET_NAME.search(str(key)) and item not in (None, ""):
                hidden.append((name, item))
                target[str(key)] = REDACTED
                continue
        else:
            name = f"{path}[{key}]"
        child: Any = item
        if isinstance(item, Mapping):
            child = {}
            pending.append((iter(item.items()), child, name))
        elif isinstance(item, list):
            child = []
            pending.append((iter(enumerate(item)), child, name))
        if isinstance(target, dict):
            target[str(key)] = child
        else:
            target.append(child)
    return root, hidden


def redact(inputs: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Inputs with secret-looking values replaced, and the dotted names replaced."""
    shown, hidden = _secret_entries(inputs)
    return shown, [name for name, _ in hidden]


_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
CREDENTIAL_WORDS = frozenset({
    "key", "keys", "apikey", "token", "tokens", "secret", "secrets", "password", "passwords", "passwd", "pwd",
    "credential", "credentials",
})


def names_a_credential(name: str) -> bool:
    """Whether a name ends in a word for a credential (``api_key``, ``githubToken``, ``DB_PASSWORD``).

    ``SECRET_NAME`` only asks whether the name *contains* such a word, which is
    right for hiding an input's own value but far too broad for scrubbing its
    value out of every text: ``keywords: "event sourcing"`` would blank those
    words wherever the crew wrote them.
    """
    words = _WORDS.findall(name)
    return bool(words) and words[-1].lower() in CREDENTIAL_WORDS


def secret_values(inputs: Mapping[str, Any]) -> KnownSecrets:
    """The values to scrub by value from whatever the run records: every text and number under
    a name that names a credential (``names_a_credential``), wherever ``redact`` hides it."""
    _, hidden = _secret_entries(inputs)
    leaves: list[Any] = []
    pending = [value for name, value in hidden if names_a_credential(name.rsplit(".", 1)[-1])]
    while pending:
        item = pending.pop()
        if isinstance(item, Mapping):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        else:
            leaves.append(item)
    return KnownSecrets(leaves)
