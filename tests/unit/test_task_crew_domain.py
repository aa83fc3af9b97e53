"""Tasks and crews without a database: their rules, events and the services around them."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.agents import AgentService
from application.crews import Catalogue, CrewDraft, CrewService, canvas_config, config_key, debug_crew, decoded_configs
from application.store import KasalStore, memory_env
from application.tasks import TaskService
from domain.context import Actor, acting_as
from domain.crew import Crew
from domain.errors import ConflictError, InvalidError
from domain.task import Task
from projections.references import agent_key

TASK = {"name": "Research", "description": "Research AI", "expected_output": "A report"}
AGENT = {"name": "Research Agent", "role": "Researcher", "goal": "Find", "backstory": "Knows"}


@pytest.fixture
def acting() -> Iterator[None]:
    """Domain commands record who acted: these tests act as an editor of group ``g``."""
    with acting_as(Actor("g", "editor@example.com", "editor")):
        yield


class FakeAgentDirectory:
    """Agents by id and by name, compared the way the real directory compares them."""

    def __init__(self) -> None:
        self.agents: dict[str, UUID] = {}

    def add(self, name: str) -> UUID:
        agent_id = uuid4()
        self.agents[name] = agent_id
        return agent_id

    def agent_id_for(self, group_id: str, reference: str) -> UUID | None:
        by_key = {agent_key(name): agent_id for name, agent_id in self.agents.items()}
        by_id = {str(agent_id): agent_id for agent_id in self.agents.values()}
        return by_id.get(reference) or by_key.get(agent_key(reference))


class FakeTaskDirectory:
    """Answers from the event store's aggregates the read model would show."""

    def __init__(self, store: KasalStore) -> None:
        self.store = store
        self.task_ids: list[UUID] = []

    def tasks_assigned_to(self, group_id: str, agent_id: UUID) -> list[UUID]:
        tasks = [self.store.find(task_id) for task_id in self.task_ids]
        return [t.id for t in tasks if t is not None and not t.deleted and t.agent_id == str(agent_id)]


@pytest.fixture
def store():
    store = KasalStore(memory_env())
    with acting_as(Actor(group_id="g", actor="tester")):
        yield store
    store.close()


@pytest.mark.usefixtures("acting")
def test_a_task_gets_kasals_defaults() -> None:
    task = Task.new("g", TASK)
    assert task.fields["tools"] == [] and task.fields["context"] == [] and task.fields["config"] == {}
    assert task.fields["async_execution"] is False and task.fields["agent_id"] is None


@pytest.mark.parametrize("field", ["name", "description", "expected_output"])
def test_a_task_without_a_required_field_is_invalid(field: str) -> None:
    with pytest.raises(InvalidError) as raised:
        Task.new("g", {**TASK, field: "  "})
    assert raised.value.errors == [(field, "Field required")]


@pytest.mark.usefixtures("acting")
def test_unassigning_another_agent_records_nothing() -> None:
    task = Task.new("g", {**TASK, "agent_id": str(uuid4())})
    assert task.unassign_agent(uuid4()) is False
    assert [type(e).TOPIC for e in task.collect_events()] == ["task.created.v1"]


@pytest.mark.usefixtures("acting")
def test_unassigning_its_agent_clears_the_reference_in_one_event() -> None:
    agent_id = uuid4()
    task = Task.new("g", {**TASK, "agent_id": agent_id, "agent": "research_agent"})
    assert task.unassign_agent(agent_id) is True
    assert task.fields["agent_id"] is None and task.fields["agent"] is None
    events = task.collect_events()
    assert type(events[-1]).TOPIC == "task.agent_unassigned.v1" and events[-1].agent_id == str(agent_id)


@pytest.mark.usefixtures("acting")
def test_a_crew_needs_a_known_process() -> None:
    with pytest.raises(InvalidError):
        Crew.new("g", {"name": "c", "process": "parallel"})
    assert Crew.new("g", {"name": "c", "process": None}).fields["process"] == "sequential"


PROSE = st.text(min_size=1).filter(str.strip)
TASK_CHANGES = st.fixed_dictionaries({}, optional={
    "name": PROSE, "description": PROSE, "tools": st.lists(PROSE, max_size=3), "markdown": st.booleans(),
    "config": st.dictionaries(st.text(), st.sampled_from([None, False, ""]), max_size=2),
})


