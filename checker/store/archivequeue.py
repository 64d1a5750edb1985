"""Archive queue and snapshot queries (the only SQL the archive stage needs).

Writes go through ``store.begin()`` (BEGIN IMMEDIATE on SQLite, faults as StoreError).
The queue lives in ``archive_jobs`` so that a restart loses nothing and nothing is
submitted twice: (link, service, action) is unique, and a job that was submitted
keeps its external id (the SPN2 job_id) so it is polled, never re-sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import and_, delete, func, insert, or_, select, update

from ..archive.base import ArchiveJob, Fidelity, SnapshotRecord, StoredResource
from ..archive.policy import Action, ArchiveCandidate, JobState, PlannedJob
from ..logs import redact, secrets_from
from ..models import Health
from .schema import archive_jobs, archive_resources, links, snapshots, url_digest

__all__ = ["StoredSnapshot", "archive_candidates", "enqueue_jobs", "due_jobs", "update_job",
           "add_snapshot", "snapshots_for_url", "local_snapshot_with_digest", "saves_since",
           "job_counts", "local_snapshots", "drop_snapshot", "requeue_job", "jobs_for_url",
           "LANE_PAUSED", "lane_paused_until", "find_resources", "remember_resources", "StoreResourceIndex"]


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """A snapshots row with its id and its link's URL."""

    id: int
    link_id: int
    url: str
    record: SnapshotRecord


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything in linkhealth is aware UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


async def archive_candidates(store: Any) -> list[ArchiveCandidate]:
    """Every active link with its health, newest capture per service and job states."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(
            select(links.c.id, links.c.url, links.c.health, links.c.at_risk)
            .where(links.c.active.is_(True)).order_by(links.c.id))).all()
        caps = (await conn.execute(
            select(snapshots.c.link_id, snapshots.c.service, func.max(snapshots.c.captured_at))
            .group_by(snapshots.c.link_id, snapshots.c.service))).all()
        jobs = (await conn.execute(
            select(archive_jobs.c.link_id, archive_jobs.c.service, archive_jobs.c.action,
                   archive_jobs.c.state))).all()
    newest: dict[int, dict[str, datetime]] = {}
    for link_id, service, captured in caps:
        newest.setdefault(link_id, {})[service] = _utc(captured)
    states: dict[int, dict[tuple[str, str], JobState]] = {}
    for link_id, service, action, state in jobs:
        states.setdefault(link_id, {})[(service, action)] = JobState(state)
    return [ArchiveCandidate(r.id, r.url, Health(r.health or "unknown"), bool(r.at_risk),
                             newest.get(r.id, {}), states.get(r.id, {})) for r in rows]


async def enqueue_jobs(store: Any, jobs: Sequence[PlannedJob], now: datetime) -> int:
    """Queue planned jobs: insert new ones, re-arm finished saves; returns how many changed."""
    if not jobs:
        return 0
    changed = 0
    async with store.begin() as conn:
        existing = {(r.link_id, r.service, r.action): (r.id, r.state) for r in (await conn.execute(
            select(archive_jobs.c.id, archive_jobs.c.link_id, archive_jobs.c.service,
                   archive_jobs.c.action, archive_jobs.c.state)
            .where(archive_jobs.c.link_id.in_({j.link_id for j in jobs})))).all()}
        for job in jobs:
            key = (job.link_id, job.service, str(job.action))
            if key not in existing:
                await conn.execute(insert(archive_jobs).values(
                    link_id=job.link_id, service=job.service, action=str(job.action),
                    state=str(JobState.PENDING), attempts=0, next_try_at=None,
                    created_at=now, updated_at=now))
                changed += 1
            elif existing[key][1] == JobState.DONE.value:
                # A save done long ago (older than max_age): the policy wants a fresh copy.
                await conn.execute(update(archive_jobs).where(archive_jobs.c.id == existing[key][0])
                                   .values(state=str(JobState.PENDING), attempts=0, next_try_at=None,
                                           external_id=None, last_error=None, updated_at=now))
                changed += 1
    return changed


async def due_jobs(store: Any, now: datetime, *, limit: int | None = None,
                   services: Iterable[str] | None = None) -> list[ArchiveJob]:
    """Pending or submitted jobs whose time has come: submitted first, then at-risk, then age."""
    query = (select(archive_jobs, links.c.url, links.c.first_failing_at, links.c.at_risk)
             .join(links, links.c.id == archive_jobs.c.link_id)
             .where(archive_jobs.c.state.in_([JobState.PENDING.value, JobState.SUBMITTED.value]),
                    or_(archive_jobs.c.next_try_at.is_(None), archive_jobs.c.next_try_at <= now))
             .order_by((archive_jobs.c.state == JobState.SUBMITTED.value).desc(),
                       links.c.at_risk.desc(), archive_jobs.c.id))
    if services is not None:
        query = query.where(archive_jobs.c.service.in_(list(services)))
    if limit is not None:
        query = query.limit(limit)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [ArchiveJob(r.id, r.link_id, r.url, r.service, Action(r.action), r.state, r.attempts,
                       r.external_id, _utc(r.first_failing_at), bool(r.at_risk)) for r in rows]


async def update_job(store: Any, job_id: int, *, state: str, attempts: int, now: datetime,
                     next_try_at: datetime | None = None, external_id: str | None = None,
                     last_error: str | None = None,
                     snapshot: tuple[int, SnapshotRecord] | None = None) -> None:
    """Record a job's new state (and its snapshot, in the same transaction)."""
    async with store.begin() as conn:
        await conn.execute(update(archive_jobs).where(archive_jobs.c.id == job_id).values(
            state=state, attempts=attempts, next_try_at=next_try_at, external_id=external_id,
            last_error=_error_text(last_error), updated_at=now))
        if snapshot is not None:
            await _insert_snapshot(conn, snapshot[0], snapshot[1], now)


