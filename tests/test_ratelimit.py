"""Per-host limits, the minimum interval and Retry-After deferral (checker.ratelimit)."""

from __future__ import annotations

import asyncio

from checker.models import HostPolicy
from checker.pace import Signal
from checker.ratelimit import HostLimits, Limiter, limits_for
from checker.settings import CheckSettings


class FakeTime:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def test_limits_for_uses_settings_then_policy() -> None:
    check = CheckSettings(per_host=4, per_host_interval=0.5)
    assert limits_for(check, None) == HostLimits(4, 0.5)
    assert limits_for(check, HostPolicy()) == HostLimits(4, 0.5)
    policy = HostPolicy(per_host=1, interval=2.0, headers=(("Referer", "x"),))
    assert limits_for(check, policy) == HostLimits(1, 2.0, (("Referer", "x"),))
    assert limits_for(check, HostPolicy(per_host=0)).per_host == 1   # never zero


async def test_limiter_defer_pauses_the_host_and_never_pulls_it_earlier() -> None:
    t = FakeTime()
    limiter = Limiter(CheckSettings(), sleep=t.sleep, clock=t.clock)
    limiter.defer("a.example", 10.0)
    limiter.defer("a.example", 1.0)           # never pulls an existing deferral earlier
    async with limiter.slot("a.example"):
        assert t.now == 110.0
    async with limiter.slot("b.example"):     # other hosts are not held back
        assert t.now == 110.0


async def test_limiter_interval_sleeps_with_injected_sleep() -> None:
    t = FakeTime()
    limiter = Limiter(CheckSettings(per_host_interval=2.0), sleep=t.sleep, clock=t.clock)
    starts = []
    for _ in range(3):
        async with limiter.slot("a.example"):
            starts.append(t.now)
    assert starts == [100.0, 102.0, 104.0]
    async with limiter.slot("b.example"):     # other hosts are not held back
        assert t.now == 104.0


async def test_limiter_bounds_per_host_and_global_concurrency() -> None:
    # Four global slots over three hosts: some host must have two in flight at once.
    limiter = Limiter(CheckSettings(concurrency=4, per_host=2))
    active: dict[str, int] = {}
    peak: dict[str, int] = {}
    total_peak = 0

    async def job(host: str) -> None:
        nonlocal total_peak
        async with limiter.slot(host):
            active[host] = active.get(host, 0) + 1
            peak[host] = max(peak.get(host, 0), active[host])
            total_peak = max(total_peak, sum(active.values()))
            await asyncio.sleep(0.01)
            active[host] -= 1
        await limiter.observe(host, Signal.OK, 0.01)     # good answers open the host's window

    await asyncio.gather(*(job(h) for h in ["a"] * 6 + ["b"] * 6 + ["c"] * 6))
    assert max(peak.values()) == 2          # per-host limit reached, never passed
    assert total_peak == 4


async def test_limiter_host_policy_overrides_per_host() -> None:
    limiter = Limiter(CheckSettings(per_host=4),
                      host_policy=lambda host: HostPolicy(per_host=1) if host == "slow" else None)
    assert limiter.limits("slow").per_host == 1
    assert limiter.limits("fast").per_host == 4
