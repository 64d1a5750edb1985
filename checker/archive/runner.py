"""Planning and running the archive queue: what the CLI, ``audit --archive`` and the daemon call.

``plan_archive`` runs the pure policy over the links and queues jobs; ``run_archive``
runs the due jobs once through each service's slow lane (pending -> submitted ->
done | failed | not-archivable), recording attempts, next_try_at, the last error and
snapshots. Clocks and sleeps are injected so tests never wait real minutes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

from ..errors import ArchiveError
from ..settings import Settings
from ..store import archivequeue as aq
from .base import ArchiveJob, ArchiveResult, Backend, Fidelity, Outcome, Registry, SnapshotRecord
from .policy import Action, JobState, PlannedJob, plan
from .queue import CircuitBreaker, DayWindow, Lane, TokenBucket, backoff_delay
from .stop import ArchiveStopped, checkpoint, gated_fetcher, never_stopped, stoppable_sleep

__all__ = ["PlanSummary", "ArchiveSummary", "SnapshotInfo", "plan_archive", "run_archive",
           "show_snapshots", "best_snapshot", "save_services", "LEASE_NAME", "LEASE_TTL", "QUEUE_BUSY"]

log = logging.getLogger("linkhealth.archive")

#: One runner works the queue at a time (``linkhealth archive``, ``audit --archive`` and the
#: daemon's archive job may run at once on one database): it holds this database lease for
#: its whole run, renewed every LEASE_TTL/3 seconds, so a save is never POSTed twice and the
#: per-service rate limits are not multiplied by the number of runners.
LEASE_NAME = "archive"
LEASE_TTL = 120.0
#: The event of a run that found the lease held by another runner (it did nothing).
QUEUE_BUSY = "another archive run holds the queue; nothing was done"

Progress = Callable[[int, int, str], None]   # (done, total, message)


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """What planning queued."""

    candidates: int
    planned: tuple[PlannedJob, ...]
    enqueued: int
    counts: Mapping[str, int] = field(default_factory=dict)   # "service:action" -> planned


@dataclass(frozen=True, slots=True)
class ArchiveSummary:
    """What one run of the queue did; ``events`` says when a lane paused and why."""

    due: int
    outcomes: Mapping[str, int]                 # done/submitted/retry/failed/not-archivable/skipped/deferred
    snapshots: int
    events: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    dry_run: bool = False
    jobs: tuple[ArchiveJob, ...] = ()           # the due jobs (what a dry run would do)


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """One copy of a link, for ``linkhealth archive show URL``."""

    url: str
    service: str
    archive_url: str | None
    local_path: str | None
    captured_at: datetime
    http_status: int | None
    digest: str | None
    available: bool     # local: the WARC file is there; wayback: always True
    fidelity: Fidelity | None = None     # local copies: measured after writing


def save_services(settings: Settings, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Configured services able to save now (wayback needs keys or anonymous_save)."""
    from .wayback import IAKeys
    env = os.environ if environ is None else environ
    out = []
    for service in settings.archive.services:
        if service == "local" or (service == "wayback" and (
                IAKeys.from_env(env) is not None or settings.archive.anonymous_save)):
            out.append(service)
    return tuple(out)


async def plan_archive(store: Any, settings: Settings, now: datetime, *,
                       environ: Mapping[str, str] | None = None, dry_run: bool = False) -> PlanSummary:
    """Run the archive policy over the active links and queue the jobs it wants
    (``dry_run``: only say which; the queue is not touched)."""
    candidates = await aq.archive_candidates(store)
    planned = plan(candidates, settings.archive, now, save_services(settings, environ))
    enqueued = 0 if dry_run else await aq.enqueue_jobs(store, planned, now)
    counts = Counter(f"{j.service}:{j.action}" for j in planned)
    return PlanSummary(len(candidates), tuple(planned), enqueued, dict(counts))


async def show_snapshots(store: Any, url: str) -> list[SnapshotInfo]:
    """Every copy of a link (newest first), local ones checked for their file."""
    out = []
    for s in await aq.snapshots_for_url(store, url):
        r = s.record
        available = r.service != "local" or bool(r.local_path and Path(r.local_path).is_file())
        out.append(SnapshotInfo(s.url, r.service, r.archive_url, r.local_path, r.captured_at,
                                r.http_status, r.digest, available, r.fidelity))
    return out


