"""Plain objects the store hands out: a link's state, the counts of a notes sync."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from ..models import Health, HealthState, Status

__all__ = ["LinkState", "SyncStats", "link_state_from_row", "health_state_from_row", "HEALTH_COLUMNS"]


@dataclass(frozen=True, slots=True)
class LinkState:
    """One link row as the planner and the pipeline see it."""

    id: int
    url: str
    display_url: str
    host: str
    active: bool
    at_risk: bool
    status: Status | None            # latest check's status (a str enum), None: never checked
    checked_at: datetime | None
    next_check_at: datetime | None
    health_state: HealthState
    http_status: int | None = None
    error: str | None = None
    title: str | None = None
    final_url: str | None = None
    latency_ms: int | None = None

    @property
    def health(self) -> Health:
        """Shortcut for ``health_state.health``."""
        return self.health_state.health


@dataclass(frozen=True, slots=True)
class SyncStats:
    """What one :meth:`Store.sync_notes` changed."""

    notes_new: int = 0
    notes_changed: int = 0
    notes_deleted: int = 0
    notes_unchanged: int = 0
    links_new: int = 0
    links_deactivated: int = 0
    links_reactivated: int = 0
    occurrences: int = 0            # occurrences written (replaced notes only)


def _status(value: str | None) -> Status | None:
    if value is None:
        return None
    try:
        return Status(value)
    except ValueError:      # a word from a newer version: keep it readable, not fatal
        return value  # type: ignore[return-value]


def _health(value: str | None) -> Health:
    try:
        return Health(value or "unknown")
    except ValueError:
        return Health.UNKNOWN


#: The ``links`` columns a HealthState is built from, in health_state_from_row's order.
HEALTH_COLUMNS = ("health", "fail_streak", "first_failing_at", "dead_since", "revived_at")


def health_state_from_row(health: str | None, fail_streak: int | None, first_failing_at: datetime | None,
                          dead_since: datetime | None, revived_at: datetime | None) -> HealthState:
    """Build a HealthState from the values of HEALTH_COLUMNS of one ``links`` row."""
    return HealthState(health=_health(health), fail_streak=fail_streak or 0,
                       first_failing_at=first_failing_at, dead_since=dead_since, revived_at=revived_at)


def link_state_from_row(row: Mapping[str, Any]) -> LinkState:
    """Build a LinkState from a ``links`` row mapping (datetimes already UTC-aware)."""
    return LinkState(
        id=row["id"], url=row["url"], display_url=row["display_url"], host=row["host"],
        active=bool(row["active"]), at_risk=bool(row["at_risk"]), status=_status(row["status"]),
        checked_at=row["checked_at"], next_check_at=row["next_check_at"],
        health_state=health_state_from_row(row["health"], row["fail_streak"], row["first_failing_at"],
                                           row["dead_since"], row["revived_at"]),
        http_status=row["http_status"], error=row["error"], title=row["title"],
        final_url=row["final_url"], latency_ms=row["latency_ms"],
    )
