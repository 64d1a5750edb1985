"""The cluster runner: procrastinate on PostgreSQL (the only module that imports procrastinate).

    producer   :func:`enqueue_due`  due links -> one ``check_slot`` job per host slot
    worker     :func:`run_worker`   ``linkhealth worker``: runs check_slot, archive_lane and
                                     the periodic ``retry_stalled``
    archive    :func:`enqueue_archive` one ``archive_lane`` job, one lock across the cluster

The producer is the daemon (one active, by its lease): it already scans the notes (which live
where it runs), knows from the database what is due, and wakes its check job after a scan.
procrastinate's periodic tasks would fire every minute whatever the data says, and still
need a process that scans. Two producers at once are harmless all the same: the queueing
lock admits one waiting job per host slot, and a slot job reads what is due when it runs.

Stalled jobs (their worker's heartbeat stopped: kill -9, a machine gone) are retried by the
periodic task ``retry_stalled``, which any live worker runs (procrastinate defers each
periodic tick once per cluster).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from procrastinate import App, PsycopgConnector, exceptions as pexc, jobs as pjobs

from ..errors import StoreError
from ..http import create_session
from ..logs import log_event
from ..pipeline import utcnow
from ..rules import RuleSet, load_rules
from ..settings import Settings
from ..store import Store, cluster as q, normalize_url
from .body import run_slot
from .pace import DbClock, PaceSource, pace_for
from .slots import LOCK_PREFIX, SlotJob, plan_slot_jobs

__all__ = ["build_app", "conninfo", "enqueue_due", "enqueue_archive", "run_worker", "retry_stalled_jobs",
           "ProduceOutcome", "CHECK_QUEUE", "ARCHIVE_QUEUE"]

log = logging.getLogger("linkhealth.cluster")

CHECK_QUEUE, ARCHIVE_QUEUE, MAINTENANCE_QUEUE = "checks", "archive", "maintenance"
ARCHIVE_LOCK = "archive:lane"   # Save Page Now's limits are per account: one lane cluster-wide
DEFER_CHUNK = 500
QUEUE_TIMEOUT = 5.0     # seconds a queue operation waits for a database connection
WRITE_WINDOW = 0.05     # seconds: how long a finished check may wait for its commit


def conninfo(db_url: str) -> str:
    """The libpq URI of a linkhealth PostgreSQL URL (its query, e.g. options, kept)."""
    url = normalize_url(db_url)
    if url.get_backend_name() != "postgresql":
        from ..errors import ConfigError
        raise ConfigError("the cluster mode needs PostgreSQL: pass --db postgresql+asyncpg://USER@HOST/DB "
                          f"(got {url.get_backend_name()})")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class _Context:
    """What the tasks of one worker process share (set when the worker starts)."""

    settings: Settings
    store: Any = None
    rules: RuleSet | None = None
    pace: PaceSource | None = None
    stop: asyncio.Event | None = None
    stats: "_Stats | None" = None
    session: Any = None         # one HTTP session for all the jobs of this worker
    clock: Any = None           # the database's clock, read once (DbClock)


def _cron(seconds: float) -> str:
    """A cron line firing every ``seconds`` (a sixth field for seconds below a minute)."""
    if seconds < 60:
        return f"* * * * * */{max(1, int(seconds))}"
    return f"*/{max(1, int(seconds // 60))} * * * *"


def build_app(settings: Settings, ctx: _Context | None = None) -> App:
    """The procrastinate App of a database, with linkhealth's tasks registered."""
    ctx = ctx or _Context(settings)
    # timeout: how long a queue operation waits for a connection. psycopg_pool's 30 s default
    # would keep a worker cut off from the database in its shutdown for minutes.
    app = App(connector=PsycopgConnector(conninfo=conninfo(settings.db_url), min_size=1,
                                         max_size=max(4, 2 + settings.check.concurrency // 8),
                                         timeout=QUEUE_TIMEOUT))

    @app.task(name="check_slot", queue=CHECK_QUEUE, pass_context=True)
    async def check_slot(context: Any, host: str, slot: int, slots: int, run_id: int | None = None) -> dict:
        job = SlotJob(host=host, slot=slot, slots=slots, run_id=run_id)
        assert ctx.store is not None and ctx.rules is not None and ctx.pace is not None
        if ctx.stats:
            ctx.stats.in_flight += 1
        try:
            out = await run_slot(ctx.store, ctx.settings, ctx.rules, ctx.pace, job,
                                 progress=ctx.stats, stop=ctx.stop, session=ctx.session,
                                 clock=ctx.clock)
        except StoreError as exc:
            # No start can be booked and no result stored: this job stops here; what it
            # did not store stays due, and the job is retried once its worker is seen dead.
            log_event(log, "slot.database_lost", host=host, slot=slot, error=str(exc)[:300],
                      level=logging.ERROR)
            raise
        finally:
            if ctx.stats:
                ctx.stats.in_flight -= 1
        return {"checked": out.check.checked, "rounds": out.rounds}

    @app.task(name="archive_lane", queue=ARCHIVE_QUEUE, lock=ARCHIVE_LOCK, queueing_lock=ARCHIVE_LOCK)
    async def archive_lane(limit: int | None = None) -> dict:
        from ..archive import run_archive
        summary = await run_archive(ctx.store, ctx.settings, now_fn=utcnow, limit=limit)
        return {"jobs": getattr(summary, "jobs_run", None) if not isinstance(summary, dict) else None}

    @app.periodic(cron=_cron(settings.cluster.stalled_check), periodic_id="stalled")
    @app.task(name="retry_stalled", queue=MAINTENANCE_QUEUE, queueing_lock="retry_stalled")
    async def retry_stalled(timestamp: int) -> int:
        return await retry_stalled_jobs(app, settings.cluster.stalled_after)

    return app


async def retry_stalled_jobs(app: App, stalled_after: float) -> int:
    """Put the jobs of workers silent for ``stalled_after`` seconds back in the queue."""
    retried = 0
    for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after):
        try:
            await app.job_manager.retry_job(job)
            retried += 1
            log_event(log, "job.retried_stalled", job_id=job.id, task=job.task_name, lock=job.lock,
                      worker_id=job.worker_id, reason=f"its worker sent no heartbeat for {stalled_after:g}s",
                      level=logging.WARNING)
        except pexc.ConnectorException as exc:
            # A job for the same slot already waits (the producer queued one meanwhile): it
            # reads what is due when it runs, so it does this job's work too.
            await app.job_manager.finish_job(job, status=pjobs.Status.FAILED, delete_job=False)
            log_event(log, "job.stalled_covered", job_id=job.id, lock=job.lock,
                      reason=f"a waiting job of the same slot covers it ({type(exc).__name__})",
                      level=logging.WARNING)
    return retried


