"""Politeness: a global concurrency limit, per-host limits and a per-host minimum interval.

One :class:`Limiter` per run. :meth:`Limiter.slot` is the only door to the network
for the probe engine: it takes a per-host slot, then a global slot, then waits for
the host's next allowed start time. A Retry-After seen on one URL of a host delays
every later request to that host (:meth:`Limiter.defer`), not only the retry.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable

from .models import HostPolicy
from .settings import CheckSettings

__all__ = ["HostLimits", "HostGate", "Limiter", "limits_for"]

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


class HostGate:
    """Spaces request starts on one host at least ``interval`` seconds apart."""

    def __init__(self, interval: float, *, sleep: Sleep, clock: Clock) -> None:
        self.interval = interval
        self._next = float("-inf")
        self._sleep = sleep
        self._clock = clock

    def reserve(self) -> float:
        """Book the next start time; return how long the caller must wait for it."""
        now = self._clock()
        start = max(now, self._next)
        self._next = start + self.interval
        return start - now

    def defer(self, seconds: float) -> None:
        """Push the next start at least ``seconds`` from now (Retry-After, RFC 9110 §10.2.3)."""
        self._next = max(self._next, self._clock() + seconds)

    async def wait(self) -> None:
        """Wait for this caller's turn."""
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)


class Limiter:
    """Global and per-host limits of one run; hosts are set up lazily on first use."""

    def __init__(self, check: CheckSettings, *,
                 host_policy: Callable[[str], HostPolicy | None] | None = None,
                 sleep: Sleep = asyncio.sleep, clock: Clock = time.monotonic) -> None:
        self._check = check
        self._policy = host_policy
        self._sleep = sleep
        self._clock = clock
        self._global = asyncio.Semaphore(check.concurrency)
        self._hosts: dict[str, tuple[HostLimits, asyncio.Semaphore, HostGate]] = {}

    def limits(self, host: str) -> HostLimits:
        """The effective limits of ``host`` (cached for the run)."""
        return self._host(host)[0]

    def defer(self, host: str, seconds: float) -> None:
        """Delay every later request to ``host`` by at least ``seconds``."""
        self._host(host)[2].defer(seconds)

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[HostLimits]:
        """Hold a per-host slot, then (after the host's minimum interval) a global slot."""
        limits, sem, gate = self._host(host)
        async with sem:
            # Wait for the interval before taking a global slot, so that a slow
            # host's pauses never hold up other hosts.
            await gate.wait()
            async with self._global:
                yield limits

    def _host(self, host: str) -> tuple[HostLimits, asyncio.Semaphore, HostGate]:
        entry = self._hosts.get(host)
        if entry is None:
            policy = self._policy(host) if self._policy else None
            limits = limits_for(self._check, policy)
            entry = (limits, asyncio.Semaphore(limits.per_host),
                     HostGate(limits.interval, sleep=self._sleep, clock=self._clock))
            self._hosts[host] = entry
        return entry
