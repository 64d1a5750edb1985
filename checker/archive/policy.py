"""The archive decision: which links to save or look up (a pure function, table-tested).

Facts that shape it (issue 5): saving a page that is already dead captures only its
error page, so at-risk links are SAVED while alive; for suspect or dead links the best
thing left is to LOOK UP an existing capture made before the link started failing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Mapping

from ..models import Health
from ..settings import ArchiveSettings

__all__ = ["Action", "JobState", "ArchiveCandidate", "PlannedJob", "decide", "plan",
           "ACTIVE_STATES", "FINAL_STATES"]


class Action(str, enum.Enum):
    """What an archive job does."""

    SAVE = "save"
    LOOKUP = "lookup"

    def __str__(self) -> str:
        return self.value


class JobState(str, enum.Enum):
    """Where an archive job is in the queue (archive_jobs.state)."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    DONE = "done"
    FAILED = "failed"
    NOT_ARCHIVABLE = "not-archivable"

    def __str__(self) -> str:
        return self.value


#: States in which a job is still queued: planning must not add it again.
ACTIVE_STATES = frozenset({JobState.PENDING, JobState.SUBMITTED})
FINAL_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.NOT_ARCHIVABLE})

#: Services that can look up existing captures (the local archive has no past to search).
LOOKUP_SERVICES = ("wayback",)


@dataclass(frozen=True, slots=True)
class ArchiveCandidate:
    """What the policy knows about one active link (read from the links/snapshots/jobs rows)."""

    link_id: int
    url: str
    health: Health
    at_risk: bool = False
    newest_capture: Mapping[str, datetime] = field(default_factory=dict)  # service -> captured_at
    jobs: Mapping[tuple[str, str], JobState] = field(default_factory=dict)  # (service, action) -> state


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """One job the policy wants queued; ``priority`` 0 is most urgent (at-risk first)."""

    link_id: int
    url: str
    service: str
    action: Action
    priority: int = 1


def decide(c: ArchiveCandidate, settings: ArchiveSettings, now: datetime,
           save_services: Iterable[str]) -> list[PlannedJob]:
    """The jobs one link needs now. ``save_services``: services able to save (keys, config)."""
    out: list[PlannedJob] = []
    if c.health is Health.ALIVE:
        wanted = c.at_risk or settings.archive_all
        for service in save_services:
            if wanted and _save_due(c, service, settings, now):
                out.append(PlannedJob(c.link_id, c.url, service, Action.SAVE, 0 if c.at_risk else 1))
    elif c.health in (Health.SUSPECT, Health.DEAD) and not c.newest_capture:
        for service in LOOKUP_SERVICES:
            if service in settings.services and (service, "lookup") not in c.jobs:
                out.append(PlannedJob(c.link_id, c.url, service, Action.LOOKUP, 0))
    return out


def _save_due(c: ArchiveCandidate, service: str, settings: ArchiveSettings, now: datetime) -> bool:
    state = c.jobs.get((service, "save"))
    if state in ACTIVE_STATES or state in (JobState.FAILED, JobState.NOT_ARCHIVABLE):
        # Queued already (never submit twice), or given up on: a human must look.
        return False
    newest = c.newest_capture.get(service)
    if newest is None:
        return True
    if not c.at_risk:
        # archive_all saves every alive link ONCE (issue 5); only at-risk links are refreshed.
        return False
    return now - newest > timedelta(days=settings.max_age_days)


def plan(candidates: Iterable[ArchiveCandidate], settings: ArchiveSettings, now: datetime,
         save_services: Iterable[str]) -> list[PlannedJob]:
    """Every job the candidates need, at-risk first, in a stable order."""
    services = [s for s in settings.services if s in set(save_services)]
    jobs = [job for c in candidates for job in decide(c, settings, now, services)]
    return sorted(jobs, key=lambda j: (j.priority, j.link_id, settings.services.index(j.service)
                                       if j.service in settings.services else 99))
