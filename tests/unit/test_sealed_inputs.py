"""Sealed secret inputs: they open only for the run, the group and the key they were sealed for,
whatever the inputs hold (unicode, huge numbers, nesting), and never carry the secret in clear."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.sealed_inputs import MemorySecretInputs, SealedInputs, SecretInputsUnavailableError
from interface.secret_box import SecretBox


@pytest.fixture(scope="module")
def boxes() -> tuple[SecretBox, SecretBox]:
    return SecretBox(os.urandom(32)), SecretBox(os.urandom(32))


class DictRows:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, tuple[str, str]] = {}

    def put(self, execution_id: uuid.UUID, group_id: str, token: str) -> None:
        self.rows.setdefault(execution_id, (group_id, token))

    def get(self, execution_id: uuid.UUID) -> tuple[str, str] | None:
        return self.rows.get(execution_id)

    def delete(self, execution_id: uuid.UUID) -> None:
        self.rows.pop(execution_id, None)

    def sweep(self) -> int:
        return 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(inputs=st.dictionaries(st.text(min_size=1, max_size=12), JSON, max_size=5),
       secret=st.text(min_size=8).filter(lambda s: s.strip()), group=st.text(min_size=1, max_size=20))
def test_sealed_inputs_open_only_for_their_run_group_and_key(
    boxes: tuple[SecretBox, SecretBox], inputs: dict[str, Any], secret: str, group: str,
) -> None:
    rows, execution_id, elsewhere = DictRows(), uuid.uuid4(), uuid.uuid4()
    sealed = SealedInputs(boxes[0], rows)
    sent = {**inputs, "api_key": secret}
    sealed.keep(group, execution_id, sent)
    assert sealed.open(group, execution_id) == sent
    token = rows.rows[execution_id][1]
    assert secret not in token and secret.encode() not in token.encode()
    rows.rows[elsewhere] = (group, token)  # copied to another run
    with pytest.raises(SecretInputsUnavailableError):
        sealed.open(group, elsewhere)
    with pytest.raises(SecretInputsUnavailableError):
        sealed.open(group + "-other", execution_id)
    with pytest.raises(SecretInputsUnavailableError, match="KASAL_SECRET_KEY"):
        SealedInputs(boxes[1], rows).open(group, execution_id)
    sealed.discard(execution_id)
    with pytest.raises(SecretInputsUnavailableError):
        sealed.open(group, execution_id)


def test_the_in_memory_stand_in_keeps_the_first_inputs_per_run_and_forgets_them_on_discard() -> None:
    kept, execution_id = MemorySecretInputs(), uuid.uuid4()
    kept.keep("g1", execution_id, {"api_key": "first-value-123"})
    kept.keep("g1", execution_id, {"api_key": "second-value-456"})  # a scheduler that lost the race
    assert kept.open("g1", execution_id) == {"api_key": "first-value-123"}
    with pytest.raises(SecretInputsUnavailableError):
        kept.open("g2", execution_id)
    kept.discard(execution_id)
    with pytest.raises(SecretInputsUnavailableError):
        kept.open("g1", execution_id)