# -- producer -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProduceOutcome:
    """One producer cycle: due links read, jobs queued, slots already queued."""

    due: int
    queued: int
    already: int
    run_id: int | None


async def enqueue_due(store: Any, app: App, settings: Settings, pace: PaceSource) -> ProduceOutcome:
    """Queue one ``check_slot`` job per host slot that has due links (database clock)."""
    due = await q.due_hashes(store, settings.cluster.enqueue_limit)
    if not due:
        return ProduceOutcome(0, 0, 0, None)
    queued = frozenset(await q.queued_locks(store, LOCK_PREFIX))
    jobs = plan_slot_jobs(due, lambda host: pace.limits(host).per_host, skip_locks=queued)
    if not jobs:    # every slot with due links already waits: no run row for an idle tick
        log_event(log, "cluster.enqueued", due=len(due), jobs=0, already_queued=len(queued))
        return ProduceOutcome(len(due), 0, len(queued), None)
    run_id = await store.start_run("cluster", utcnow())
    jobs = [dataclasses.replace(job, run_id=run_id) for job in jobs]
    added, already = await _defer(app, jobs)
    already += len(queued)
    await store.finish_run(run_id, state="done", now=utcnow(), links_total=len(due),
                           message=f"queued {added} host-slot jobs for {len(due)} due links "
                                   f"({already} slots already queued)")
    log_event(log, "cluster.enqueued", run_id=run_id, due=len(due), jobs=added, already_queued=already)
    return ProduceOutcome(len(due), added, already, run_id)


