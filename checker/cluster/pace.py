"""Per-host pace in the cluster: where a host's limits come from, and a limiter paced on the database.

:class:`PaceSource` is the one seam the workers and the producer ask for a host's limits
(per-host concurrency = its number of slots, minimum interval between request starts).
:class:`ConfiguredPace` answers from the settings and the site rules, exactly as the
embedded :class:`~checker.ratelimit.Limiter` does (:func:`~checker.ratelimit.limits_for`);
a learned per-host pace plugs in as another PaceSource.

:class:`DbPacedLimiter` is what the probe engine sees in a worker instead of the in-process
Limiter: the same adaptive pace (checker.pace), and each request start booked on the host's
``host_clock`` row (database clock), so the interval holds across every worker; concurrency
needs no semaphore across workers because a slot job runs its URLs one at a time. A worker
cut off from the database cannot book a start, and so stops checking.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, Protocol

from ..models import HostPolicy
from ..pace import LearnedPace
from ..ratelimit import HostLimits, Limiter, limits_for
from ..settings import CheckSettings
from ..store import cluster as q

__all__ = ["PaceSource", "ConfiguredPace", "DbPacedLimiter", "DbClock", "pace_for"]


class PaceSource(Protocol):
    """A host's effective limits (per_host = its slots, interval = seconds between starts)."""

    def limits(self, host: str) -> HostLimits: ...


@dataclass(frozen=True)
class ConfiguredPace:
    """Limits from the settings, overridden by site rules: the embedded mode's limits."""

    check: CheckSettings
    host_policy: Callable[[str], HostPolicy | None] | None = None

    def limits(self, host: str) -> HostLimits:
        """The configured limits of ``host``."""
        return limits_for(self.check, self.host_policy(host) if self.host_policy else None)


def pace_for(check: CheckSettings, host_policy: Callable[[str], HostPolicy | None] | None) -> PaceSource:
    """The PaceSource of the producer and of every worker: the one place to plug a learned pace in."""
    return ConfiguredPace(check, host_policy)


class DbPacedLimiter(Limiter):
    """The probe engine's limiter in a worker: the embedded mode's adaptive pace for one slot,
    with each request start also booked on the host's ``host_clock`` row.

    The pace (checker.pace: cut on stress, raised slowly, paused on Retry-After) is the
    embedded Limiter's, started from the learned pace; a slot sends one request at a time,
    so its ceiling is 1. The interval it keeps (configured, or learned when larger) is
    booked on the database, so it holds across every worker.
    """

    def __init__(self, store: Any, pace: PaceSource, check: CheckSettings, *,
                 host_policy: Callable[[str], HostPolicy | None] | None = None,
                 learned: Mapping[str, LearnedPace] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        super().__init__(check, host_policy=host_policy, learned=learned, sleep=sleep)
        self._store = store
        self._pace = pace
        self._deferred: dict[str, float] = {}
        self._booked: set[str] = set()

    def _limits_of(self, host: str, policy: HostPolicy | None) -> HostLimits:
        """One request at a time: the job is one of the host's slots."""
        return replace(self._pace.limits(host), per_host=1)

    def learned(self, host: str, *, wall_clock: float) -> LearnedPace:
        """The rate this slot learned; the window it started from, since a slot's own window is
        always 1 and says nothing of how many requests the host takes at once."""
        row = super().learned(host, wall_clock=wall_clock)
        start = self._learned.get(host)
        return replace(row, concurrency=start.concurrency if start else row.concurrency,
                       stress_concurrency=start.stress_concurrency if start else None)

    def defer(self, host: str, seconds: float) -> None:
        """Delay every later request to ``host``, here and on every worker (written before the next start)."""
        super().defer(host, seconds)
        self._deferred[host] = max(seconds, self._deferred.get(host, 0.0))

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[HostLimits]:
        """Wait for the host's turn in this job's pace, then for its next start as booked on
        the database, then let one request go.

        With no interval to keep, a start is booked once per batch (``new_round``): it still
        honours a pause (Retry-After) that any worker wrote, at one round trip per batch
        instead of one per request.
        """
        async with super().slot(host) as limits:
            interval = max(limits.interval, self.host(host).pace.interval)
            pause = self._deferred.pop(host, None)
            if pause is not None:
                await q.defer_host(self._store, host, pause)
            if interval > 0 or pause is not None or host not in self._booked:
                self._booked.add(host)
                wait = await q.reserve_start(self._store, host, interval)
                if wait > 0:
                    await self._sleep(wait)
            yield limits

    def new_round(self) -> None:
        """A new batch starts: book its first start on the database again."""
        self._booked.clear()


class DbClock:
    """Wall time from the database's clock, advanced by this process's monotonic clock.

    checked_at and next_check_at are computed with it: a worker whose own clock is off still
    writes the times every other process agrees on.
    """

    def __init__(self, base: datetime, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._base = base
        self._monotonic = monotonic
        self._t0 = monotonic()

    @classmethod
    async def start(cls, store: Any, *, monotonic: Callable[[], float] = time.monotonic) -> "DbClock":
        """Read the database's time now."""
        return cls(await q.db_now(store), monotonic=monotonic)

    def now(self) -> datetime:
        """The database's current time, as estimated here."""
        return self._base + timedelta(seconds=self._monotonic() - self._t0)