def _error_text(error: str | None) -> str | None:
    """An archive error as stored: secrets redacted, as in the logs. A service may echo the
    request, Authorization header included, in its error page; this is the one place
    archive errors enter the database, so the report, the API and ``archive show`` never
    see a key. The archive keys live in the environment only (LINKHEALTH_IA_*)."""
    return redact(error, secrets_from()) if error else error


async def add_snapshot(store: Any, link_id: int, snap: SnapshotRecord, now: datetime) -> None:
    """Insert one snapshots row."""
    async with store.begin() as conn:
        await _insert_snapshot(conn, link_id, snap, now)


async def _insert_snapshot(conn: Any, link_id: int, snap: SnapshotRecord, now: datetime) -> None:
    f = snap.fidelity
    measured = {} if f is None else dict(
        text_chars=f.text_chars, live_text_chars=f.live_text_chars, pictures_kept=f.pictures_kept,
        pictures_found=f.pictures_found, copy_bytes=f.copy_bytes, warc_bytes=f.warc_bytes,
        fidelity_note=f.note or None)
    await conn.execute(insert(snapshots).values(
        link_id=link_id, service=snap.service, archive_url=snap.archive_url,
        local_path=snap.local_path, warc_offset=snap.warc_offset, digest=snap.digest,
        captured_at=snap.captured_at, http_status=snap.http_status, created_at=now, **measured))


def fidelity_of(r: Any) -> Fidelity | None:
    """The fidelity figures of a snapshots row (None when it was not measured)."""
    if getattr(r, "text_chars", None) is None:
        return None
    return Fidelity(r.text_chars, r.live_text_chars or 0, r.pictures_kept or 0, r.pictures_found or 0,
                    r.copy_bytes or 0, r.warc_bytes or 0, r.fidelity_note or "")


def _record(r: Any) -> StoredSnapshot:
    return StoredSnapshot(r.id, r.link_id, r.url, SnapshotRecord(
        r.service, r.archive_url, _utc(r.captured_at), r.http_status, r.local_path,
        r.warc_offset, r.digest, fidelity_of(r)))


async def snapshots_for_url(store: Any, url: str) -> list[StoredSnapshot]:
    """Snapshots of a link given by normalized or displayed URL, newest first."""
    query = (select(snapshots, links.c.url).join(links, links.c.id == snapshots.c.link_id)
             .where(or_(links.c.url_hash == url_digest(url), links.c.display_url == url))
             .order_by(snapshots.c.captured_at.desc(), snapshots.c.id.desc()))
    async with store.engine.connect() as conn:
        return [_record(r) for r in (await conn.execute(query)).all()]


async def jobs_for_url(store: Any, url: str) -> list[dict]:
    """The archive jobs of a link (for ``archive show``)."""
    query = (select(archive_jobs).join(links, links.c.id == archive_jobs.c.link_id)
             .where(or_(links.c.url_hash == url_digest(url), links.c.display_url == url)).order_by(archive_jobs.c.id))
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [{**dict(r), "next_try_at": _utc(r["next_try_at"]), "updated_at": _utc(r["updated_at"]),
             "created_at": _utc(r["created_at"])} for r in rows]


async def local_snapshots(store: Any) -> list[StoredSnapshot]:
    """Every local snapshot (to validate their WARC files)."""
    query = (select(snapshots, links.c.url).join(links, links.c.id == snapshots.c.link_id)
             .where(snapshots.c.service == "local"))
    async with store.engine.connect() as conn:
        return [_record(r) for r in (await conn.execute(query)).all()]


