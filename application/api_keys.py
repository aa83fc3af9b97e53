"""Commands on API keys, and decryption of a group's credentials for model calls.

Plaintext enters here and is encrypted at once, bound to (group, key id) by
the cipher's associated data, so a ciphertext copied to another group or key
fails to decrypt. Only the ciphertext and a short hint reach the aggregate.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from application.documents import DocumentService, ExpectedVersions, Written
from application.ports import SecretBox
from application.store import KasalStore
from domain.api_key import SECRET_FIELD, ApiKey
from domain.context import current_actor
from domain.errors import InvalidError


class ApiKeyDecryptionError(RuntimeError):
    """A stored key could not be decrypted (wrong or lost encryption key, or tampering).

    Raised instead of returning an empty credential, which would otherwise
    surface much later as a confusing "authentication failed" from a provider.
    """

    def __init__(self, name: str, key_id: UUID, group_id: str) -> None:
        super().__init__(
            f"API key '{name}' ({key_id}) of group '{group_id}' could not be decrypted: "
            "the encryption key (KASAL_SECRET_KEY or the local key file) differs from the one "
            "it was stored with, or the stored value was altered. Set the key again."
        )
        self.name = name
        self.key_id = key_id


def associated_data(group_id: str, key_id: UUID) -> bytes:
    return f"kasal-api-key\x00{group_id}\x00{key_id}".encode()


class ApiKeyService:
    """Create, change and delete API keys; decrypt a group's keys for executions."""

    def __init__(self, store: KasalStore, box: SecretBox) -> None:
        self.store = store
        self.box = box
        self.documents = DocumentService(store, ApiKey, unique_names=True)

    def create(self, fields: dict[str, Any]) -> Written:
        """``fields`` has the plaintext under ``key`` (or Kasal's ``value``)."""
        secret = self._plaintext(fields)
        if secret is None:
            raise InvalidError("An API key needs a 'key' (or 'value')", errors=[("key", "Field required")])
        key_id = uuid.uuid4()
        return self.documents.create(self._sealed(fields, secret, key_id), id=key_id)

    def change(
        self, key_id: UUID, changes: dict[str, Any], expected_version: ExpectedVersions | None = None
    ) -> Written:
        """Change the fields sent; a new ``key``/``value`` is encrypted afresh (new nonce)."""
        return self.documents.change(key_id, self._sealed(changes, self._plaintext(changes), key_id), expected_version)

    def delete(self, key_id: UUID, expected_version: ExpectedVersions | None = None) -> Written:
        return self.documents.delete(key_id, expected_version)

    def restore(self, key_id: UUID, version: int, expected_version: ExpectedVersions | None = None) -> Written:
        """Bring back an earlier version, its encrypted key included (bound to this key's id, it still opens)."""
        return self.documents.restore(key_id, version, expected_version)

    def credentials(self, group_id: str, key_ids: Iterable[UUID]) -> dict[str, str]:
        """Plaintexts of the group's keys by key name and by service.

        Later keys in ``key_ids`` win a shared service; a key's own name always
        wins over another key's service. Keys without a value are left out.
        """
        by_name: dict[str, str] = {}
        by_service: dict[str, str] = {}
        for key_id in key_ids:
            key = self.store.find(key_id)
            if not isinstance(key, ApiKey) or key.group_id != group_id or key.deleted:
                continue
            token = key.ciphertext
            if token is None:
                continue
            try:
                plaintext = self.box.decrypt(token, associated_data=associated_data(group_id, key.id))
            except Exception as error:  # any failure of the box: name the key, never return ""
                raise ApiKeyDecryptionError(key.name, key.id, group_id) from error
            by_name[key.name] = plaintext
            if key.service:
                by_service[key.service] = plaintext
        return {**by_service, **by_name}

    @staticmethod
    def _plaintext(fields: dict[str, Any]) -> str | None:
        key, value = fields.get("key"), fields.get("value")
        if key is not None and value is not None and key != value:
            raise InvalidError(
                "Send the secret as 'key' or 'value', not two different ones",
                errors=[("key", "differs from 'value'")],
            )
        secret = key if key is not None else value
        # Pasted keys often carry a trailing newline; no provider key has meaningful white space.
        return None if secret is None else str(secret).strip()

    def _sealed(self, fields: dict[str, Any], secret: str | None, key_id: UUID) -> dict[str, Any]:
        """The fields with the plaintext replaced by its ciphertext and hint.

        ``None`` leaves the stored secret alone; ``""`` clears it ("Not set").
        """
        sealed = {k: v for k, v in fields.items() if k not in ("key", "value")}
        if secret is None:
            return sealed
        if secret:
            group_id = current_actor().group_id
            sealed[SECRET_FIELD] = self.box.encrypt(secret, associated_data=associated_data(group_id, key_id))
            sealed["hint"] = self.box.hint(secret)
        else:
            sealed[SECRET_FIELD] = None
            sealed["hint"] = ""
        return sealed
