"""How deeply a JSON body nests is measured without decoding it."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from interface.http.input_rules import MAX_JSON_DEPTH, json_depth, too_deep

# Strings full of the characters a scan could mistake for structure.
tricky_text = st.text(alphabet=st.sampled_from('[]{}"\\,:ab \n\u00e9'), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def nested(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


@given(json_values)
def test_the_measured_depth_is_the_nesting_of_the_decoded_value(value: Any) -> None:
    assert json_depth(msgspec.json.encode(value)) == depth(value)


@given(st.integers(min_value=0, max_value=3 * MAX_JSON_DEPTH))
def test_a_body_is_too_deep_exactly_when_it_nests_past_the_limit(levels: int) -> None:
    assert too_deep(nested(levels)) == (levels > MAX_JSON_DEPTH)


def test_brackets_inside_strings_do_not_count() -> None:
    body = msgspec.json.encode({"text": "[" * (10 * MAX_JSON_DEPTH), "escaped": '\\"' + "{" * 100})
    assert json_depth(body) == 1 and not too_deep(body)


def test_thousands_of_levels_are_measured_without_recursion() -> None:
    assert json_depth(b"[" * 200_000 + b"]" * 200_000) == 200_000
