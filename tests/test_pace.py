"""The per-host pace controller (checker.pace), driven by a fake clock."""

from __future__ import annotations

import math
import random

import pytest

from checker.pace import FAST_UNTIL, HostPace, LearnedPace, PaceLimits, Signal


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_requests(pace: HostPace, clock: Clock, n: int, latency: float, signal=Signal.OK) -> list[float]:
    """Start n requests one after the other at the pace's turn, each filling the window; the pauses."""
    pauses = []
    for _ in range(n):
        delay = pace.wait(0)
        clock.now += delay
        pace.started(pace.concurrency - 1)     # a deep queue: each start fills the window
        clock.now += latency
        pauses.append(pace.observe(signal, latency))
    return pauses


def test_starts_at_one_request_and_slow_starts_to_the_ceiling() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=4, min_interval=0.0), clock=clock)
    assert pace.concurrency == 1 and pace.interval == 0.0
    assert pace.wait(0) == 0.0
    assert pace.wait(1) is None          # the window is full: wait for a release
    run_requests(pace, clock, 2, 0.1)
    assert pace.concurrency == 3         # +1 per good answer before any stress
    run_requests(pace, clock, 5, 0.1)
    assert pace.concurrency == 4 and pace.window == 4.0    # never past the ceiling


def test_rule_start_is_slow_and_learned_pace_wins_within_the_ceilings() -> None:
    clock = Clock()
    slow = HostPace(PaceLimits(ceiling=4, start_concurrency=1, start_interval=1.0), clock=clock)
    assert slow.concurrency == 1 and slow.interval == 1.0
    learned = LearnedPace("h", concurrency=9.0, interval=0.01, stress_rate=3.0)
    pace = HostPace(PaceLimits(ceiling=4, min_interval=0.2), clock=clock, learned=learned)
    assert pace.concurrency == 4 and pace.interval == 0.2     # the ceilings hold over history
    assert pace.stress_rate == 3.0


def test_interval_spaces_starts() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=4, min_interval=0.5), clock=clock)
    pace.started(0)
    assert pace.wait(0) == pytest.approx(0.5)
    clock.now += 0.2
    assert pace.wait(0) == pytest.approx(0.3)


def test_stress_halves_the_window_when_only_the_window_bounds() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=8, start_concurrency=8), clock=clock)
    pace.started(0)
    clock.now += 0.1
    pause = pace.observe(Signal.STRESS, 0.05, reason="HTTP 429")
    assert pace.window == 4.0 and pace.interval == 0.0
    assert pause == 1.0 and pace.wait(0) == pytest.approx(1.0)
    assert pace.last_stress == "HTTP 429" and pace.refusals == 1


def test_stress_halves_the_measured_rate_when_an_interval_bounds() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=8, start_interval=0.05), clock=clock)
    for _ in range(20):                      # 20 starts in 2 s: 10 per second measured
        pace.started(0)
        clock.now += 0.1
    pace.observe(Signal.STRESS, 0.05)
    assert pace.rate == pytest.approx(5.0, rel=0.05)     # half of what was really sent


def test_interval_never_grows_past_the_longest_pause() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=4, start_interval=1.0, pause_max=0.5), clock=clock)
    for _ in range(8):                       # stress after stress from a slow host
        run_requests(pace, clock, 1, 0.1, Signal.VERIFICATION)
        clock.now += pace.wait(0)
    assert pace.interval == pytest.approx(0.5)           # check.host_pause_max bounds it too


def test_spurious_cuts_are_undone_newest_first() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=8, start_concurrency=4, start_interval=0.2), clock=clock)
    run_requests(pace, clock, 1, 0.05, Signal.STRESS)
    assert pace.cuts == 1 and pace.window == 2.0 and pace.stress_rate is not None
    clock.now += pace.wait(0)
    run_requests(pace, clock, 3, 0.05)
    assert pace.spurious(1) and pace.window >= 4.0 and pace.stress_rate is None
    assert not pace.spurious(1)              # once
    before = (pace.window, pace.interval)
    for _ in range(2):                       # two more episodes: cuts 2 and 3
        clock.now += pace.wait(0)
        run_requests(pace, clock, 1, 0.05, Signal.STRESS)
        clock.now += pace.wait(0)
        run_requests(pace, clock, 1, 0.05)
    assert pace.cuts == 3
    cut = (pace.window, pace.interval)
    assert pace.spurious(2) and (pace.window, pace.interval) == cut    # cut 3 still holds
    assert pace.spurious(3)                  # both undone: the pace before cut 2
    assert pace.window >= before[0] and pace.interval <= before[1] and pace.stress_rate is None