def _job(slot: SlotJob) -> pjobs.Job:
    return pjobs.Job(queue=CHECK_QUEUE, task_name="check_slot", lock=slot.lock, queueing_lock=slot.lock,
                     task_kwargs=slot.kwargs())


async def _defer(app: App, slots: list[SlotJob]) -> tuple[int, int]:
    """Defer in chunks; a chunk refused by the queueing lock (another producer) goes one by one."""
    added = already = 0
    for start in range(0, len(slots), DEFER_CHUNK):
        chunk = [_job(s) for s in slots[start:start + DEFER_CHUNK]]
        try:
            await app.job_manager.batch_defer_jobs_async(chunk)
            added += len(chunk)
            continue
        except pexc.AlreadyEnqueued:
            pass
        for job in chunk:
            try:
                await app.job_manager.defer_job_async(job)
                added += 1
            except pexc.AlreadyEnqueued:
                already += 1
    return added, already


async def enqueue_archive(app: App, limit: int | None) -> bool:
    """Queue one archive run on the archive lane; False when one already waits."""
    try:
        await app.job_manager.defer_job_async(pjobs.Job(
            queue=ARCHIVE_QUEUE, task_name="archive_lane", lock=ARCHIVE_LOCK, queueing_lock=ARCHIVE_LOCK,
            task_kwargs={"limit": limit}))
        return True
    except pexc.AlreadyEnqueued:
        return False


async def produce(store: Any, settings: Settings, rules: RuleSet) -> ProduceOutcome:
    """The daemon's check job in cluster mode: one producer cycle on its own connection pool."""
    app = build_app(settings)
    async with app.open_async():
        return await enqueue_due(store, app, settings, pace_for(settings.check, rules.host_policy))


async def produce_archive(settings: Settings, limit: int | None) -> bool:
    """The daemon's archive job in cluster mode: queue the archive lane's run."""
    app = build_app(settings)
    async with app.open_async():
        return await enqueue_archive(app, limit)


# -- worker ---------------------------------------------------------------------------------


class _Stats:
    """This worker's counters: the check stage's progress sink, written to cluster_workers."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = 0
        self.in_flight = 0
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque([(clock(), 0)])

    def start(self, total: int) -> None:
        """Nothing to do when a batch starts."""

    def advance(self, result: Any) -> None:
        """Count one finished check."""
        self.total += 1

    def per_minute(self) -> float:
        """Checks per minute over the last minute (or since start, when younger)."""
        now = self._clock()
        self._samples.append((now, self.total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= 60:
            self._samples.popleft()
        t0, n0 = self._samples[0]
        return 0.0 if now - t0 <= 0 else (self.total - n0) * 60.0 / (now - t0)


async def _report_loop(ctx: _Context, name: str) -> None:
    """Write this worker's row every report_every seconds; a failure is logged, not fatal."""
    assert ctx.stats is not None
    failing = False
    while True:
        try:
            await q.report_worker(ctx.store, name, checks_total=ctx.stats.total,
                                  per_minute=ctx.stats.per_minute(), in_flight=ctx.stats.in_flight)
            failing = False
        except Exception as exc:  # noqa: BLE001 - the database may be away: the heartbeat decides
            if not failing:     # once per outage, not every few seconds
                log_event(log, "worker.report_failed", error=str(exc)[:200], level=logging.WARNING)
            failing = True
        await asyncio.sleep(ctx.settings.cluster.report_every)


