"""Stopping the archive queue on request (the daemon's SIGTERM): no new request of any kind.

The runner is given an ``asyncio.Event``. Every wait of the queue goes through one
``sleep`` (lane tokens, 429 pauses, SPN2 polling, backoff), made stoppable below, and
every request is preceded by a ``checkpoint()`` (the Wayback adapter, the page fetcher of
the local archive): both raise ArchiveStopped once the event is set, so a request in
flight finishes but none starts. The job keeps its state in the queue (a submitted save
keeps its SPN2 job id) and the next run picks it up.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

__all__ = ["ArchiveStopped", "stoppable_sleep", "checkpoint", "gated_fetcher", "never_stopped"]

Sleep = Callable[[float], Awaitable[None]]


class ArchiveStopped(Exception):
    """A stop was requested: the queue run ends before its next request or wait."""


def stoppable_sleep(sleep: Sleep, stop: asyncio.Event) -> Sleep:
    """``sleep`` that raises ArchiveStopped when ``stop`` is set, before or while waiting."""
    async def wait(seconds: float) -> None:
        if stop.is_set():
            raise ArchiveStopped()
        if seconds <= 0:
            await sleep(seconds)
            return
        napping = asyncio.ensure_future(sleep(seconds))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({napping, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (napping, stopping):
                task.cancel()
            await asyncio.gather(napping, stopping, return_exceptions=True)
        if stop.is_set():
            raise ArchiveStopped()
    return wait


def never_stopped() -> None:
    """The checkpoint of a run that cannot be stopped (nothing to check)."""


def checkpoint(stop: asyncio.Event | None) -> Callable[[], None]:
    """A function that raises ArchiveStopped once ``stop`` is set (a no-op without one)."""
    if stop is None:
        return never_stopped

    def check() -> None:
        if stop.is_set():
            raise ArchiveStopped()
    return check


def gated_fetcher(fetch: Callable[..., Awaitable[Any]], check: Callable[[], None]) -> Callable[..., Awaitable[Any]]:
    """A page fetcher that passes ``check`` before each request."""
    async def gated(*args: Any, **kwargs: Any) -> Any:
        check()
        return await fetch(*args, **kwargs)
    return gated
