"""Table tests for the health state machine and the recheck schedule (pure functions)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from checker.health import is_due, next_check_at, next_health, rebuild_health, recheck_interval
from checker.models import Health, HealthState, Status
from checker.settings import HealthSettings

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
S = HealthSettings()          # N=3 failing checks over at least M=72 hours
OK, RD, BR, SO, TO, UN, BL, EX = (Status.OK, Status.REDIRECT, Status.BROKEN, Status.SOFT404,
                                  Status.TIMEOUT, Status.UNREACHABLE, Status.BLOCKED, Status.EXCLUDED)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def fold(steps):
    state = HealthState()
    trail = []
    for status, hours in steps:
        state = next_health(state, status, h(hours), S)
        trail.append(state.health)
    return state, trail


# (name, [(status, hours since T0)...], expected health after each step)
TABLE = [
    ("never checked", [], []),
    ("ok", [(OK, 0)], [Health.ALIVE]),
    ("redirect", [(RD, 0)], [Health.ALIVE]),
    ("one failure is suspect", [(BR, 0)], [Health.SUSPECT]),
    ("every failing status counts", [(BR, 0), (SO, 36), (TO, 72)],
     [Health.SUSPECT, Health.SUSPECT, Health.DEAD]),
    ("unreachable counts too", [(UN, 0), (UN, 40), (UN, 80)], [Health.SUSPECT, Health.SUSPECT, Health.DEAD]),
    ("three quick failures are not enough", [(BR, 0), (BR, 1), (BR, 2)],
     [Health.SUSPECT] * 3),
    ("quick failures then one 72h later", [(BR, 0), (BR, 1), (BR, 2), (BR, 72)],
     [Health.SUSPECT] * 3 + [Health.DEAD]),
    ("two failures over a long time are not enough", [(BR, 0), (BR, 200)], [Health.SUSPECT] * 2),
    ("just short of 72h", [(BR, 0), (BR, 36), (BR, 71.9)], [Health.SUSPECT] * 3),
    ("one good check resets the streak", [(BR, 0), (BR, 36), (OK, 48), (BR, 72), (BR, 100)],
     [Health.SUSPECT, Health.SUSPECT, Health.ALIVE, Health.SUSPECT, Health.SUSPECT]),
    ("blocked never confirms", [(BR, 0), (BL, 36), (BL, 72), (BL, 100)], [Health.SUSPECT] * 4),
    ("blocked does not clear", [(BR, 0), (BL, 36), (BR, 48), (BR, 80)],
     [Health.SUSPECT, Health.SUSPECT, Health.SUSPECT, Health.DEAD]),
    ("only blocked stays unknown", [(BL, 0), (BL, 72)], [Health.UNKNOWN] * 2),
    ("excluded stays unknown", [(EX, 0)], [Health.UNKNOWN]),
    ("blocked keeps alive", [(OK, 0), (BL, 24)], [Health.ALIVE, Health.ALIVE]),
    ("dead stays dead while failing or blocked", [(BR, 0), (BR, 36), (BR, 72), (SO, 500), (BL, 600)],
     [Health.SUSPECT, Health.SUSPECT, Health.DEAD, Health.DEAD, Health.DEAD]),
    ("dead comes back", [(BR, 0), (BR, 36), (BR, 72), (OK, 800)],
     [Health.SUSPECT, Health.SUSPECT, Health.DEAD, Health.ALIVE]),
]


@pytest.mark.parametrize("name,steps,expected", TABLE, ids=[t[0] for t in TABLE])
def test_health_table(name, steps, expected):
    state, trail = fold(steps)
    assert trail == expected
    assert rebuild_health([(s, h(t)) for s, t in steps], S) == state


def test_dead_records_when_and_streak():
    state, _ = fold([(BR, 0), (BR, 36), (BR, 72)])
    assert state == HealthState(Health.DEAD, fail_streak=3, first_failing_at=h(0), dead_since=h(72))


def test_revived_link_says_when():
    state, _ = fold([(BR, 0), (BR, 36), (BR, 72), (OK, 800), (OK, 900)])
    assert state == HealthState(Health.ALIVE, revived_at=h(800))


def test_a_new_death_ends_the_revival():
    state, _ = fold([(BR, 0), (BR, 36), (BR, 72), (OK, 800), (BR, 900), (BR, 940), (BR, 980)])
    assert state.health is Health.DEAD and state.revived_at is None and state.dead_since == h(980)
    assert state.first_failing_at == h(900)


def test_suspect_keeps_first_failure_time():
    state, _ = fold([(BR, 0), (BL, 10), (TO, 20)])
    assert (state.health, state.fail_streak, state.first_failing_at) == (Health.SUSPECT, 2, h(0))


def test_settings_change_the_confirmation():
    quick = HealthSettings(dead_after_checks=2, dead_after_hours=1)
    state = HealthState()
    for hours in (0, 1):
        state = next_health(state, BR, h(hours), quick)
    assert state.health is Health.DEAD


def test_naive_stored_times_mix_with_aware():
    prev = HealthState(Health.SUSPECT, fail_streak=2, first_failing_at=datetime(2026, 1, 1))
    assert next_health(prev, BR, h(72), S).health is Health.DEAD


def test_rebuild_sorts_history():
    steps = [(BR, 72), (BR, 0), (BR, 36)]
    assert rebuild_health([(s, h(t)) for s, t in steps], S).health is Health.DEAD


def test_rebuild_accepts_status_words():
    assert rebuild_health([("ok", h(0))], S).health is Health.ALIVE


def test_fold_equals_incremental_on_random_histories():
    rng = random.Random(4)
    statuses = list(Status)
    for _ in range(200):
        hours, steps = 0.0, []
        for _ in range(rng.randint(0, 12)):
            hours += rng.choice([1, 12, 24, 36, 80])
            steps.append((rng.choice(statuses), hours))
        state, _ = fold(steps)
        assert rebuild_health([(s, h(t)) for s, t in steps], S) == state


@pytest.mark.parametrize("health,status,seconds", [
    (Health.ALIVE, OK, 7 * 86400),
    (Health.SUSPECT, BR, 12 * 3600),
    (Health.DEAD, BR, 30 * 86400),
    (Health.UNKNOWN, BL, 3 * 86400),
    (Health.ALIVE, BL, 3 * 86400),
    (Health.SUSPECT, BL, 3 * 86400),
    (Health.UNKNOWN, EX, 7 * 86400),
])
def test_recheck_interval(health, status, seconds):
    assert recheck_interval(HealthState(health), status, S) == seconds


def test_recheck_interval_from_settings():
    custom = HealthSettings(recheck_suspect=600.0)
    assert recheck_interval(HealthState(Health.SUSPECT), BR, custom) == 600.0


def test_next_check_at_within_jitter():
    rng = random.Random(1)
    state = HealthState(Health.SUSPECT)
    seen = {next_check_at(state, BR, T0, S, rng) for _ in range(100)}
    base = 12 * 3600
    assert all(T0 + timedelta(seconds=base * 0.9) <= t <= T0 + timedelta(seconds=base * 1.1) for t in seen)
    assert len(seen) > 50
    flat = HealthSettings(recheck_jitter=0.0)
    assert next_check_at(state, BR, T0, flat, rng) == T0 + timedelta(hours=12)


@pytest.mark.parametrize("due,now,expected", [
    (None, T0, True),
    (T0, T0, True),
    (h(-1), T0, True),
    (h(1), T0, False),
    (datetime(2025, 12, 31, 23), T0, True),     # naive from SQLite, read as UTC
    (datetime(2026, 1, 1, 1), T0, False),
])
def test_is_due(due, now, expected):
    assert is_due(due, now) is expected