async def run_worker(settings: Settings, *, name: str | None = None, concurrency: int | None = None,
                     install_signals: bool = True) -> int:
    """``linkhealth worker``: run jobs until SIGTERM/SIGINT; reconnect while the database is away."""
    name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    concurrency = concurrency or settings.check.concurrency
    ctx = _Context(settings, rules=load_rules(settings.health), stop=asyncio.Event(), stats=_Stats())
    ctx.pace = pace_for(settings.check, ctx.rules.host_policy)
    stopping = asyncio.Event()
    current: list[asyncio.Task] = []

    def on_signal(signame: str) -> None:
        log_event(log, "worker.stopping", worker=name, signal=signame,
                  grace_period=settings.daemon.grace_period)
        stopping.set()
        ctx.stop.set()          # slot jobs start no new request; in-flight ones finish
        for task in current:
            task.cancel()       # procrastinate then stops gracefully (waits for running jobs)

    if install_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig.name)
    delay = 1.0
    while not stopping.is_set():
        started = time.monotonic()
        try:
            task = asyncio.create_task(_work_once(ctx, name, concurrency))
            current[:] = [task]
            await task
        except asyncio.CancelledError:
            if not stopping.is_set():
                raise
        except Exception as exc:  # noqa: BLE001 - the database went away: stop checking, retry
            log_event(log, "worker.database_lost", worker=name, error=f"{type(exc).__name__}: {str(exc)[:300]}",
                      action=f"stopped checking; reconnecting in {delay:g}s", level=logging.ERROR)
        if stopping.is_set():
            break
        if time.monotonic() - started > 60:
            delay = 1.0
        await _sleep_unless(stopping, delay)
        delay = min(delay * 2, 30.0)
    log_event(log, "worker.stopped", worker=name, checks=ctx.stats.total)
    return 0


async def _work_once(ctx: _Context, name: str, concurrency: int) -> None:
    """Open the store and the queue, run the procrastinate worker; return or raise when it ends."""
    s = ctx.settings
    # Checks are committed within WRITE_WINDOW of finishing (the checks of all the worker's
    # jobs that finish within it share one transaction): a worker killed with -9 loses its
    # requests in flight and at most that window of results, which a retried job redoes
    # (it reads what is still due). One transaction per check cost 5 round trips a check.
    ctx.store = await Store.open(s.db_url, upgrade=False, batch_size=200, batch_interval=WRITE_WINDOW)
    ctx.clock = await DbClock.start(ctx.store)
    # One session for every job: its TLS context (~0.1 s of CPU to build) and its connections
    # are shared, and no job's start blocks the event loop while another's request is due.
    ctx.session = create_session(s)
    reporter = asyncio.create_task(_report_loop(ctx, name))
    app = build_app(s, ctx)
    try:
        async with app.open_async():
            log_event(log, "worker.started", worker=name, concurrency=concurrency, db=ctx.store.url)
            await app.run_worker_async(
                name=name, concurrency=concurrency, install_signal_handlers=False,
                update_heartbeat_interval=s.cluster.heartbeat, stalled_worker_timeout=s.cluster.stalled_after,
                shutdown_graceful_timeout=s.daemon.grace_period, delete_jobs="successful",
                fetch_job_polling_interval=min(5.0, s.cluster.heartbeat))
        # run_worker_async returns on its own only when a side task (heartbeat, listener) failed:
        # the database is unreachable.
        raise ConnectionError("the queue's connection failed (heartbeat or listener)")
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        await ctx.session.close()
        try:
            await asyncio.wait_for(q.report_worker(ctx.store, name, checks_total=ctx.stats.total,
                                                   per_minute=0.0, in_flight=0, stopped=True), 5)
        except Exception:  # noqa: BLE001 - the row goes stale and drops out of `status` anyway
            pass
        try:
            await asyncio.wait_for(ctx.store.close(), 10)
        except Exception as exc:  # noqa: BLE001
            log_event(log, "worker.store_close_failed", error=str(exc)[:200], level=logging.WARNING)


async def _sleep_unless(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        pass
