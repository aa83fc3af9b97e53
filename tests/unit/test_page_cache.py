"""Rendered pages are served only while the read models stand where they stood when rendered."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interface.page_cache import PageCache

pytestmark = pytest.mark.anyio


class Log:
    """A read model that changes exactly when its position moves."""

    def __init__(self) -> None:
        self.position = 0
        self.renders = 0

    async def now(self) -> int:
        return self.position

    async def render(self) -> bytes:
        self.renders += 1
        return f"page at {self.position}".encode()


@given(st.lists(st.one_of(st.just("read"), st.just("write")), max_size=40))
def test_a_page_is_never_older_than_the_read_models(steps) -> None:
    import anyio

    async def scenario() -> None:
        log = Log()
        cache = PageCache(log.now)
        for step in steps:
            if step == "write":
                log.position += 1
                continue
            renders = log.renders
            body = await cache.page("agents", log.render)
            assert body == f"page at {log.position}".encode()
            assert log.renders in (renders, renders + 1)

    anyio.run(scenario)


async def test_a_page_is_rendered_once_per_position_and_key() -> None:
    log = Log()
    cache = PageCache(log.now)
    for _ in range(5):
        await cache.page(("agents", "group-a"), log.render)
        await cache.page(("agents", "group-b"), log.render)
    assert (log.renders, cache.hits, cache.misses) == (2, 8, 2)


async def test_the_oldest_pages_go_first_and_the_number_is_bounded() -> None:
    log = Log()
    cache = PageCache(log.now, max_pages=3)
    for key in ("a", "b", "c", "a", "d"):  # "a" used again: "b" is the oldest when "d" comes
        await cache.page(key, log.render)
    renders = log.renders
    await cache.page("a", log.render)
    await cache.page("b", log.render)
    assert log.renders == renders + 1


async def test_a_slow_render_does_not_replace_a_page_of_a_later_position() -> None:
    log = Log()
    cache = PageCache(log.now)

    async def slow() -> bytes:
        body = await log.render()
        log.position = 2  # the log moved, and a newer page was kept meanwhile
        await cache.page("agents", log.render)
        return body

    await cache.page("agents", slow)
    renders = log.renders
    assert await cache.page("agents", log.render) == b"page at 2"
    assert log.renders == renders


async def test_while_no_position_can_be_vouched_for_pages_are_rendered_and_not_kept() -> None:
    """A page being committed (or a position not yet known) must not be answered from, nor kept."""
    log = Log()
    moving = True

    async def now() -> int | None:
        return None if moving else log.position

    cache = PageCache(now)
    await cache.page("agents", log.render)
    await cache.page("agents", log.render)
    assert log.renders == 2
    moving = False
    await cache.page("agents", log.render)
    await cache.page("agents", log.render)
    assert log.renders == 3
