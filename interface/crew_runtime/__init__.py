"""Run CrewAI crews in child processes and stream their progress to the service.

Only the light parts are re-exported here; ``child`` and ``tools`` import
crewai and ``offline_model`` imports litellm, so import those explicitly.
"""

from interface.crew_runtime.messages import (
    AgentCompleted,
    AgentStarted,
    CrewCompleted,
    CrewFailed,
    CrewJob,
    CrewStarted,
    LlmCall,
    LogLine,
    Message,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    ToolUsed,
)
from interface.crew_runtime.runtime import CrewProcess, CrewRuntime, quiet_environment

__all__ = [
    "AgentCompleted",
    "AgentStarted",
    "CrewCompleted",
    "CrewFailed",
    "CrewJob",
    "CrewProcess",
    "CrewRuntime",
    "CrewStarted",
    "LlmCall",
    "LogLine",
    "Message",
    "TaskCompleted",
    "TaskFailed",
    "TaskStarted",
    "ToolUsed",
    "quiet_environment",
]