def best_snapshot(records: list[SnapshotRecord]) -> SnapshotRecord | None:
    """The copy a reader should get: the newest good Wayback capture, else the newest local copy."""
    def rank(r: SnapshotRecord) -> tuple:
        return (r.service == "wayback", r.http_status in (None, 200), r.captured_at)
    usable = [r for r in records if r.archive_url]
    return max(usable, key=rank) if usable else None


async def run_archive(store: Any, settings: Settings, *, now_fn: Callable[[], datetime],
                      limit: int | None = None, dry_run: bool = False,
                      progress: Progress | None = None, environ: Mapping[str, str] | None = None,
                      sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                      clock: Callable[[], float] = time.monotonic,
                      backends: list[Backend] | None = None,
                      lease_ttl: float = LEASE_TTL, stop: asyncio.Event | None = None) -> ArchiveSummary:
    """Run the due archive jobs once through their slow lanes; outcomes go to the database.

    The run holds the database lease ``archive`` throughout; when another runner holds it,
    nothing is done and the summary's events say so (QUEUE_BUSY).
    """
    if dry_run:
        # Only the configured services: a job queued for a service since removed is not run.
        jobs = await aq.due_jobs(store, now_fn(), limit=limit, services=settings.archive.services)
        return ArchiveSummary(len(jobs), dict(Counter(f"{j.service}:{j.action}" for j in jobs)),
                              0, dry_run=True, jobs=tuple(jobs))
    if stop is not None:
        # From the stop on, no wait and no request starts (see checker.archive.stop).
        sleep = stoppable_sleep(sleep, stop)
    check = checkpoint(stop)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    # The lease runs on the wall clock, not now_fn: it is shared with other processes.
    if not await store.acquire_lease(LEASE_NAME, owner, lease_ttl, _wall_now()):
        log.info("archive queue skipped: %s", QUEUE_BUSY)
        return ArchiveSummary(0, {}, 0, events=(QUEUE_BUSY,))
    lost = asyncio.Event()
    renewer = asyncio.create_task(_keep_lease(store, owner, lease_ttl, lost), name="archive-lease")
    runner = _Runner(store, settings, now_fn, sleep, clock)
    jobs: list[ArchiveJob] = []
    try:
        async with _Sessions(settings) as sessions:
            registry = Registry(backends) if backends is not None else Registry(
                _default_backends(settings, sessions, runner, environ, sleep, clock, store, check))
            await runner.start(registry)    # may re-queue saves whose WARC was lost
            jobs = await aq.due_jobs(store, now_fn(), limit=limit)
            for done, job in enumerate(jobs, 1):
                if lost.is_set():
                    runner.events.append("the archive lease was lost (another runner took the queue); "
                                         f"stopped with {len(jobs) - done + 1} jobs left for later")
                    break
                try:
                    message = await runner.one(registry, job)
                except ArchiveStopped:
                    runner.events.append(f"stopped on request with {len(jobs) - done + 1} jobs left for later")
                    break
                if progress is not None:
                    progress(done, len(jobs), message)
    finally:
        renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)
        try:
            await store.release_lease(LEASE_NAME, owner)    # a no-op when it is no longer ours
        except Exception as exc:  # noqa: BLE001 - it expires after lease_ttl anyway
            log.warning("could not release the archive lease: %s", exc)
    return runner.summary(len(jobs))


def _wall_now() -> datetime:
    return datetime.now(timezone.utc)


async def _keep_lease(store: Any, owner: str, ttl: float, lost: asyncio.Event) -> None:
    """Renew the archive lease every ttl/3 (real seconds); set ``lost`` when it is gone."""
    renewed = time.monotonic()
    while True:
        await asyncio.sleep(max(ttl / 3, 0.05))
        try:
            if await store.renew_lease(LEASE_NAME, owner, ttl, _wall_now()):
                renewed = time.monotonic()
                continue
        except Exception as exc:  # noqa: BLE001 - a database hiccup: retry while the lease lasts
            log.warning("could not renew the archive lease: %s", exc)
            if time.monotonic() - renewed < ttl:
                continue
        log.error("archive lease lost: another runner may work the queue; stopping this run")
        lost.set()
        return


