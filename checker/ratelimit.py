"""Politeness: a global concurrency limit, and each host's pace within its ceilings.

One :class:`Limiter` per run. :meth:`Limiter.slot` is the only door to the network
for the probe engine: it waits for the host's turn (its learned window and interval,
and any pause; see checker.pace), then takes a global slot. :meth:`Limiter.observe`
tells the host's pace how an answer went; a stress sign pauses every later request to
that host, not only the retry. The configured per-host limit and interval are
ceilings never passed, whatever the pace learns.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import AsyncIterator, Awaitable, Callable, Mapping

from .models import HostPolicy
from .pace import HostPace, LearnedPace, PaceLimits, Signal
from .settings import CheckSettings

__all__ = ["HostLimits", "HostState", "Limiter", "limits_for", "pace_limits"]

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class HostLimits:
    """The effective limits for one host: concurrency, minimum interval, extra headers."""

    per_host: int
    interval: float
    headers: tuple[tuple[str, str], ...] = ()


def limits_for(check: CheckSettings, policy: HostPolicy | None) -> HostLimits:
    """Settings, overridden by a site rule's HostPolicy where it says something."""
    if policy is None:
        return HostLimits(check.per_host, check.per_host_interval)
    per_host = policy.per_host if policy.per_host is not None else check.per_host
    interval = policy.interval if policy.interval is not None else check.per_host_interval
    return HostLimits(max(1, per_host), max(0.0, interval), policy.headers)


def pace_limits(check: CheckSettings, policy: HostPolicy | None) -> PaceLimits:
    """The ceilings (settings, or the rule's) and the rule's starting pace, for HostPace."""
    limits = limits_for(check, policy)
    start_c = getattr(policy, "start_per_host", None) if policy is not None else None
    start_i = getattr(policy, "start_interval", None) if policy is not None else None
    return PaceLimits(ceiling=limits.per_host, min_interval=limits.interval,
                      start_concurrency=start_c, start_interval=start_i,
                      pause_max=check.host_pause_max)


class HostState:
    """One host in a run: its limits, its pace, how many requests are in flight, and the
    requests waiting for their turn, in order.

    Only the first waiter looks at the pace; the others sleep until it has started. (A
    condition woken for all on every answer cost each start a wake-up of every waiting
    request of its host: up to the per-host limit.)
    """

    def __init__(self, limits: HostLimits, pace: HostPace) -> None:
        self.limits = limits
        self.pace = pace
        self.in_flight = 0
        self.waiting: deque[asyncio.Future[None]] = deque()
        self._wake: asyncio.Future[None] | None = None

    def poke(self) -> None:
        """The pace or the requests in flight changed: the first waiter looks again."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def changed(self) -> None:
        """Until :meth:`poke` (for the first waiter, whose window is full)."""
        self._wake = asyncio.get_running_loop().create_future()
        try:
            await self._wake
        finally:
            self._wake = None


class Limiter:
    """Global limit and per-host pace of one run; hosts are set up lazily on first use."""

    def __init__(self, check: CheckSettings, *,
                 host_policy: Callable[[str], HostPolicy | None] | None = None,
                 learned: Mapping[str, LearnedPace] | None = None,
                 sleep: Sleep = asyncio.sleep, clock: Clock = time.monotonic) -> None:
        self._check = check
        self._policy = host_policy
        self._learned = learned or {}
        self._sleep = sleep
        self._clock = clock
        self._global = asyncio.Semaphore(check.concurrency)
        self.hosts: dict[str, HostState] = {}

    def limits(self, host: str) -> HostLimits:
        """The effective ceilings of ``host`` (cached for the run)."""
        return self.host(host).limits

    def defer(self, host: str, seconds: float) -> None:
        """Delay every later request to ``host`` by at least ``seconds``."""
        pace = self.host(host).pace
        pace.paused_until = max(pace.paused_until, self._clock() + seconds)

    async def observe(self, host: str, signal: Signal, latency: float, *,
                      retry_after: float | None = None, reason: str | None = None) -> float:
        """Tell the host's pace how an answer went; returns the host's pause in seconds."""
        state = self.host(host)
        pause = state.pace.observe(signal, latency, retry_after=retry_after, reason=reason)
        state.poke()   # the window may have grown
        return pause

    async def spurious(self, host: str, cut: int) -> bool:
        """Undo the host's cut number ``cut`` (checker.pace.HostPace.spurious); True if it was."""
        state = self.host(host)
        undone = state.pace.spurious(cut)
        if undone:
            state.poke()   # the window may be wider again
        return undone

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[HostLimits]:
        """Wait for the host's turn (window, interval, pause), then hold a global slot."""
        state = self.host(host)
        await self._turn(state)
        try:
            # The host's turn comes before a global slot, so that a slow host's pauses
            # never hold up other hosts.
            async with self._global:
                yield state.limits
        finally:
            state.in_flight -= 1
            state.poke()

    async def _turn(self, state: HostState) -> None:
        """Wait in the host's line; at its head, for the pace's window and interval."""
        me: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiting.append(me)
        try:
            if state.waiting[0] is not me:
                await me                   # the one before has started (or left)
            while True:
                delay = state.pace.wait(state.in_flight)
                if delay is None:
                    await state.changed()
                elif delay > 0:
                    await self._sleep(delay)
                else:
                    state.pace.started(state.in_flight)
                    state.in_flight += 1
                    return
        finally:
            # Leave the line (also when cancelled); at its head, hand the turn on.
            head = state.waiting[0] is me
            state.waiting.remove(me)
            if head and state.waiting and not state.waiting[0].done():
                state.waiting[0].set_result(None)

    def learned(self, host: str, *, wall_clock: float) -> LearnedPace:
        """The pace ``host`` showed in this run, to store as its next start."""
        return self.host(host).pace.learned(host, wall_clock=wall_clock)

    def host(self, host: str) -> HostState:
        """The state of ``host`` in this run (created on first use)."""
        state = self.hosts.get(host)
        if state is None:
            policy = self._policy(host) if self._policy else None
            limits = self._limits_of(host, policy)
            pace = HostPace(replace(pace_limits(self._check, policy), ceiling=limits.per_host),
                            clock=self._clock, learned=self._learned.get(host))
            state = self.hosts[host] = HostState(limits, pace)
        return state

    def _limits_of(self, host: str, policy: HostPolicy | None) -> HostLimits:
        """The host's ceilings in this limiter (a cluster slot narrows them to one request)."""
        return limits_for(self._check, policy)
