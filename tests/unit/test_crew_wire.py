"""What a crew child sends is what the runner reads: the domain's observations, on the pipe's codec."""

from __future__ import annotations

import typing

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from domain import execution_progress as ep
from domain.model_config import ModelCall
from interface.crew_runtime.messages import CrewJob, decode_job, decode_observation, encode

numbers = st.floats(allow_nan=False)  # NaN equals nothing, so no round trip could show it
texts = st.text()
integers = st.integers(-(2**63), 2**63 - 1)  # msgpack's range
text_or_ref = st.one_of(texts, st.builds(ep.TextRef, preview=texts, size=integers,
                                         sha256=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64)))
BY_TYPE: dict[typing.Any, st.SearchStrategy[typing.Any]] = {
    str: texts, float: numbers, int: integers, bool: st.booleans(), str | None: st.none() | texts,
    float | None: st.none() | numbers, ep.Text: text_or_ref, ep.Text | None: st.none() | text_or_ref,
    int | None: st.none() | integers, list[str]: st.lists(texts),
    dict[str, typing.Any]: st.dictionaries(texts, st.none() | integers | numbers | texts | st.lists(texts)),
}


def every_field(kind: type[msgspec.Struct]) -> st.SearchStrategy[ep.Observation]:
    """``kind`` with each of its fields drawn, optional ones included."""
    hints = typing.get_type_hints(kind)
    return st.builds(kind, **{field.name: BY_TYPE[hints[field.name]] for field in msgspec.structs.fields(kind)})


observations = st.one_of([every_field(kind) for kind in typing.get_args(ep.Observation)])


@given(observations)
def test_every_observation_crosses_the_pipe_unchanged(observation: ep.Observation) -> None:
    assert decode_observation(encode(observation)) == observation


@given(st.builds(CrewJob, execution_id=texts, agents=st.dictionaries(texts, st.dictionaries(texts, texts)),
                 tasks=st.dictionaries(texts, st.dictionaries(texts, texts)),
                 inputs=st.dictionaries(texts, integers | texts), credentials=st.dictionaries(texts, texts),
                 timeout_s=st.none() | numbers.filter(lambda v: v >= 0),
                 models=st.dictionaries(texts, st.builds(
                     ModelCall, model=texts, temperature=st.none() | numbers, max_tokens=st.none() | integers,
                     parameters=st.dictionaries(texts, integers | texts), api_base=st.none() | texts,
                     extra_headers=st.dictionaries(texts, texts), api_key_name=st.none() | texts))))
def test_a_job_reaches_the_child_unchanged(job: CrewJob) -> None:
    assert decode_job(encode(job)) == job
