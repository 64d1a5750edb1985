"""The commands' runner: uvloop, whose connects to an IP address stay off its thread pool, and
the collector's settings for a run."""

from __future__ import annotations

import asyncio
import gc
import socket
from pathlib import Path

import pytest

from checker.runtime import GC_THRESHOLD, new_event_loop, runner

uvloop = pytest.importorskip("uvloop")


def run(coro_fn):
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro_fn())


def pool_switches() -> int:
    """Context switches of libuv's thread-pool threads in this process, so far (Linux)."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().strip() != "libuv-worker":
                continue
            status = (task / "status").read_text()
        except OSError:            # a thread that ended meanwhile
            continue
        total += sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line)
    return total


def test_the_loop_is_uvloop():
    loop = new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_a_numeric_lookup_without_a_type_is_answered_as_a_stream_socket():
    async def main():
        loop = asyncio.get_running_loop()
        v4 = await loop.getaddrinfo("127.0.0.1", 443, family=socket.AF_INET)
        v6 = await loop.getaddrinfo("::1", 80, family=socket.AF_INET6)
        # With a type (aiohttp's resolver gives one) nothing changes.
        typed = await loop.getaddrinfo("127.0.0.1", 443, family=socket.AF_INET, type=socket.SOCK_DGRAM)
        # A name, or a call without a family, is looked up as before (every socket type).
        named = await loop.getaddrinfo("localhost", 80, family=socket.AF_INET)
        untyped = await loop.getaddrinfo("127.0.0.1", 80)
        return v4, v6, typed, named, untyped
    v4, v6, typed, named, untyped = run(main)
    assert v4 == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 443))]
    assert [(f, t, a[:2]) for f, t, _, _, a in v6] == [(socket.AF_INET6, socket.SOCK_STREAM, ("::1", 80))]
    assert typed[0][1] == socket.SOCK_DGRAM
    assert {t for _, t, *_ in named} >= {socket.SOCK_STREAM, socket.SOCK_DGRAM}
    assert {t for _, t, *_ in untyped} >= {socket.SOCK_STREAM, socket.SOCK_DGRAM}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc (Linux)")
def test_connects_to_an_address_do_not_go_through_the_thread_pool():
    async def main():
        loop = asyncio.get_running_loop()
        accepted = []
        server = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await asyncio.sleep(0.2)              # start_server's own lookup has finished
        before = pool_switches()
        for _ in range(50):
            with socket.socket() as sock:
                sock.setblocking(False)
                await loop.sock_connect(sock, ("127.0.0.1", port))
                assert sock.getpeername() == ("127.0.0.1", port)
        after = pool_switches()
        server.close()
        for writer in accepted:
            writer.close()
        return after - before
    # uvloop's own Loop: about two thread-pool switches per connect (a lookup of the address).
    switches = run(main)
    assert switches <= 5, f"{switches} thread-pool switches for 50 connects"


def test_the_runner_sets_the_collector_for_the_run_and_puts_it_back():
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with runner() as run:
        seen = run.run(asyncio.sleep(0, (gc.get_threshold(), gc.get_freeze_count())))
        assert isinstance(run.get_loop(), uvloop.Loop)
    assert seen[0] == GC_THRESHOLD and seen[1] > frozen
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
