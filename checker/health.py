"""Health over time: alive / suspect / dead / unknown, from the history of checks.

A death is confirmed the way InternetArchiveBot confirms one (it claims a 0.1%
false-positive rate): several failing checks spread over days, not one bad answer.
Defaults: 3 failing checks over at least 72 hours (``health.dead_after_checks`` and
``health.dead_after_hours``). One good check resets; blocked and excluded checks
neither confirm nor clear a death (the site refused us; we learnt nothing).

Every function here is pure; ``rebuild_health`` folds ``next_health`` over the stored
Check rows, so the state kept on the link row can always be derived again.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Sequence

from .models import FAILING_STATUSES, Health, HealthState, Status
from .settings import HealthSettings

__all__ = ["next_health", "rebuild_health", "recheck_interval", "next_check_at", "is_due"]

_GOOD = frozenset({Status.OK, Status.REDIRECT})


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time linkhealth stores is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def next_health(prev: HealthState, status: Status, checked_at: datetime,
                settings: HealthSettings) -> HealthState:
    """The health after one more check with this status."""
    if status in _GOOD:
        revived = checked_at if prev.health is Health.DEAD else prev.revived_at
        return HealthState(health=Health.ALIVE, revived_at=revived)
    if status not in FAILING_STATUSES:
        return prev          # blocked, excluded: neither confirm nor clear
    streak = prev.fail_streak + 1
    first = prev.first_failing_at if prev.fail_streak and prev.first_failing_at else checked_at
    if prev.health is Health.DEAD:
        return replace(prev, fail_streak=streak, first_failing_at=first)
    spread = _aware(checked_at) - _aware(first)
    if streak >= settings.dead_after_checks and spread >= timedelta(hours=settings.dead_after_hours):
        # A new death: the previous revival, if any, is over.
        return HealthState(health=Health.DEAD, fail_streak=streak, first_failing_at=first,
                           dead_since=checked_at, revived_at=None)
    return replace(prev, health=Health.SUSPECT, fail_streak=streak, first_failing_at=first)


def rebuild_health(history: Sequence[tuple[Status, datetime]], settings: HealthSettings) -> HealthState:
    """The health derived from a link's whole check history (sorted by time here)."""
    state = HealthState()
    for status, checked_at in sorted(history, key=lambda item: _aware(item[1])):
        state = next_health(state, Status(status), checked_at, settings)
    return state


def recheck_interval(state: HealthState, status: Status, settings: HealthSettings) -> float:
    """Seconds until the next check: blocked 3d, else by health (alive 7d, suspect 12h, dead 30d)."""
    if status is Status.BLOCKED:
        return settings.recheck_blocked
    if state.health is Health.DEAD:
        return settings.recheck_dead
    if state.health is Health.SUSPECT:
        return settings.recheck_suspect
    if state.health is Health.ALIVE:
        return settings.recheck_alive
    # Unknown after a non-blocked check (excluded): nothing to confirm soon.
    return settings.recheck_alive


def next_check_at(state: HealthState, status: Status, checked_at: datetime,
                  settings: HealthSettings, rng: random.Random) -> datetime:
    """When to check again: the interval, spread by +-``recheck_jitter`` so rechecks do not bunch."""
    jitter = max(0.0, min(settings.recheck_jitter, 1.0))
    seconds = recheck_interval(state, status, settings) * (1.0 + rng.uniform(-jitter, jitter))
    return checked_at + timedelta(seconds=seconds)


def is_due(next_check_at: datetime | None, now: datetime) -> bool:
    """Whether a link is due for a check (never scheduled counts as due)."""
    return next_check_at is None or _aware(next_check_at) <= _aware(now)
