"""What the built-in offline models answer to generation prompts.

The offline models (``offline/echo``) exist so the quick start, the tests and
demos work with no keys and no network. For generation they must answer with
the JSON the prompt asks for, derived only from the description, so the same
request always generates the same agent, task or crew. This is used for
offline models only: a real provider's answer is never replaced.

Braces in the description become parentheses here, so an offline crew never
gains ``{placeholders}`` that an execution would then ask inputs for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

_STOP_WORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "of", "for", "to", "in", "on", "at", "by", "with", "from", "into", "about",
    "as", "is", "are", "be", "that", "this", "these", "those", "which", "who", "whom", "what", "when", "where", "how",
    "it", "its", "their", "our", "your", "my", "me", "us", "we", "you", "i", "can", "could", "should", "would",
    "will", "shall", "may", "might", "must", "please", "create", "make", "build", "design", "generate", "write",
    "give", "need", "needs", "want", "wants", "agent", "agents", "task", "tasks", "crew", "crews", "team", "teams",
    "ai", "handles", "handle", "handling", "using", "use", "some", "any", "all", "one", "two", "three", "new", "good",
    "great", "research", "writing", "review", "analyse", "analyze", "summarise", "summarize", "find", "explain",
    "plan", "answer",
})
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")


def _plain(description: str) -> str:
    """One line, without braces, at most ~300 characters (cut at a word); never empty."""
    text = " ".join(description.replace("{", "(").replace("}", ")").split()) or "the request"
    if len(text) <= 300:
        return text
    return text[:300].rsplit(" ", 1)[0] + " ..."


def topic(description: str) -> str:
    """Up to three content words of the description, title-cased ("General" when there are none)."""
    words = [w for w in _WORD.findall(description) if w.casefold() not in _STOP_WORDS and len(w) > 1]
    return " ".join(w[:1].upper() + w[1:30] for w in words[:3]) or "General"


def _words(text: str) -> str:
    return " " + " ".join(re.sub(r"[^0-9a-z]+", " ", text.casefold()).split()) + " "


def mentioned_tools(description: str, tools: Iterable[str]) -> list[str]:
    """The offered tools the description names ("use the calculator" → ``calculator``)."""
    text = _words(description)
    return [name for name in tools if _words(name).strip() and _words(name) in text]


def _agent(title: str, job: str, goal: str, tools: list[str]) -> dict[str, object]:
    return {
        "name": f"{title} {job}",
        "role": f"{title} {job}",
        "goal": goal,
        "backstory": f"A seasoned {job.lower()} for {title.lower()} work who checks every fact, "
                     "works step by step and explains results plainly.",
        "tools": tools,
    }


def agent_reply(description: str, tools: Iterable[str]) -> str:
    """The ``generate_agent`` answer: one agent specialised in the description's topic."""
    title, text = topic(description), _plain(description)
    return json.dumps(_agent(title, "Specialist", f"Deliver exactly what was asked: {text}",
                             mentioned_tools(description, tools)), indent=2)


def task_reply(description: str, tools: Iterable[str]) -> str:
    """The ``generate_task`` answer: one task doing what the description says."""
    title, text = topic(description), _plain(description)
    return json.dumps({
        "name": f"{title} Task",
        "description": text,
        "expected_output": f"A clear, well-structured result for: {text}",
        "tools": mentioned_tools(description, tools),
    }, indent=2)


def crew_reply(description: str, tools: Iterable[str]) -> str:
    """The ``generate_crew`` answer: a researcher and a writer, the writing using the research."""
    title, text = topic(description), _plain(description)
    used = mentioned_tools(description, tools)
    researcher = _agent(title, "Researcher", f"Gather the facts and sources needed for: {text}", used)
    writer = _agent(title, "Writer", f"Turn the research into the finished result for: {text}", [])
    research = f"Research {title}"
    return json.dumps({
        "agents": [researcher, writer],
        "tasks": [
            {"name": research, "description": f"Research what is needed for: {text}",
             "expected_output": "A list of the key facts, each with its source",
             "agent": researcher["name"], "context": [], "tools": used},
            {"name": f"Write {title} Report", "description": f"Using the research, complete: {text}",
             "expected_output": f"The finished result for: {text}",
             "agent": writer["name"], "context": [research], "tools": []},
        ],
    }, indent=2)