@given(st.lists(TASK_CHANGES, max_size=5))
@settings(max_examples=50, deadline=None)
def test_partial_changes_fold_like_dict_merges_and_replay_identically(changes: list[dict]) -> None:
    store = KasalStore(memory_env())
    with acting_as(Actor(group_id="g", actor="tester")):
        task = Task.new("g", TASK)
        expected = dict(task.fields)
        for change in changes:
            task.change(change)
            expected.update(change)
        store.record(task)
        assert task.fields == expected
        assert store.repository.get(task.id).fields == expected
    store.close()


def test_replace_forgets_fields_not_sent(store: KasalStore) -> None:
    service = TaskService(store, FakeAgentDirectory())
    written = service.create({**TASK, "tools": ["search"], "markdown": True})
    service.replace(written.id, {"name": "New", "description": "d", "expected_output": "o"})
    fields = service.get(written.id).fields
    assert fields["tools"] == [] and fields["markdown"] is False and fields["name"] == "New"


def test_the_service_resolves_an_agent_by_name_and_keeps_what_was_written(store: KasalStore) -> None:
    agents = FakeAgentDirectory()
    agent_id = agents.add("Research Agent")
    service = TaskService(store, agents)
    task = service.get(service.create({**TASK, "agent": "research-agent"}).id)
    assert task.fields["agent_id"] == str(agent_id) and task.fields["agent"] == "research-agent"


def test_sending_only_agent_id_clears_the_written_reference(store: KasalStore) -> None:
    service = TaskService(store, FakeAgentDirectory())
    written = service.create({**TASK, "agent": "ghost"})
    service.change(written.id, {"agent_id": None})
    fields = service.get(written.id).fields
    assert fields["agent"] is None and fields["agent_id"] is None


def test_deleting_an_agent_unassigns_its_tasks_in_the_same_write(store: KasalStore) -> None:
    directory = FakeTaskDirectory(store)
    agents = AgentService(store, directory)
    agent, other = agents.create(AGENT), agents.create({**AGENT, "name": "Other Agent"})
    tasks = TaskService(store, FakeAgentDirectory())
    mine = tasks.create({**TASK, "agent_id": agent.id})
    theirs = tasks.create({**TASK, "agent_id": other.id})
    directory.task_ids += [mine.id, theirs.id]
    before = store.max_position()

    deleted = agents.delete(agent.id)

    assert deleted.position == before + 2
    assert tasks.get(mine.id).fields["agent_id"] is None
    assert tasks.get(theirs.id).version == 1


def test_a_crew_name_is_unique_ignoring_case(store: KasalStore) -> None:
    crews = CrewService(store)
    crews.create({"name": "Research Team"})
    with pytest.raises(ConflictError):
        crews.create({"name": "research team"})


def test_undecodable_yaml_is_kept_with_no_decoded_form() -> None:
    assert decoded_configs({"agents_yaml": "agent_configs_here"}) == {"agents_config": None}
    assert decoded_configs({"tasks_yaml": "a: [1"}) == {"tasks_config": None}
    assert decoded_configs({"name": "x"}) == {}


def test_config_keys_are_readable_and_unique() -> None:
    assert config_key("Research Agent", []) == "research_agent"
    assert config_key("Research Agent", ["research_agent"]) == "research_agent_2"
    assert config_key("!!!", []) == "item"


def test_canvas_config_reports_missing_documents_and_keeps_dangling_agents() -> None:
    agent_id, task_id, gone = str(uuid4()), str(uuid4()), str(uuid4())
    agents = {agent_id: {**AGENT, "llm": "offline/echo"}}
    tasks = {task_id: {**TASK, "agent_id": None, "agent": "editor", "context": []}, gone: None}
    agents_map, tasks_map, problems = canvas_config([agent_id], [task_id, gone], agents, tasks)
    assert list(agents_map) == ["research_agent"] and tasks_map["research"]["agent"] == "editor"
    assert [p.path for p in problems] == ["task_ids[1]"]


def test_debug_uses_the_catalogue_for_tools_and_models() -> None:
    agents = {"a": {"role": "r", "goal": "g", "backstory": "b", "llm": "mystery", "tools": ["off", "nope"]}}
    tasks = {"t": {"description": "d", "expected_output": "o", "agent": "a"}}
    catalogue = Catalogue(known_tools=frozenset({"off", "on"}), disabled_tools=frozenset({"off"}),
                          known_models=frozenset({"offline/echo"}))
    report = debug_crew(CrewDraft(agents_yaml=agents, tasks_yaml=tasks), catalogue)
    paths = {e.path for e in report.errors}
    assert paths == {"agents_yaml.a.llm", "agents_yaml.a.tools[0]", "agents_yaml.a.tools[1]"}
