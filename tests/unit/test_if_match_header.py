"""Reading ``If-Match``: which versions a header allows, and that tags which are no version allow none."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.documents import ExpectedVersions
from domain.errors import PreconditionFailedError
from interface.http.common import expected_version

VERSIONS = st.integers(min_value=1, max_value=10**6)
# Tags no ETag of ours can equal: ours are "<version>" with version >= 1, written without leading zeros.
NOT_A_VERSION = st.sampled_from(['"abc"', 'W/"x"', "1.5", '""', "", '"0"', '"007"', '"1.0"', 'W/""', "-1",
                                 '"3', '3"', "W/3", '" 3"', "*x", '"\u0663"', "\u0663", '"v3"']) | st.text(
    alphabet=st.characters(blacklist_categories=["Nd", "Cs"], blacklist_characters=',"*'), max_size=8)


def ours(version: int) -> st.SearchStrategy[str]:
    """The ways a client may send one of our ETags: ``"3"``, weak ``W/"3"``, bare ``3``."""
    return st.sampled_from([f'"{version}"', f'W/"{version}"', str(version)])


@st.composite
def headers(draw: st.DrawFn) -> tuple[str, set[int]]:
    """A comma-separated If-Match of our tags and others, and the versions it names."""
    named = draw(st.lists(VERSIONS, max_size=4))
    tags = [draw(ours(v)) for v in named] + draw(st.lists(NOT_A_VERSION, max_size=4))
    order = draw(st.permutations(tags))
    spaces = draw(st.sampled_from(["", " ", "  "]))
    return f",{spaces}".join(order), set(named)


@given(headers())
def test_a_header_allows_exactly_the_versions_its_tags_name(header: tuple[str, set[int]]) -> None:
    value, named = header
    assert expected_version(value) == ExpectedVersions(frozenset(named))


@given(headers(), VERSIONS)
def test_a_write_passes_only_when_the_current_version_is_named(header: tuple[str, set[int]], current: int) -> None:
    value, named = header
    precondition = expected_version(value)
    assert precondition is not None
    if current in named:
        precondition.check("agent", "a1", current)
    else:
        with pytest.raises(PreconditionFailedError):
            precondition.check("agent", "a1", current)


@pytest.mark.parametrize("value", ['"abc"', 'W/"x"', "1.5", '""', ""])
def test_a_tag_that_is_no_version_allows_none(value: str) -> None:
    assert expected_version(value) == ExpectedVersions(frozenset())


@pytest.mark.parametrize("value", [None, "*", " * "])
def test_no_header_or_a_star_sets_no_version(value: str | None) -> None:
    assert expected_version(value) is None
