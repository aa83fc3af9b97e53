"""Rendered list pages, kept until the read models move: no TTL, never stale.

Read models change only when the projector applies events, and the
projector's position says how far it has got. A page rendered while the
position was ``P`` holds everything up to ``P`` (the position moves only
after the rows it covers are committed, so a page may even hold a little
more). It is therefore the right answer for as long as the position is still
``P``, in whichever process, and the wrong one as soon as it moves: an entry
is served only when its position equals the projector's now.

The position is the whole log's, not a group's: any write anywhere renews
every page. That keeps the rule obviously correct; a busy service simply
hits less often.

"The projector's position now" must be the read models' position, not merely
what this process has heard of it: with several processes, a write answered
by one of them must be in the next page any of them serves. The position is
therefore asked of ``position`` for every page, and it may answer None (no
position can be vouched for just now, e.g. while a page is being committed):
the page is then rendered and not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from threading import Lock

MAX_PAGES = 512


class PageCache:
    """An LRU of ``key → (position, bytes)``, ``MAX_PAGES`` entries at most."""

    def __init__(self, position: Callable[[], Awaitable[int | None]], max_pages: int = MAX_PAGES) -> None:
        self.position = position
        self.max_pages = max_pages
        self._pages: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()
        self._lock = Lock()
        self.hits = 0
        self.misses = 0

    async def page(self, key: Hashable, render: Callable[[], Awaitable[bytes]]) -> bytes:
        """The page ``key`` as of the projector's position now: kept, or rendered and kept."""
        position = await self.position()  # read before rendering: what is rendered holds at least this
        if position is None:
            self.misses += 1
            return await render()
        with self._lock:
            found = self._pages.get(key)
            if found is not None and found[0] == position:
                self._pages.move_to_end(key)
                self.hits += 1
                return found[1]
            self.misses += 1
        body = await render()
        with self._lock:
            kept = self._pages.get(key)
            if kept is not None and kept[0] > position:  # a later page got there first: keep it
                return body
            self._pages[key] = (position, body)
            self._pages.move_to_end(key)
            while len(self._pages) > self.max_pages:
                self._pages.popitem(last=False)
        return body
