"""``{name}`` placeholders, matched exactly the way CrewAI interpolates them.

CrewAI (``crewai.utilities.string_utils.interpolate_only``) only treats
``{identifier}`` as a variable, which is what lets JSON examples such as
``{"key": 1}`` survive inside task descriptions.  Using the same pattern here
keeps ``missing_inputs`` in agreement with what a run will actually demand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ._model import CrewReport

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_\-]*)\}")


def placeholders_in(text: str) -> set[str]:
    """Names of the placeholders used in ``text``."""
    return set(PLACEHOLDER.findall(text))


def fill_placeholders(text: str, inputs: Mapping[str, object]) -> str:
    """Replace every known ``{name}`` in ``text`` by ``str(inputs[name])``.

    Unknown names and any other braces are left untouched.  Substitution is a
    single pass, so a value that itself contains ``{other}`` is not expanded
    again (CrewAI's repeated ``str.replace`` could do that; we do not copy it).
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(inputs[name]) if name in inputs else match.group(0)

    return PLACEHOLDER.sub(substitute, text)


def missing_inputs(
    report_or_placeholders: CrewReport | Iterable[str], inputs: Mapping[str, object]
) -> list[str]:
    """Placeholders that ``inputs`` does not provide, sorted.

    Accepts a ``CrewReport`` or any collection of names; a bare string counts
    as one name rather than as a sequence of one-letter names.  A key present
    with a ``None`` value counts as provided, as it does for CrewAI.
    """
    if isinstance(report_or_placeholders, CrewReport):
        names: Iterable[str] = report_or_placeholders.placeholders
    elif isinstance(report_or_placeholders, str):
        names = [report_or_placeholders]
    else:
        names = report_or_placeholders
    return sorted({name for name in names if name not in inputs})
