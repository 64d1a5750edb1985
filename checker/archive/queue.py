"""The archive slow lane: a token bucket per service, 429 backoff, a circuit breaker.

Why so careful: the Wayback Machine documents small limits that change (recently about
7 captures a minute and 30,000 a day with keys, the CDX API about 24 requests a minute),
and ignoring its 429s gets the client's address firewalled for an hour, doubling on
repeats (issue 5). So a 429 pauses the whole lane for at least a minute, honouring
Retry-After, and a service that keeps failing trips a breaker that pauses it for longer.
Clock and sleep are injected so tests do not wait real minutes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable

__all__ = ["TokenBucket", "DayWindow", "CircuitBreaker", "Lane", "backoff_delay", "MIN_429_WAIT"]

log = logging.getLogger("linkhealth.archive")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: The least a lane waits after a 429, whatever Retry-After says (issue 5: "at least a minute").
MIN_429_WAIT = 60.0


class TokenBucket:
    """``rate`` tokens per minute with a burst of ``burst``: spacing 60/rate when burst is 1.

    With burst 1 no 60-second window ever holds more than ``rate`` events, which is
    how the fake Wayback server measures us.
    """

    def __init__(self, per_minute: float, *, burst: float = 1.0, clock: Clock = time.monotonic) -> None:
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()

    def delay(self) -> float:
        """Seconds until a token is available (0 when one is)."""
        self._refill()
        if self.interval == 0 or self._tokens >= 1:
            return 0.0
        return (1 - self._tokens) * self.interval

    def take(self) -> None:
        """Spend one token (call when ``delay()`` is 0)."""
        self._refill()
        self._tokens -= 1

    def _refill(self) -> None:
        now = self._clock()
        if self.interval:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) / self.interval)
        self._stamp = now


class DayWindow:
    """At most ``limit`` events in any sliding 24 hours (the per-day capture budget)."""

    def __init__(self, limit: int, *, clock: Clock = time.monotonic, used: int = 0) -> None:
        self.limit = limit
        self._clock = clock
        now = clock()
        self._events: deque[float] = deque([now] * used)

    def exhausted(self) -> bool:
        """True when the budget of the last 24 hours is spent."""
        now = self._clock()
        while self._events and now - self._events[0] >= 86400:
            self._events.popleft()
        return self.limit > 0 and len(self._events) >= self.limit

    def add(self) -> None:
        """Count one event."""
        self._events.append(self._clock())


class CircuitBreaker:
    """Opens after ``threshold`` consecutive service failures; stays open ``pause`` seconds."""

    def __init__(self, threshold: int, pause: float, *, clock: Clock = time.monotonic) -> None:
        self.threshold = max(1, threshold)
        self.pause = pause
        self._clock = clock
        self.failures = 0
        self.open_until: float | None = None

    def is_open(self) -> bool:
        """True while the service is paused (after the pause, one trial is let through)."""
        return self.open_until is not None and self._clock() < self.open_until

    def success(self) -> None:
        """A good answer closes the breaker."""
        self.failures = 0
        self.open_until = None

    def failure(self) -> bool:
        """Count a failure; True when this one opened the breaker."""
        self.failures += 1
        if self.failures >= self.threshold and not self.is_open():
            self.open_until = self._clock() + self.pause
            return True
        return False


def backoff_delay(attempts: int, base: float, cap: float = 86400.0) -> float:
    """Exponential retry delay for a job that has failed ``attempts`` times."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


@dataclass
class Lane:
    """One service's slow lane: captures and lookups buckets, a day budget, 429 pause, breaker."""

    name: str
    captures: TokenBucket
    lookups: TokenBucket
    day: DayWindow
    breaker: CircuitBreaker
    clock: Clock = time.monotonic
    sleep: Sleep = asyncio.sleep
    paused_until: float | None = None      # a 429 pause (monotonic clock)
    pause_reason: str | None = None
    events: list[str] = field(default_factory=list)

    def blocked(self) -> float | None:
        """Seconds this lane must still wait (429 pause or open breaker), or None."""
        now = self.clock()
        waits = [t - now for t in (self.paused_until, self.breaker.open_until) if t and t > now]
        return max(waits) if waits else None

    async def acquire(self, save: bool) -> bool:
        """Wait for a token (saves also need the day budget); False when the day is spent."""
        if save and self.day.exhausted():
            return False
        bucket = self.captures if save else self.lookups
        while (wait := bucket.delay()) > 0:
            await self.sleep(wait)
        bucket.take()
        if save:
            self.day.add()
        return True

    def rate_limited(self, retry_after: float | None) -> float:
        """A 429: pause the lane at least a minute, longer if Retry-After says so."""
        wait = max(MIN_429_WAIT, retry_after or 0.0)
        self.paused_until = self.clock() + wait
        self._note(f"{self.name}: 429 Too Many Requests; pausing {wait:.0f} s")
        return wait

    def down(self, error: str | None) -> None:
        """A service failure: count it; say so when the breaker opens."""
        if self.breaker.failure():
            self._note(f"{self.name}: service failing ({error}); paused for "
                       f"{self.breaker.pause:.0f} s by the circuit breaker")

    def _note(self, message: str) -> None:
        self.events.append(message)
        log.warning(message)
