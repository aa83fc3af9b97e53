"""Request bodies copied from the Kasal REST API contract, shared by the test tiers."""

from __future__ import annotations

CONTRACT_AGENT = {
    "name": "Research Agent",
    "role": "Senior Researcher",
    "goal": "Conduct thorough research on given topics",
    "backstory": "You are an experienced researcher with expertise in gathering and analyzing information",
    "llm": "gpt-4",
    "tools": ["search_tool", "browser_tool"],
    "allow_delegation": False,
    "verbose": True,
}