class _Sessions:
    """The HTTP sessions of one run: one for the Wayback service, one for fetching pages."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.wayback = None
        self.pages = None

    async def __aenter__(self) -> "_Sessions":
        import aiohttp
        ua = {"User-Agent": self.settings.check.user_agent}
        self.wayback = aiohttp.ClientSession(headers=ua)
        # Pages are fetched like probes: --connect-to, the CA file and the SSRF rules apply.
        from ..http import create_session
        self.pages = create_session(self.settings)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for session in (self.wayback, self.pages):
            if session is not None:
                await session.close()


def _default_backends(settings: Settings, sessions: _Sessions, runner: "_Runner",
                      environ: Mapping[str, str] | None, sleep: Any, clock: Any, store: Any,
                      check: Callable[[], None] = never_stopped) -> list[Backend]:
    from .local import LocalBackend, http_fetcher
    from .wayback import WaybackBackend
    out: list[Backend] = []
    for service in settings.archive.services:
        if service == "local":
            fetch = gated_fetcher(http_fetcher(sessions.pages, settings.check.max_redirects), check)
            out.append(LocalBackend(settings, fetch,
                                    now=runner.now_fn,
                                    known_digest=lambda link_id, d: aq.local_snapshot_with_digest(store, link_id, d),
                                    resource_index=aq.StoreResourceIndex(store, runner.now_fn)))
        elif service == "wayback":
            out.append(WaybackBackend(settings, sessions.wayback, runner.lane("wayback"),
                                      environ=environ, sleep=sleep, clock=clock, checkpoint=check))
    return out


class _Runner:
    """The state of one queue run: lanes, counters, events."""

    def __init__(self, store: Any, settings: Settings, now_fn: Callable[[], datetime],
                 sleep: Any, clock: Any) -> None:
        self.store, self.settings, self.cfg = store, settings, settings.archive
        self.now_fn, self.sleep, self.clock = now_fn, sleep, clock
        self.lanes: dict[str, Lane] = {}
        self.outcomes: Counter[str] = Counter()
        self.snapshots = 0
        self.errors: list[str] = []
        self.events: list[str] = []
        self.disabled: set[str] = set()

    def lane(self, service: str) -> Lane:
        """The slow lane of a service (local has no rate limit: it asks no one)."""
        if service not in self.lanes:
            limited = service != "local"
            self.lanes[service] = Lane(
                service,
                TokenBucket(self.cfg.captures_per_minute if limited else 0, clock=self.clock),
                TokenBucket(self.cfg.lookups_per_minute if limited else 0, clock=self.clock),
                DayWindow(self.cfg.captures_per_day if limited else 0, clock=self.clock),
                CircuitBreaker(self.cfg.breaker_failures, self.cfg.breaker_pause, clock=self.clock),
                clock=self.clock, sleep=self.sleep)
        return self.lanes[service]

    async def start(self, registry: Registry) -> None:
        """Restore lane pauses and day budgets; prepare the local archive."""
        now = self.now_fn()
        for backend in registry:
            lane = self.lane(backend.name)
            until = await aq.lane_paused_until(self.store, backend.name, now)
            if until is not None:
                lane.paused_until = self.clock() + (until - now).total_seconds()
            used = await aq.saves_since(self.store, backend.name, now - timedelta(days=1))
            lane.day = DayWindow(lane.day.limit, clock=self.clock, used=used)
            if hasattr(backend, "prepare"):
                await self._prepare(backend)

    async def _prepare(self, backend: Any) -> None:
        try:
            backend.prepare()
        except ArchiveError as exc:
            self._disable(backend.name, str(exc))
            return
        # A snapshot whose WARC is gone (deleted, or never finished) is never served: drop it
        # and queue the save again.
        for snap in await aq.local_snapshots(self.store):
            path = snap.record.local_path
            if path and not Path(path).is_file():
                await aq.drop_snapshot(self.store, snap.id)
                await aq.requeue_job(self.store, snap.link_id, "local", "save", self.now_fn(),
                                     f"WARC file missing: {path}")
                log.warning("local copy of %s lost (%s); queued again", snap.url, path)

    def _disable(self, service: str, message: str) -> None:
        self.disabled.add(service)
        self.errors.append(message)
        log.error("%s", message)

    async def one(self, registry: Registry, job: ArchiveJob) -> str:
        """Run one job through its lane; returns a short progress message."""
        backend = registry.get(job.service)
        if backend is None or job.service in self.disabled or not backend.should_run(job):
            self.outcomes["skipped"] += 1
            return f"{job.service} {job.action} skipped: {job.url}"
        lane = self.lane(job.service)
        wait = lane.blocked()
        if wait is not None:
            await self._defer(job, wait, lane.pause_reason or "service paused")
            return f"{job.service} deferred: {job.url}"
        if job.action is Action.SAVE and not job.external_id and job.service != "local":
            if not await lane.acquire(save=True):
                await self._defer(job, 3600.0, "daily capture budget spent", mark=False)
                return f"{job.service} deferred (daily budget): {job.url}"
        try:
            result = await backend.run(job)
            if result.outcome is Outcome.SUBMITTED and result.external_id and not job.external_id:
                await self._record(job, replace(result, error=None), count=False)
                job = replace(job, external_id=result.external_id, state=JobState.SUBMITTED.value)
                result = await backend.run(job)
        except ArchiveError as exc:
            # Folder not writable, disk full: the job keeps its state for a later run.
            self._disable(job.service, str(exc))
            self.outcomes["skipped"] += 1
            return f"{job.service} error: {exc}"
        await self._record(job, result)
        return f"{job.service} {job.action} {result.outcome}: {job.url}"

    async def _defer(self, job: ArchiveJob, wait: float, reason: str, mark: bool = True) -> None:
        now = self.now_fn()
        error = (aq.LANE_PAUSED if mark else "") + reason
        await aq.update_job(self.store, job.id, state=job.state, attempts=job.attempts, now=now,
                            next_try_at=now + timedelta(seconds=wait), external_id=job.external_id,
                            last_error=error)
        self.outcomes["deferred"] += 1

    async def _record(self, job: ArchiveJob, result: ArchiveResult, count: bool = True) -> None:
        now = self.now_fn()
        lane = self.lane(job.service)
        attempts = job.attempts + 1
        state, next_try, error = _state_for(result), None, result.error
        # Keep the job_id for provenance; drop it only when the save must be sent again.
        external = result.external_id or job.external_id
        if result.outcome in (Outcome.DONE, Outcome.NOT_ARCHIVABLE, Outcome.SUBMITTED):
            lane.breaker.success()
        if result.outcome is Outcome.SUBMITTED and count:
            next_try = now + timedelta(seconds=backoff_delay(attempts, self.cfg.poll_timeout))
        if result.outcome is Outcome.RETRY:
            external = result.external_id   # None: SPN2 failed this job_id; send a new save
            state = JobState.SUBMITTED if external else JobState.PENDING
            wait = backoff_delay(attempts, self.cfg.backoff_429)
            if result.rate_limited:
                wait = max(wait, lane.rate_limited(result.retry_after))
                lane.pause_reason = f"{job.service} answered 429 / busy; waiting"
                error = aq.LANE_PAUSED + (error or "")
            elif result.service_down:
                lane.down(error)
                if lane.breaker.is_open():
                    wait = max(wait, lane.breaker.open_until - self.clock())
                    lane.pause_reason = f"{job.service} paused by the circuit breaker"
                    error = aq.LANE_PAUSED + (error or "")
            next_try = now + timedelta(seconds=max(wait, result.retry_after or 0))
        if state in (JobState.PENDING, JobState.SUBMITTED) and count and attempts >= self.cfg.max_attempts:
            state, next_try = JobState.FAILED, None
            error = f"gave up after {attempts} attempts: {(error or '').removeprefix(aq.LANE_PAUSED)}"
        snapshot = (job.link_id, result.snapshot) if result.snapshot is not None else None
        await aq.update_job(self.store, job.id, state=state.value, attempts=attempts, now=now,
                            next_try_at=next_try, external_id=external, last_error=error,
                            snapshot=snapshot)
        if count:
            self.outcomes[state.value if state is not JobState.PENDING else "retry"] += 1
        self.snapshots += snapshot is not None
        if state is JobState.DONE:
            where = result.snapshot.archive_url or result.snapshot.local_path if result.snapshot else None
            log.info("archive %s %s %s: done%s", job.service, job.action, job.url,
                     f" -> {where}" if where else f" ({error})" if error else "")
        elif error:
            log.info("archive %s %s %s: %s", job.service, job.action, job.url,
                     error.removeprefix(aq.LANE_PAUSED))

    def summary(self, due: int) -> ArchiveSummary:
        """The counters of this run."""
        events = tuple(e for lane in self.lanes.values() for e in lane.events) + tuple(self.events)
        return ArchiveSummary(due, dict(self.outcomes), self.snapshots, events, tuple(self.errors))


def _state_for(result: ArchiveResult) -> JobState:
    return {Outcome.DONE: JobState.DONE, Outcome.SUBMITTED: JobState.SUBMITTED,
            Outcome.RETRY: JobState.PENDING, Outcome.FAILED: JobState.FAILED,
            Outcome.NOT_ARCHIVABLE: JobState.NOT_ARCHIVABLE}[result.outcome]