def test_stress_cuts_once_per_episode_the_pause_keeps_growing() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=4, start_interval=0.5), clock=clock)
    run_requests(pace, clock, 5, 0.05)
    clock.now += pace.wait(0)
    pace.started(0)
    pace.observe(Signal.VERIFICATION, 0.0)
    rate = pace.rate
    for _ in range(3):                       # probes during the host's sanction
        clock.now += pace.wait(0)
        pace.started(0)
        pace.observe(Signal.VERIFICATION, 0.0)
    assert pace.rate == rate and pace.streak == 4


def test_pause_doubles_per_consecutive_stress_and_retry_after_is_honoured() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=4, pause_max=30.0), clock=clock)
    pauses = []
    for _ in range(6):
        clock.now += pace.wait(0)
        pace.started(0)
        clock.now += 0.1
        pauses.append(pace.observe(Signal.VERIFICATION, 0.1))
    assert pauses == pytest.approx([5.0, 10.0, 20.0, 30.0, 30.0, 30.0])   # 5 s doubling, capped
    assert pace.streak == 6
    clock.now += pace.wait(0)
    pace.started(0)
    clock.now += 0.1
    assert pace.observe(Signal.STRESS, 0.1, retry_after=45.0) == 45.0   # longer than the cap asked
    clock.now += pace.wait(0)
    run_requests(pace, clock, 1, 0.1)
    assert pace.streak == 0                  # one good answer ends the streak


def test_answers_to_requests_sent_before_the_cut_do_not_cut_again() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=8), clock=clock)
    for _ in range(8):
        pace.started(0)
    clock.now += 0.2
    pace.observe(Signal.STRESS, 0.2)
    window, rate = pace.window, pace.rate
    for _ in range(7):                      # the other 7 were in flight before the cut
        clock.now += 0.01
        assert pace.observe(Signal.STRESS, 0.21) > 0      # still paused, but no new cut
    assert (pace.window, pace.rate) == (window, rate) and pace.streak == 1


def test_rate_climbs_fast_back_towards_the_stress_rate_then_slowly() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=4, start_interval=0.5), clock=clock)   # 2/s
    run_requests(pace, clock, 30, 0.05)
    before = pace.rate
    assert before > 3.0                       # good answers speed up a slow start
    clock.now += pace.wait(0)
    pace.started(0)
    clock.now += 0.05
    pace.observe(Signal.VERIFICATION, 0.05)
    stress = pace.stress_rate
    assert pace.rate == pytest.approx(stress / 2)
    clock.now += pace.wait(0)
    run_requests(pace, clock, 30, 0.05)
    assert FAST_UNTIL * stress <= pace.rate < 0.9 * stress     # back near, not past, the limit
    run_requests(pace, clock, 200, 0.05)
    assert pace.rate < stress                 # 200 more good answers: still below it


def test_after_stress_the_window_grows_one_per_window_then_slowly_past_the_stress_window() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=10, start_concurrency=4), clock=clock)
    pace.started(0)
    pace.observe(Signal.STRESS, 0.0)
    assert pace.window == 2.0 and pace.stress_concurrency == 4.0
    clock.now += pace.wait(0)
    run_requests(pace, clock, 2, 0.05)
    assert pace.window == pytest.approx(2.5 + 1 / 2.5 - 0.1, abs=0.15)    # ~ +1 per window
    run_requests(pace, clock, 40, 0.05)
    assert 3.0 <= pace.window < 4.0           # fast to 3, then slowly towards 4