async def local_snapshot_with_digest(store: Any, link_id: int, digest: str) -> SnapshotRecord | None:
    """A local copy of this link with the same payload digest (dedup), or None."""
    query = (select(snapshots, links.c.url).join(links, links.c.id == snapshots.c.link_id)
             .where(snapshots.c.link_id == link_id, snapshots.c.service == "local",
                    snapshots.c.digest == digest).order_by(snapshots.c.id.desc()).limit(1))
    async with store.engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return _record(row).record if row else None


async def drop_snapshot(store: Any, snapshot_id: int) -> None:
    """Delete a snapshot row whose file turned out to be unusable."""
    async with store.begin() as conn:
        await conn.execute(delete(snapshots).where(snapshots.c.id == snapshot_id))


async def requeue_job(store: Any, link_id: int, service: str, action: str, now: datetime,
                      reason: str) -> None:
    """Put a link's job back to pending (e.g. its local WARC was written halfway)."""
    async with store.begin() as conn:
        found = (await conn.execute(update(archive_jobs).where(and_(
            archive_jobs.c.link_id == link_id, archive_jobs.c.service == service,
            archive_jobs.c.action == action)).values(
            state=JobState.PENDING.value, attempts=0, next_try_at=None, external_id=None,
            last_error=_error_text(reason), updated_at=now))).rowcount
        if not found:
            await conn.execute(insert(archive_jobs).values(
                link_id=link_id, service=service, action=action, state=JobState.PENDING.value,
                attempts=0, last_error=_error_text(reason), created_at=now, updated_at=now))


async def saves_since(store: Any, service: str, since: datetime) -> int:
    """Saves sent to a service since a time (seeds the per-day budget after a restart)."""
    query = select(func.count()).select_from(archive_jobs).where(
        archive_jobs.c.service == service, archive_jobs.c.action == Action.SAVE.value,
        archive_jobs.c.attempts > 0, archive_jobs.c.updated_at >= since)
    async with store.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def job_counts(store: Any) -> dict[str, int]:
    """Number of jobs per state."""
    query = select(archive_jobs.c.state, func.count()).group_by(archive_jobs.c.state)
    async with store.engine.connect() as conn:
        return {state: int(n) for state, n in (await conn.execute(query)).all()}


#: Prefix of ``last_error`` on jobs deferred because their service's lane is paused
#: (429 or circuit breaker); the next run, even after a restart, reads the pause back.
LANE_PAUSED = "[lane paused] "


async def lane_paused_until(store: Any, service: str, now: datetime) -> datetime | None:
    """When a service's lane pause (recorded on its deferred jobs) ends, or None."""
    query = select(func.max(archive_jobs.c.next_try_at)).where(
        archive_jobs.c.service == service, archive_jobs.c.last_error.like(LANE_PAUSED + "%"),
        archive_jobs.c.next_try_at > now)
    async with store.engine.connect() as conn:
        return _utc((await conn.execute(query)).scalar_one_or_none())


async def find_resources(store: Any, digests: list[str]) -> dict[str, StoredResource]:
    """Resources written in full into local WARCs, by payload digest."""
    out: dict[str, StoredResource] = {}
    async with store.engine.connect() as conn:
        for start in range(0, len(digests), 500):      # bound the IN list
            rows = (await conn.execute(select(archive_resources).where(
                archive_resources.c.digest.in_(digests[start:start + 500])))).all()
            out.update({r.digest: StoredResource(r.digest, r.url, r.warc_date, r.warc_path) for r in rows})
    return out


async def remember_resources(store: Any, entries: list[StoredResource], now: datetime) -> None:
    """Record resources just written in full (a digest seen again points at the newest file)."""
    if not entries:
        return
    unique = {e.digest: e for e in entries}
    async with store.begin() as conn:
        await conn.execute(delete(archive_resources).where(archive_resources.c.digest.in_(list(unique))))
        await conn.execute(insert(archive_resources), [
            dict(digest=e.digest, url=e.url, warc_date=e.warc_date, warc_path=e.warc_path, created_at=now)
            for e in unique.values()])


class StoreResourceIndex:
    """The local backend's ResourceIndex on the database (archive_resources)."""

    def __init__(self, store: Any, now: Any) -> None:
        self.store = store
        self.now = now

    async def find(self, digests: list[str]) -> dict[str, StoredResource]:
        """Stored resources by payload digest."""
        return await find_resources(self.store, digests)

    async def remember(self, entries: list[StoredResource]) -> None:
        """Record resources just written in full."""
        await remember_resources(self.store, entries, self.now())
