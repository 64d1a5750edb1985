"""Table tests of the pure archive policy and of the slow-lane primitives."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from checker.archive.policy import Action, ArchiveCandidate, JobState, decide, plan
from checker.archive.queue import MIN_429_WAIT, CircuitBreaker, DayWindow, Lane, TokenBucket
from checker.archive.wayback import same_capture_url
from checker.models import Health
from checker.settings import ArchiveSettings

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
OLD = NOW - timedelta(days=200)
RECENT = NOW - timedelta(days=10)
BOTH = ("local", "wayback")


def cand(health: Health, at_risk: bool = False, caps: dict | None = None, jobs: dict | None = None):
    return ArchiveCandidate(1, "https://mp.weixin.qq.com/s/a", health, at_risk, caps or {}, jobs or {})


@pytest.mark.parametrize("candidate, settings, services, expected", [
    # at-risk and alive, no capture -> SAVE on both services
    (cand(Health.ALIVE, True), ArchiveSettings(), BOTH, {("local", "save"), ("wayback", "save")}),
    # without keys the wayback save is not possible: local only
    (cand(Health.ALIVE, True), ArchiveSettings(), ("local",), {("local", "save")}),
    # a recent wayback capture: only local
    (cand(Health.ALIVE, True, {"wayback": RECENT}), ArchiveSettings(), BOTH, {("local", "save")}),
    # captures older than max_age (180 d): save again
    (cand(Health.ALIVE, True, {"wayback": OLD, "local": OLD}), ArchiveSettings(), BOTH,
     {("local", "save"), ("wayback", "save")}),
    # max_age is a setting
    (cand(Health.ALIVE, True, {"wayback": OLD, "local": OLD}), ArchiveSettings(max_age_days=365), BOTH, set()),
    # alive but not at risk: nothing, unless archive_all
    (cand(Health.ALIVE), ArchiveSettings(), BOTH, set()),
    (cand(Health.ALIVE), ArchiveSettings(archive_all=True), BOTH, {("local", "save"), ("wayback", "save")}),
    # archive_all saves ONCE: an old capture of a link not at risk is enough
    (cand(Health.ALIVE, caps={"local": OLD, "wayback": OLD}), ArchiveSettings(archive_all=True), BOTH, set()),
    # already queued: never twice
    (cand(Health.ALIVE, True, jobs={("wayback", "save"): JobState.SUBMITTED}), ArchiveSettings(), BOTH,
     {("local", "save")}),
    # given up: a human must look
    (cand(Health.ALIVE, True, jobs={("wayback", "save"): JobState.NOT_ARCHIVABLE,
                                    ("local", "save"): JobState.FAILED}), ArchiveSettings(), BOTH, set()),
    # a done save older than max_age is planned again (the queue re-arms it)
    (cand(Health.ALIVE, True, {"wayback": OLD}, {("wayback", "save"): JobState.DONE}), ArchiveSettings(),
     ("wayback",), {("wayback", "save")}),
    # dead or suspect without snapshot: LOOKUP (never SAVE: it would capture the error page)
    (cand(Health.DEAD, True), ArchiveSettings(), BOTH, {("wayback", "lookup")}),
    (cand(Health.SUSPECT), ArchiveSettings(), BOTH, {("wayback", "lookup")}),
    # dead with a snapshot known, or a lookup already done: nothing
    (cand(Health.DEAD, caps={"local": OLD}), ArchiveSettings(), BOTH, set()),
    (cand(Health.DEAD, jobs={("wayback", "lookup"): JobState.DONE}), ArchiveSettings(), BOTH, set()),
    # wayback not configured: no lookup
    (cand(Health.DEAD), ArchiveSettings(services=("local",)), ("local",), set()),
    # unknown health (never checked, or only blocked): nothing
    (cand(Health.UNKNOWN, True), ArchiveSettings(), BOTH, set()),
])
def test_decide(candidate, settings, services, expected):
    got = {(j.service, str(j.action)) for j in decide(candidate, settings, NOW, services)}
    assert got == expected


def test_plan_puts_at_risk_first():
    settings = ArchiveSettings(archive_all=True)
    cands = [ArchiveCandidate(1, "https://a.example/", Health.ALIVE, False),
             ArchiveCandidate(2, "https://mp.weixin.qq.com/s/x", Health.ALIVE, True),
             ArchiveCandidate(3, "https://gone.example/", Health.DEAD, False)]
    jobs = plan(cands, settings, NOW, ("local",))
    assert [(j.link_id, str(j.action)) for j in jobs] == [(2, "save"), (3, "lookup"), (1, "save")]
    assert jobs[0].action is Action.SAVE and jobs[0].priority == 0


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


async def test_token_bucket_spaces_captures_evenly():
    ft = FakeTime()
    lane = Lane("wayback", TokenBucket(6, clock=ft.clock), TokenBucket(20, clock=ft.clock),
                DayWindow(100, clock=ft.clock), CircuitBreaker(3, 600, clock=ft.clock),
                clock=ft.clock, sleep=ft.sleep)
    stamps = []
    for _ in range(7):
        assert await lane.acquire(save=True)
        stamps.append(ft.t)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(g == pytest.approx(10.0) for g in gaps)      # 6 a minute -> one every 10 s
    # no 60-second window holds more than 6 captures
    assert max(sum(1 for s in stamps if w <= s < w + 60) for w in stamps) <= 6


async def test_day_window_stops_the_lane():
    ft = FakeTime()
    lane = Lane("wayback", TokenBucket(600, clock=ft.clock), TokenBucket(600, clock=ft.clock),
                DayWindow(3, clock=ft.clock, used=1), CircuitBreaker(3, 600, clock=ft.clock),
                clock=ft.clock, sleep=ft.sleep)
    assert await lane.acquire(save=True) and await lane.acquire(save=True)
    assert not await lane.acquire(save=True)
    assert await lane.acquire(save=False)      # lookups are not captures
    ft.t += 86400
    assert await lane.acquire(save=True)


def test_429_pause_is_at_least_a_minute_and_honours_retry_after():
    ft = FakeTime()
    lane = Lane("wayback", TokenBucket(6), TokenBucket(6), DayWindow(9), CircuitBreaker(3, 600, clock=ft.clock),
                clock=ft.clock)
    assert lane.rate_limited(2) == MIN_429_WAIT
    assert lane.blocked() == pytest.approx(60.0)
    assert lane.rate_limited(300) == 300
    assert lane.blocked() == pytest.approx(300.0)


def test_circuit_breaker_opens_pauses_and_closes():
    ft = FakeTime()
    br = CircuitBreaker(3, 600, clock=ft.clock)
    assert not br.failure() and not br.failure()
    assert br.failure() and br.is_open()
    ft.t += 601
    assert not br.is_open()            # half-open: one trial goes through
    br.success()
    assert br.failures == 0 and br.open_until is None


@pytest.mark.parametrize("asked, captured, same", [
    ("https://example.com/a", "http://www.example.com/a/", True),
    ("https://example.com/a?x=1", "https://example.com/a?x=1", True),
    ("https://example.com/a", "https://example.com/", False),
    ("https://example.com/a", "https://example.com/login?next=/a", False),
])
def test_same_capture_url(asked, captured, same):
    assert same_capture_url(asked, captured) is same