def test_only_a_limit_that_binds_grows() -> None:
    """RFC 7661: answers to requests that never filled the window, or that started long after
    the interval allowed, say nothing about a faster pace; the window and rate stay put."""
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=8, start_concurrency=3, start_interval=0.5), clock=clock)
    for _ in range(50):                       # one request at a time, 2 s apart: a queue run dry
        clock.now += 2.0
        assert pace.wait(0) == 0.0
        pace.started(0)
        clock.now += 0.1
        pace.observe(Signal.OK, 0.1)
    assert pace.window == 3.0 and pace.interval == 0.5
    run_requests(pace, clock, 2, 0.1)         # a deep queue again: both limits bind, both grow
    assert pace.window == 5.0 and pace.interval < 0.5


def test_the_learned_window_is_the_one_used_not_one_grown_while_idle() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=10), clock=clock)
    run_requests(pace, clock, 2, 0.1)        # slow start to 3 while the queue is deep
    for _ in range(40):                      # the host's last URLs, one by one
        clock.now += pace.wait(0)
        pace.started(0)
        clock.now += 0.1
        pace.observe(Signal.OK, 0.1)
    assert pace.learned("h").concurrency == 3.0


def test_latency_jump_cuts_the_window_without_a_pause() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=4), clock=clock)
    run_requests(pace, clock, 10, 0.1)
    assert pace.window == 4.0
    assert pace.observe(Signal.OK, 0.9) == 0.0
    assert pace.window == 4.0                 # one slow answer is that page's
    pace.observe(Signal.OK, 0.9)
    assert pace.observe(Signal.OK, 0.9) == 0.0
    assert pace.window == pytest.approx(2.8) and pace.concurrency == 2


def test_noisy_latency_alone_never_cuts() -> None:
    clock = Clock()
    rng = random.Random(3)
    pace = HostPace(PaceLimits(ceiling=4), clock=clock)
    for _ in range(500):
        clock.now += pace.wait(0)
        pace.started(pace.concurrency - 1)
        latency = rng.uniform(0.1, 0.3)       # every answer 100-300 ms, at random
        clock.now += latency
        pace.observe(Signal.OK, latency)
    assert pace.window == 4.0 and pace.stress_concurrency is None


def test_timeouts_alone_never_cut_the_pace() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=4, start_concurrency=4), clock=clock)
    for _ in range(10):                       # the last URLs of a host, all hanging
        pace.started(0)
        clock.now += 20.0
        assert pace.observe(Signal.TIMEOUT, 20.0) == 0.0
    assert pace.window == 4.0 and pace.concurrency == 4


@pytest.mark.parametrize("seed", range(5))
def test_ceilings_are_never_passed_whatever_the_answers(seed: int) -> None:
    rng = random.Random(seed)
    clock = Clock()
    limits = PaceLimits(ceiling=3, min_interval=0.25, start_concurrency=1, start_interval=2.0)
    pace = HostPace(limits, clock=clock)
    last_start = -math.inf
    for _ in range(2000):
        delay = pace.wait(0)
        clock.now += delay
        assert clock.now - last_start >= 0.25 - 1e-9
        pace.started(0)
        last_start = clock.now
        latency = rng.uniform(0.01, 2.0)
        clock.now += rng.uniform(0, latency)
        signal = rng.choices(list(Signal), weights=[90, 4, 2, 4])[0]
        pace.observe(signal, latency, retry_after=rng.choice([None, 1.0]))
        assert 1 <= pace.concurrency <= 3 and pace.window <= 3
        assert pace.interval >= 0.25


def test_learned_row_carries_what_the_next_run_needs() -> None:
    clock = Clock()
    pace = HostPace(PaceLimits(ceiling=4), clock=clock)
    run_requests(pace, clock, 3, 0.1)
    clock.now += 1
    pace.started(0)
    pace.observe(Signal.VERIFICATION, 0.1, reason="WeChat verification page")
    clock.now += 10
    row = pace.learned("mp.weixin.qq.com", wall_clock=5_000_000.0)
    assert row.host == "mp.weixin.qq.com" and row.concurrency == 2.0
    assert row.last_stress == "WeChat verification page"
    assert row.last_stress_at == pytest.approx(5_000_000.0 - 10)
    assert row.requests == 4 and row.refusals == 1
    again = HostPace(PaceLimits(ceiling=4), clock=clock, learned=row)
    assert again.window == 2.0 and again.interval == row.interval
