"""Run CrewAI crews in child processes and stream what they observe to the service.

Only the light parts are re-exported here; ``child`` and ``tools`` import
crewai, so import those explicitly (only crew children do).
"""

from interface.crew_runtime.messages import CrewJob
from interface.crew_runtime.runtime import CrewProcess, CrewRuntime

__all__ = ["CrewJob", "CrewProcess", "CrewRuntime"]
