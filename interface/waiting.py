"""Waiting for an ``asyncio.Event`` with a deadline, in a way a cancel cannot slip past."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Whether ``event`` is set within ``timeout`` seconds (a timeout of 0 or less yields one loop turn).

    Not ``asyncio.wait_for``: on Python 3.11, a cancel that lands after the
    awaited event fired but before the waiting task resumed is swallowed
    (wait_for returns normally). A flusher cancelled that way kept looping,
    and its run, waiting for it, never recorded its outcome; a scheduler loop
    told to stop went on ticking.
    """
    if timeout <= 0:
        await asyncio.sleep(0)
        return event.is_set()
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
