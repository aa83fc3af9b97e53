"""Random catalogue commands: the read model always equals a plain in-memory model.

Each hypothesis example works in a group of its own, so one database serves
the whole run.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from application.documents import DocumentService
from application.store import KasalStore, postgres_env
from domain.base import Document, stable_topics
from domain.context import Actor, acting_as
from domain.errors import ConflictError, NotFoundError
from domain.name_index import normalise_name
from projections.documents import DocumentProjection
from projections.engine import Projector


@stable_topics("test_widget")
class Widget(Document):
    KIND = "widget"


names = st.sampled_from(["Alpha", "alpha ", "Beta", "Gamma", "delta", "DELTA"])


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_catalogue_read_model_matches_a_plain_model(empty_database_url: str) -> None:
    store = KasalStore(postgres_env(empty_database_url))
    projector = Projector(empty_database_url, store, [DocumentProjection.for_aggregate(Widget, "rm_widgets")])
    service = DocumentService(store, Widget, unique_names=True)

    class Catalogue(RuleBasedStateMachine):
        widgets = Bundle("widgets")

        def __init__(self) -> None:
            super().__init__()
            self.actor = Actor(group_id=f"g-{uuid.uuid4().hex[:8]}", actor="prop")
            self.model: dict[uuid.UUID, dict[str, Any]] = {}

        def taken(self, name: str, other_than: uuid.UUID | None = None) -> bool:
            wanted = normalise_name(name)
            return any(normalise_name(w["name"]) == wanted for i, w in self.model.items() if i != other_than)

        @rule(target=widgets, name=names, size=st.integers(0, 9))
        def create(self, name: str, size: int) -> Any:
            with acting_as(self.actor):
                if self.taken(name):
                    with pytest.raises(ConflictError):
                        service.create({"name": name, "size": size})
                    return uuid.uuid4()  # an id nobody holds
                written = service.create({"name": name, "size": size})
            self.model[written.id] = {"name": name, "size": size}
            return written.id

        @rule(widget=widgets, name=names)
        def rename(self, widget: uuid.UUID, name: str) -> None:
            with acting_as(self.actor):
                if widget not in self.model:
                    with pytest.raises(NotFoundError):
                        service.change(widget, {"name": name})
                elif self.taken(name, other_than=widget):
                    with pytest.raises(ConflictError):
                        service.change(widget, {"name": name})
                else:
                    service.change(widget, {"name": name})
                    self.model[widget]["name"] = name

        @rule(widget=widgets, size=st.integers(0, 9))
        def resize(self, widget: uuid.UUID, size: int) -> None:
            with acting_as(self.actor):
                if widget not in self.model:
                    with pytest.raises(NotFoundError):
                        service.change(widget, {"size": size})
                else:
                    service.change(widget, {"size": size})
                    self.model[widget]["size"] = size

        @rule(widget=consumes(widgets))
        def delete(self, widget: uuid.UUID) -> None:
            with acting_as(self.actor):
                if widget not in self.model:
                    with pytest.raises(NotFoundError):
                        service.delete(widget)
                else:
                    service.delete(widget)
                    del self.model[widget]

        @invariant()
        def read_model_equals_model(self) -> None:
            projector.catch_up()
            with psycopg.connect(empty_database_url) as conn:
                rows = conn.execute(
                    "SELECT id, doc->>'name', (doc->>'size')::int FROM rm_widgets WHERE group_id = %s",
                    (self.actor.group_id,),
                ).fetchall()
            assert {r[0]: {"name": r[1], "size": r[2]} for r in rows} == self.model

    Catalogue.TestCase.settings = settings(max_examples=15, stateful_step_count=12, deadline=None)
    try:
        Catalogue.TestCase().runTest()
    finally:
        store.close()
