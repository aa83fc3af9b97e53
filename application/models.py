"""Model commands, addressed by key as the API is.

A key resolves without reading a projection: a built-in's id is derived from
its key, a group's own model is found through its key's name index. Changes
to a built-in become the caller's group's ``ModelSetting``; changes to a
group's own model change the document.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from application.documents import DocumentService, ExpectedVersions, Written
from application.store import KasalStore, retry_on_conflict
from application.tools import Decide, override_builtin, restore_setting
from domain.context import current_actor
from domain.errors import ConflictError, NotFoundError
from domain.model_config import ModelConfig, ModelSetting, builtin_model_id, effective_model, model_setting_id
from domain.name_index import NameIndex


class ModelsService:
    """Create, change, toggle and delete model configurations as the current actor's group."""

    def __init__(self, store: KasalStore) -> None:
        self.store = store
        self.documents = DocumentService(store, ModelConfig, unique_names=True)

    def create(self, fields: dict[str, Any]) -> Written:
        self._refuse_builtin_key(fields.get("key"))
        return self.documents.create(fields)

    def change(self, key: str, changes: dict[str, Any], expected_version: ExpectedVersions | None = None) -> Written:
        """Change the fields sent; for a built-in only its tunable fields, for this group."""
        builtin = self.builtin(key)
        if builtin is None:
            model_id = self.own_model_id(key)
            if "key" in changes and str(changes["key"]).strip() != key:
                self._refuse_builtin_key(changes["key"])
            if changes.get("api_base") and "api_key_name" not in changes:
                # A key chosen for the old endpoint is not sent to a new one unless named again.
                changes = {**changes, "api_key_name": None}
            return self.documents.change(model_id, changes, expected_version)
        wanted = builtin.override(changes)
        return self._override(builtin, lambda seen: {k: v for k, v in wanted.items() if seen.get(k) != v},
                              expected_version)

    def toggle(
        self, key: str, enabled: bool | None = None, expected_version: ExpectedVersions | None = None
    ) -> Written:
        """Set ``enabled`` (or flip it when not given) for the caller's group."""
        builtin = self.builtin(key)
        if builtin is not None:
            def decide(seen: dict[str, Any]) -> dict[str, Any]:
                wanted = not seen["enabled"] if enabled is None else enabled
                builtin.override({"enabled": wanted})
                return {} if wanted == seen["enabled"] else {"enabled": wanted}

            return self._override(builtin, decide, expected_version)
        model_id = self.own_model_id(key)

        def attempt() -> Written:
            model = self.documents.get(model_id)
            if expected_version is not None:
                expected_version.check("model", key, model.version)
            model.change({"enabled": not model.fields["enabled"] if enabled is None else enabled})
            return Written(model.id, model.version, self.store.record(model))

        return retry_on_conflict(attempt, attempts=5)

    def delete(self, key: str, expected_version: ExpectedVersions | None = None) -> Written:
        builtin = self.builtin(key)
        if builtin is not None:
            builtin.check_removable()
        return self.documents.delete(self.own_model_id(key), expected_version)

    def restore(self, model_id: UUID, version: int, expected_version: ExpectedVersions | None = None) -> Written:
        """Bring back version ``version`` as the group saw it: for a built-in, the group's setting then."""
        found = self.store.find(model_id)
        if isinstance(found, ModelConfig) and found.builtin and not found.deleted:
            group_id = current_actor().group_id
            return restore_setting(self.store, found, model_setting_id(group_id, model_id), version, expected_version)
        past = self.documents.past(self.documents.load_any(model_id), version)
        self._refuse_builtin_key(past.fields.get("key"))
        return self.documents.restore(model_id, version, expected_version)

    def id_for_key(self, key: str) -> UUID:
        """The id of the model a key names for the caller's group: a built-in, the group's model holding
        the key, or the one that held it last (a deleted model keeps its history)."""
        builtin = self.builtin(key)
        if builtin is not None:
            return builtin.id
        index = self.store.find(NameIndex.id_for(ModelConfig.KIND, current_actor().group_id, key))
        if isinstance(index, NameIndex):
            if index.holder is not None:
                return index.holder
            holders = [e.holder for e in self.store.history(index.id) if getattr(e, "holder", None) is not None]
            if holders:
                return UUID(str(holders[-1]))
        raise NotFoundError(f"Model with key {key} not found")

    def builtin(self, key: str) -> ModelConfig | None:
        found = self.store.find(builtin_model_id(key))
        if isinstance(found, ModelConfig) and found.builtin and not found.deleted:
            return found
        return None

    def own_model_id(self, key: str) -> UUID:
        """The id of the caller's group's model with this key, or NotFoundError."""
        index = self.store.find(NameIndex.id_for(ModelConfig.KIND, current_actor().group_id, key))
        if not isinstance(index, NameIndex) or index.holder is None:
            raise NotFoundError(f"Model with key {key} not found")
        return index.holder

    def _override(self, model: ModelConfig, decide: Decide, expected_version: ExpectedVersions | None) -> Written:
        group_id = current_actor().group_id
        return override_builtin(
            self.store, model, model_setting_id(group_id, model.id),
            lambda changes: ModelSetting.for_model(group_id, model.id, changes),
            effective_model, decide, expected_version,
        )

    def _refuse_builtin_key(self, key: Any) -> None:
        if isinstance(key, str) and key.strip() and self.builtin(key) is not None:
            raise ConflictError(
                f"A built-in model with key '{key.strip()}' already exists",
                errors=[("key", "the key of a built-in model")],
            )
