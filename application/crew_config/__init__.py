"""Parse and validate CrewAI-style crew configs (``agents_yaml``/``tasks_yaml``).

Pure functions, no I/O.  Each field may be YAML text, JSON text or an
already-decoded mapping.  ``validate_crew`` never raises for any input: every
problem becomes a located ``Finding`` in a ``CrewReport``.  Size, node-count
and nesting limits (and how YAML aliases are handled) are documented in
``application.crew_config._parse``.
"""

from ._model import CrewReport, Finding, ParsedCrew
from ._parse import MAX_DEPTH, MAX_KEY_LENGTH, MAX_NODES, MAX_TEXT_BYTES, parse_config_map
from ._placeholders import fill_placeholders, missing_inputs
from ._validate import validate_crew

__all__ = [
    "MAX_DEPTH",
    "MAX_KEY_LENGTH",
    "MAX_NODES",
    "MAX_TEXT_BYTES",
    "CrewReport",
    "Finding",
    "ParsedCrew",
    "fill_placeholders",
    "missing_inputs",
    "parse_config_map",
    "validate_crew",
]
