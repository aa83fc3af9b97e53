"""The capabilities the service is made of, in start-up order."""

from __future__ import annotations

from interface.core import Feature
from interface.http.agents import AgentsFeature
from interface.http.api_keys import ApiKeysFeature
from interface.http.templates import TemplatesFeature
from interface.http.crews import CrewsFeature
from interface.http.tasks import TasksFeature
from interface.http.tokens import TokensFeature
from interface.http.tools import ToolsFeature
from interface.http.models import ModelsFeature
from interface.http.executions import ExecutionsFeature
from interface.http.schedules import SchedulesFeature
from interface.http.generation import GenerationFeature
from interface.worker import RunnerFeature

FEATURES: list[type[Feature]] = [
    AgentsFeature,
    ApiKeysFeature,
    TemplatesFeature,
    TasksFeature,
    CrewsFeature,
    TokensFeature,
    ToolsFeature,
    ModelsFeature,
    ExecutionsFeature,
    SchedulesFeature,
    RunnerFeature,
    GenerationFeature,
]
