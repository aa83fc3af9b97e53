"""The capabilities the service is made of, in start-up order."""

from __future__ import annotations

from interface.core import Feature
from interface.http.agents import AgentsFeature

FEATURES: list[type[Feature]] = [
    AgentsFeature,
]
