"""What an audit record shows of an event: every field, but no secret, at any depth."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from projections.audit import BOOKKEEPING, KINDS, audited, kind_of, record_data

SENTINEL = "SECRET-VALUE-"
plain_keys = st.text(alphabet="abcdefghilmnoqruvwxyz_", min_size=1, max_size=8).filter(
    lambda k: not any(word in k for word in ("key", "token", "secret", "password")))
secret_keys = st.sampled_from(["api_key", "apiKey", "GITHUB_TOKEN", "db_password", "client_secret", "keys",
                               "tokenValue", "encrypted_value", "encrypted_inputs", "token_hash"])

plain_values = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63), st.floats(allow_nan=False),
                         st.text(alphabet="abc é🙂", max_size=5))


@st.composite
def secret(draw: st.DrawFn) -> Any:
    """A secret as it may be nested: text, or text inside a list or an object."""
    text = SENTINEL + draw(st.text(alphabet="0123456789", min_size=1, max_size=6))
    return draw(st.sampled_from([text, [text], {"inner": text}]))


documents = st.recursive(
    plain_values,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(plain_keys, children, max_size=3),
        st.dictionaries(secret_keys, secret(), min_size=1, max_size=2).flatmap(
            lambda secrets: st.dictionaries(plain_keys, children, max_size=2).map(lambda d: {**d, **secrets})),
    ),
    max_leaves=12,
)


SECRET_KEYS = ("api_key", "apiKey", "GITHUB_TOKEN", "db_password", "client_secret", "keys", "tokenValue",
               "encrypted_value", "encrypted_inputs", "token_hash")


def without_secrets(value: Any) -> tuple[Any, list[Any]]:
    """``value`` with every entry under a secret name removed, and the removed values."""
    removed: list[Any] = []

    def strip(item: Any) -> Any:
        if isinstance(item, dict):
            removed.extend(v for k, v in item.items() if k in SECRET_KEYS)
            return {k: strip(v) for k, v in item.items() if k not in SECRET_KEYS}
        if isinstance(item, list):
            return [strip(v) for v in item]
        return item

    return strip(value), removed


@given(fields=st.dictionaries(plain_keys, documents, max_size=4), kind=st.sampled_from(sorted(set(KINDS.values()))))
def test_no_secret_survives_and_everything_else_is_kept(fields: dict[str, Any], kind: str) -> None:
    shown = record_data(kind, fields)
    assert SENTINEL not in json.dumps(shown)
    kept, hidden = without_secrets(shown)
    assert kept == without_secrets(fields)[0]
    assert set(map(json.dumps, hidden)) <= {'"[REDACTED]"'}
    assert record_data(kind, shown) == shown


def test_numbers_flags_and_absent_values_under_secret_names_stay() -> None:
    usage = {"usage": {"prompt_tokens": 12, "total_tokens": 40, "cost": 0.5}, "max_output_tokens": 4096,
             "use_token": True, "api_key": None, "hint": "", SENTINEL: 1}
    assert record_data("execution", usage) == usage


def test_a_models_key_names_it_but_a_key_inside_its_config_is_hidden() -> None:
    fields = {"fields": {"key": "gpt-4o", "api_key_name": "OPENAI_API_KEY", "extra": {"key": "sk-1234567890"}}}
    assert record_data("model", fields) == {
        "fields": {"key": "gpt-4o", "api_key_name": "OPENAI_API_KEY", "extra": {"key": "[REDACTED]"}}}
    assert record_data("tool", fields)["fields"]["key"] == "[REDACTED]"


def test_an_api_keys_hint_is_hidden_but_a_tokens_hint_is_not() -> None:
    assert record_data("api_key", {"fields": {"hint": "…7890", "name": "OPENAI_API_KEY"}}) == {
        "fields": {"hint": "[REDACTED]", "name": "OPENAI_API_KEY"}}
    assert record_data("token", {"hint": "kasal_abcd"}) == {"hint": "kasal_abcd"}


def test_kinds_and_bookkeeping() -> None:
    assert [kind_of(t) for t in ("tool_setting.updated.v1", "model_setting.created.v1", "access_token.revoked.v1",
                                 "agent.restored.v1", "something_new.created.v1")] == [
        "tool", "model", "token", "agent", "something_new"]
    assert not any(audited(prefix + "created.v1") for prefix in BOOKKEEPING)
    assert audited("crew.created.v1") and audited("agent.restored.v1")
