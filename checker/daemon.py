"""The daemon: rescan, recheck when due, archive, report, and serve it all (``linkhealth daemon``).

Jobs (APScheduler 3 ``AsyncIOScheduler``, on the event loop of the aiohttp client):

    scan     every daemon.scan_interval      notes new/changed/deleted -> occurrences, links.active
    check    every daemon.check_interval     the due links (links.next_check_at), batch_size at a time
    archive  every daemon.archive_interval   plan_archive + run_archive (when checker.archive exists)
    report   after each batch that changed something (woken), else every check_interval if dirty

Every job has max_instances=1 and coalesce=True: a job never overlaps itself, and runs
missed during a sleep or while the process was down run once, not N times.

No APScheduler job store: the job state is derived from the database alone. What is
due is links.next_check_at, what changed is the notes' sha256, what to archive is the
archive_jobs queue. A restart therefore resumes exactly where the data says, and
APScheduler 3's SQLAlchemyJobStore (synchronous: it would need a second, sync driver
for PostgreSQL, and it pickles callables tied to one code version) is not needed.

One daemon per database: a row lease named "daemon" (Store.acquire_lease) renewed
every lock_ttl/4, each renewal bounded by a timeout; a second daemon waits in standby
until the lease expires. The lease counts as lost when no renewal succeeded within
lock_ttl/2 of the last good one (the row itself expires lock_ttl after it), or when
another owner holds it: the daemon then cancels its jobs at once (no graceful drain:
the new holder owns the work) and exits 1. SIGTERM or SIGINT stops new work, lets
in-flight jobs finish within grace_period, flushes the writer, releases the lease and
exits 0.
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
from datetime import timezone
from typing import Any, Awaitable, Callable, Sequence

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from .errors import ConfigError, LinkhealthError
from .logs import configure_logging, log_event
from .notes import check_roots
from .pipeline import CheckOutcome, check_stage, report_stage, rescan_stage, scan_stage, utcnow
from .rules import load_rules
from .settings import Settings
from .store import Store, daemonquery
from .store.writer import LIVE_WRITE_INTERVAL
from .watch import WATCH_FALLBACK, Changes, watch_notes
from .web import Metrics, check_exposure, create_app, is_loopback, parse_listen, start_web

__all__ = ["run_daemon", "Daemon", "LEASE_NAME"]

LEASE_NAME = "daemon"
REPORT_MIN_SPACING = 60.0   # seconds between two reports woken by check batches
# Lease timing, as fractions of daemon.lock_ttl. The row expires lock_ttl after the `now`
# of the last successful renewal; the holder gives up at half of that, which leaves the
# other half as a margin for clock skew between hosts and for a slow shutdown.
LEASE_RENEW_EVERY = 1 / 4    # a renewal this long after the last successful one
LEASE_RENEW_TIMEOUT = 1 / 5  # one renewal may take this long (below the renew interval)
LEASE_LOST_AFTER = 1 / 2     # no successful renewal for this long: the lease is lost
log = logging.getLogger("linkhealth.daemon")


async def run_daemon(settings: Settings, *, paths: Sequence[str] | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the exit code (0 after a clean stop)."""
    configure_logging(settings.daemon.log_format, settings.daemon.log_level,
                      secrets=(settings.daemon.token,))
    return await Daemon(settings, paths=paths).run()


class _MetricsProgress:
    """The check stage's progress sink: feeds the metrics, and refreshes the report now and
    then during a long batch (a first cycle over a large collection takes an hour or more)."""

    def __init__(self, metrics: Metrics, on_progress: Callable[[], None] | None = None) -> None:
        self.metrics = metrics
        self.on_progress = on_progress

    def start(self, total: int) -> None:
        """Nothing to do at the start of a batch."""

    def advance(self, result: Any) -> None:
        """Count one finished check."""
        self.metrics.observe_check(str(result.verdict.status), result.probe.latency_ms)
        if self.on_progress is not None:
            self.on_progress()


class Daemon:
    """One daemon process: lease, scheduler, jobs and web server over one Store."""

    def __init__(self, settings: Settings, *, paths: Sequence[str] | None = None,
                 owner: str | None = None) -> None:
        self.settings = settings
        self.paths = list(paths) if paths else None
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.metrics = Metrics()
        self.state = "starting"
        self.exit_code = 0
        self.store: Any = None
        self.rules: Any = None
        self.scheduler: AsyncIOScheduler | None = None
        self.lease_held = False
        self.report_dirty = True           # write a report at start when none exists
        self._stopping = asyncio.Event()   # a signal arrived, or the lease was lost
        self._stop_work = asyncio.Event()  # check_stage: start no new probes
        self._running: dict[str, asyncio.Task] = {}
        self._signals = 0
        self._last_report = float("-inf")
        self._lease_renewed = float("-inf")   # monotonic start of the last successful acquire/renew
        self._lease_lost = False
        self._scan_lock = asyncio.Lock()    # the scan job and the watcher's rescans take turns
        self._again: set[str] = set()      # jobs woken while running: run again when they end
        self._watcher: asyncio.Task | None = None
        self._said_skipped: set[tuple[str, str]] = set()

    # -- life cycle ---------------------------------------------------------------

    async def run(self) -> int:
        """Start everything, wait for a stop request, stop gracefully; the exit code."""
        d = self.settings.daemon
        host, port = parse_listen(d.listen)
        auth = check_exposure(host, d.token)   # refuses a public address without a token
        # Refused at start, as audit does; a folder that vanishes later (an unmounted disk)
        # is a failed scan, logged, and the daemon keeps its other work going.
        check_roots(self.paths or self.settings.notes.paths)
        self.rules = load_rules(self.settings.health)
        # Its web report and API read the database while a batch runs: checks are committed
        # within LIVE_WRITE_INTERVAL (half a second), not the audit's WRITE_INTERVAL.
        self.store = await Store.open(self.settings.db_url, batch_interval=LIVE_WRITE_INTERVAL)
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        runner = None
        renewer: asyncio.Task | None = None
        try:
            app = create_app(self.store, self.settings, metrics=self.metrics, state=self.status,
                             lease_held=lambda: self.lease_held)
            try:
                runner, bound = await start_web(app, host, port)
            except OSError as exc:   # the port is taken, or the address is not this host's
                raise ConfigError(f"cannot listen on {d.listen}: {exc.strerror or exc}",
                                  source="daemon.listen") from None
            log_event(log, "web.listen", host=host or "*", port=bound, token_required=auth,
                      loopback=is_loopback(host))
            if not await self._acquire_lease():
                return self.exit_code
            renewer = asyncio.create_task(self._renew_lease(), name="lease-renewer")
            stale = await daemonquery.interrupt_stale_runs(self.store, "daemon", utcnow())
            if stale:
                log_event(log, "runs.interrupted_previous", count=stale)
            self._start_scheduler()
            self._start_watcher()
            self.state = "running"
            log_event(log, "daemon.started", owner=self.owner, db=_mask(self.settings.db_url),
                      paths=",".join(self.paths or self.settings.notes.paths) or "-")
            await self._stopping.wait()
        finally:
            await self._shutdown(runner, renewer)
        return self.exit_code

    def status(self) -> str:
        """starting, standby, running or stopping (running only while the scheduler runs)."""
        if self.state == "running" and not (self.scheduler and self.scheduler.running):
            return "stopped"
        return self.state

    def request_stop(self, reason: str = "signal", exit_code: int = 0) -> None:
        """Stop taking new work; the run loop then shuts down gracefully."""
        if exit_code:
            self.exit_code = exit_code
        if not self._stopping.is_set():
            log_event(log, "daemon.stopping", reason=reason, grace_period=self.settings.daemon.grace_period)
        self._stopping.set()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        def on_signal(signame: str) -> None:
            self._signals += 1
            if self._signals > 1:   # a second signal: do not wait for in-flight work
                log_event(log, "daemon.force_stop", signal=signame, level=logging.WARNING)
                for task in list(self._running.values()):
                    task.cancel()
            self.request_stop(signame)
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, on_signal, sig.name)
            except (NotImplementedError, RuntimeError):  # not the main thread (tests), or Windows
                pass

    async def _shutdown(self, runner: Any, renewer: asyncio.Task | None) -> None:
        self.state = "stopping"
        self._stopping.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()          # no new job starts from here on
        self._stop_work.set()               # check_stage starts no new probe
        grace = self.settings.daemon.grace_period
        # After a lost lease the steps below are bounded: the database may be what hangs.
        bound = grace if self._lease_lost else None
        if self._lease_lost:
            await self._cancel_running(grace)   # the new holder owns the work: no drain
        else:
            await self._drain(grace)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        if renewer is not None:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        if self.store is not None:
            await _quietly(self.store.flush(), "store.flush", timeout=bound)
            if self.lease_held:
                await _quietly(self.store.release_lease(LEASE_NAME, self.owner), "lease.release")
                self.lease_held = False
                log_event(log, "lease.released", owner=self.owner)
        if runner is not None:
            await runner.cleanup()
        if self.store is not None:
            await _quietly(self.store.close(), "store.close", timeout=bound)
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                asyncio.get_running_loop().remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass
        log_event(log, "daemon.stopped", exit_code=self.exit_code)

    async def _drain(self, grace: float) -> None:
        """Wait for running jobs up to ``grace`` seconds, then cancel what is left."""
        tasks = [t for t in self._running.values() if not t.done()]
        if not tasks:
            return
        log_event(log, "daemon.draining", jobs=",".join(sorted(self._running)), grace_period=grace)
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            log_event(log, "daemon.grace_expired", cancelled=len(pending), level=logging.WARNING)
            await asyncio.gather(*pending, return_exceptions=True)

    async def _cancel_running(self, wait: float) -> None:
        """Cancel every running job now; wait up to ``wait`` seconds for them to unwind."""
        tasks = [t for t in self._running.values() if not t.done()]
        if not tasks:
            return
        log_event(log, "daemon.cancelling", jobs=",".join(sorted(self._running)),
                  reason="lease lost", level=logging.WARNING)
        for task in tasks:
            if not task.cancelling():   # cancelled once already: let its cleanup run
                task.cancel()
        # A cancelled job still closes its run row; a hung database must not keep us here.
        _, pending = await asyncio.wait(tasks, timeout=wait)
        if pending:
            log_event(log, "daemon.cancel_timeout", jobs=len(pending), level=logging.ERROR)

    # -- the lease ----------------------------------------------------------------

    async def _acquire_lease(self) -> bool:
        """Take the lease, or wait in standby until it frees or a stop is requested."""
        ttl = self.settings.daemon.lock_ttl
        waited = False
        while not self._stopping.is_set():
            try:
                attempt = time.monotonic()   # before `now`: the row expires ttl after it
                if await self.store.acquire_lease(LEASE_NAME, self.owner, ttl, utcnow()):
                    self.lease_held = True
                    self._lease_renewed = attempt
                    log_event(log, "lease.acquired", owner=self.owner, ttl=ttl, after_standby=waited)
                    return True
            except Exception as exc:  # the database is down: keep trying, the lease is not ours
                log_event(log, "lease.error", error=str(exc), level=logging.WARNING)
            if not waited:
                self.state = "standby"
                log_event(log, "lease.standby", owner=self.owner,
                          reason="another daemon holds the lease on this database; waiting for it to expire")
                waited = True
            await self._sleep(min(max(ttl / 4, 0.2), 5.0))
        return False

    async def _renew_lease(self) -> None:
        """Renew every lock_ttl/4; on loss stop at once with exit 1.

        Lost means: another owner holds the lease (renew says False), or no renewal
        succeeded within lock_ttl/2 of the last good one (errors, or a hung connection:
        every renewal is bounded by a timeout). Elapsed time is measured from the start of
        the last successful call, i.e. from before the ``now`` the row's expiry is based
        on, so we stop well before a standby may take the lease over.

        Expiry is computed from this host's clock (``utcnow()``), as is the standby's check
        of it: hosts sharing a PostgreSQL server need roughly synchronized clocks (NTP);
        the lock_ttl/2 margin absorbs a skew below that. Using the database's now() instead
        would change Store.acquire_lease/renew_lease's contract (they take ``now``, and the
        store tests drive expiry with it), so it is not done here.
        """
        ttl = self.settings.daemon.lock_ttl
        every, timeout, lost_after = ttl * LEASE_RENEW_EVERY, ttl * LEASE_RENEW_TIMEOUT, ttl * LEASE_LOST_AFTER
        next_at = self._lease_renewed + every
        # At most one renewal in flight. A renewal that overruns its timeout is not cancelled
        # (cancelling a database call mid-transaction can leave a SQLite connection holding
        # the write lock while it closes): it is waited for again on the next round, and a
        # late success still counts, from the moment it started.
        pending: asyncio.Task | None = None
        started = 0.0
        try:
            while True:
                now = time.monotonic()
                deadline = self._lease_renewed + lost_after
                if now >= deadline:
                    self._lost_lease(f"no successful renewal for {now - self._lease_renewed:.2f}s "
                                     f"(lock_ttl/2 = {lost_after:g}s)")
                    return
                if now < next_at:
                    await asyncio.sleep(min(next_at, deadline) - now)
                    continue
                if pending is None:
                    started = time.monotonic()   # before `now`: the row expires ttl after it
                    pending = asyncio.ensure_future(
                        self.store.renew_lease(LEASE_NAME, self.owner, ttl, utcnow()))
                done, _ = await asyncio.wait({pending}, timeout=max(min(timeout, deadline - now), 0.001))
                if not done:
                    log_event(log, "lease.renew_error", error=f"no answer within {timeout:g}s",
                              level=logging.WARNING)
                    next_at = time.monotonic() + every / 4
                    continue
                task, pending = pending, None
                try:
                    renewed = task.result()
                except Exception as exc:  # a database hiccup: retry until the deadline
                    log_event(log, "lease.renew_error", error=str(exc), level=logging.WARNING)
                    next_at = time.monotonic() + every / 4
                    continue
                if not renewed:
                    self._lost_lease("another owner holds the lease")
                    return
                self._lease_renewed = started
                next_at = started + every
        finally:
            if pending is not None and not pending.done():
                pending.add_done_callback(_consume_result)   # left to finish; never cancelled

    def _lost_lease(self, reason: str) -> None:
        """Stop all work now: the lease may already be someone else's."""
        self.lease_held = False
        self._lease_lost = True
        log_event(log, "lease.lost", owner=self.owner, reason=reason, level=logging.ERROR)
        self._stop_work.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()
        for task in list(self._running.values()):
            task.cancel()
        self.request_stop("lease lost", exit_code=1)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when a stop is requested."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    # -- the scheduler ------------------------------------------------------------

    def _start_scheduler(self) -> None:
        d = self.settings.daemon
        # misfire_grace_time=None: however late (a laptop sleep, a blocked loop), a missed run
        # still runs, and coalesce=True makes all the missed runs of a job one run.
        self.scheduler = AsyncIOScheduler(timezone=timezone.utc, job_defaults={
            "max_instances": 1, "coalesce": True, "misfire_grace_time": None})
        now = utcnow()
        jobs: list[tuple[str, float, Callable[[], Awaitable[None]]]] = [
            ("scan", d.scan_interval, self._scan_job),
            ("check", d.check_interval, self._check_job),
            ("report", d.check_interval, self._report_job),
        ]
        if d.archive_interval <= 0:
            log_event(log, "archive.disabled", reason="daemon.archive_interval is 0")
        elif self._archive_functions() is None:
            log_event(log, "archive.disabled", reason="checker.archive has no plan_archive/run_archive")
        else:
            jobs.append(("archive", d.archive_interval, self._archive_job))
        for name, interval, func in jobs:
            # Every job runs once at start: the database says what is due, not a job store.
            self.scheduler.add_job(self._wrap(name, func), "interval", seconds=max(interval, 0.1),
                                   id=name, name=name, next_run_time=now)
        self.scheduler.start()
        log_event(log, "scheduler.started", jobs=",".join(j[0] for j in jobs),
                  scan_interval=d.scan_interval, check_interval=d.check_interval,
                  archive_interval=d.archive_interval, batch_size=d.batch_size)

    def _wrap(self, name: str, func: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            if self._stopping.is_set():
                return
            task = asyncio.current_task()
            assert task is not None
            self._running[name] = task
            started = time.time()
            result = "ok"
            try:
                await func()
            except asyncio.CancelledError:
                result = "cancelled"
                log_event(log, f"{name}.cancelled", level=logging.WARNING)
            except LinkhealthError as exc:
                result = "failed"
                log_event(log, f"{name}.failed", error=str(exc), level=logging.ERROR)
            except Exception as exc:  # a job's bug must not stop the daemon: log it whole
                result = "failed"
                log.error(f"{name}.failed", exc_info=True, extra={"fields": {"error": repr(exc)}})
            finally:
                self._running.pop(name, None)
                self.metrics.observe_job(name, result, started, time.time())
                if name in self._again:
                    # Woken while running: once APScheduler has seen this run end (its
                    # max_instances count), the job runs again for the work that came.
                    self._again.discard(name)
                    asyncio.get_running_loop().call_later(0.05, self.wake, name)
        job.__name__ = f"{name}_job"
        return job

    def wake(self, name: str) -> None:
        """Run job ``name`` now; if it is running, once more as soon as that run ends."""
        if self.scheduler is None or not self.scheduler.running or self._stopping.is_set():
            return
        if self.scheduler.get_job(name) is None:
            return
        if name in self._running:
            self._again.add(name)
            return
        self.scheduler.modify_job(name, next_run_time=utcnow())

    # -- the jobs -----------------------------------------------------------------

    async def _scan_job(self) -> None:
        started = time.monotonic()
        async with self._scan_lock:
            outcome = await scan_stage(self.store, self.settings, self.rules, paths=self.paths, now=utcnow())
        self._scanned("scan.done", outcome, started)

    async def _rescan_job(self, changes: Changes) -> None:
        """Rescan what the watcher saw change (a full scan when a folder came or went)."""
        started = time.monotonic()
        async with self._scan_lock:
            outcome = await rescan_stage(self.store, self.settings, self.rules, changes, paths=self.paths,
                                         now=utcnow())
        self._scanned("rescan.done" if outcome.partial else "scan.done", outcome, started,
                      changes=len(changes))

    def _scanned(self, event: str, outcome: Any, started: float, **fields: Any) -> None:
        """Log a scan, say each newly skipped file once, mark the report and wake the checks."""
        sync = _as_dict(outcome.sync)
        changed = any(v for k, v in sync.items() if "unchanged" not in k and isinstance(v, int))
        # A watcher's rescan that changed nothing (an editor's temporary file) is not news.
        level = logging.INFO if changed or not outcome.partial else logging.DEBUG
        log_event(log, event, notes=outcome.notes_scanned, skipped=len(outcome.notes_skipped),
                  references=outcome.references, links=outcome.targets,
                  seconds=round(time.monotonic() - started, 3), **fields, **sync, level=level)
        new = [s for s in outcome.notes_skipped if (s.path, s.reason) not in self._said_skipped]
        for skipped in new[:20]:
            log_event(log, "scan.skipped", path=skipped.path, reason=skipped.reason, level=logging.WARNING)
        self._said_skipped.update((s.path, s.reason) for s in new)
        if changed:
            self.report_dirty = True
        self.wake("check")

    # -- the watcher --------------------------------------------------------------

    def _start_watcher(self) -> None:
        """Watch the notes folders; a saved note is rescanned within seconds."""
        d = self.settings.daemon
        roots = list(self.paths or self.settings.notes.paths)
        if not d.watch or not roots:
            log_event(log, "watch.disabled", reason="daemon.watch is false" if roots else "no notes paths")
            return
        self._watcher = asyncio.create_task(
            watch_notes(roots, self.settings.notes, self._notes_changed, self._stopping, quiet=d.watch_debounce),
            name="watcher")
        self._watcher.add_done_callback(_watcher_ended)

    async def _notes_changed(self, changes: Changes) -> None:
        await self._wrap("rescan", lambda: self._rescan_job(changes))()

    async def _check_job(self) -> None:
        """Check due links in batches of batch_size until none is due (or a stop)."""
        if self.settings.cluster.enabled:
            # Cluster mode: `linkhealth worker` processes check; this daemon only queues.
            from .cluster.runner import produce
            await produce(self.store, self.settings, self.rules)
            return
        batch = self.settings.daemon.batch_size
        while not self._stop_work.is_set():
            if not await self.store.due_links(utcnow(), limit=1):
                return
            outcome = await self._check_batch(batch)
            if outcome.checked:
                self._report_during_batch()
            if outcome.interrupted or outcome.checked + outcome.cached < batch:
                return

    def _report_during_batch(self) -> None:
        """Mark the report dirty and wake it, at most once per report spacing.

        At most one woken report a minute (or per check_interval if longer): on 25,000
        links a report takes seconds. The periodic report job writes a dirty report otherwise.
        """
        self.report_dirty = True
        spacing = max(self.settings.daemon.check_interval, REPORT_MIN_SPACING)
        if time.monotonic() - self._last_report >= spacing:
            self._last_report = time.monotonic()
            self.wake("report")

    async def _check_batch(self, limit: int) -> Any:
        started = time.monotonic()
        run_id = await self.store.start_run("daemon", utcnow())
        outcome, state, message = CheckOutcome(), "failed", None
        try:
            progress = _MetricsProgress(self.metrics, self._report_during_batch)
            # ``outcome`` is filled as checks finish: a batch cancelled at the end of the grace
            # period still records how many it checked.
            await check_stage(self.store, self.settings, self.rules, run_id=run_id, limit=limit,
                              progress=progress, stop=self._stop_work, outcome=outcome)
            state = "interrupted" if outcome.interrupted else "done"
        except asyncio.CancelledError:
            state, message = "interrupted", "cancelled at the end of the grace period"
            raise
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            counts = await daemonquery.link_counts(self.store)
            await self.store.finish_run(run_id, state=state, now=utcnow(), links_checked=outcome.checked,
                                        links_total=sum(counts["status"].values()), counts=counts,
                                        message=message)
            log_event(log, "check.batch", run_id=run_id, state=state, checked=outcome.checked,
                      seconds=round(time.monotonic() - started, 3),
                      **{f"status_{k}": v for k, v in sorted((str(s), n) for s, n in outcome.by_status.items())},
                      **{f"health_{k}": v for k, v in sorted(counts["health"].items())})
        return outcome

    async def _report_job(self) -> None:
        if not self.report_dirty and self.settings.report_path.is_file():
            return
        self.report_dirty = False      # cleared first: a change during the write dirties it again
        started = time.monotonic()
        try:
            path = await report_stage(self.store, self.settings)
        except BaseException:
            self.report_dirty = True
            raise
        self._last_report = time.monotonic()
        log_event(log, "report.written", path=str(path), seconds=round(time.monotonic() - started, 3))

    def _archive_functions(self) -> tuple[Callable, Callable] | None:
        try:
            from .archive import plan_archive, run_archive
        except ImportError:
            return None
        return plan_archive, run_archive

    async def _archive_job(self) -> None:
        functions = self._archive_functions()
        if functions is None:
            return
        plan_archive, run_archive = functions
        started = time.monotonic()
        plan = _as_dict(await plan_archive(self.store, self.settings, utcnow()))
        if self.settings.cluster.enabled:
            # The archive lane runs on a worker, under one cluster-wide lock (Save Page Now's
            # limits are per account).
            from .cluster.runner import produce_archive
            queued = await produce_archive(self.settings, self.settings.daemon.batch_size)
            log_event(log, "archive.queued", lane_job=queued, **{f"plan_{k}": v for k, v in plan.items()})
            return
        # On SIGTERM no new archive request starts (lookups, saves, polls, page fetches);
        # the queue keeps what is left for the next start.
        summary = await run_archive(self.store, self.settings, now_fn=utcnow,
                                    limit=self.settings.daemon.batch_size, stop=self._stop_work)
        fields = _as_dict(summary)
        for (service, outcome), n in _archive_outcomes(summary).items():
            self.metrics.archive_results[(service, outcome)] += n
        if any(isinstance(v, int) and v for k, v in fields.items() if k not in ("pending", "skipped")):
            self.report_dirty = True
        log_event(log, "archive.done", seconds=round(time.monotonic() - started, 3),
                  **{f"plan_{k}": v for k, v in plan.items()}, **fields)


def _as_dict(value: Any) -> dict[str, Any]:
    """Scalar fields of a stats dataclass (SyncStats, PlanSummary...) for a log line."""
    if value is None:
        return {}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    elif isinstance(value, dict):
        items = dict(value)
    else:
        items = dict(getattr(value, "__dict__", {}))
    return {k: v for k, v in items.items() if isinstance(v, (int, float, str, bool)) or v is None}


def _archive_outcomes(summary: Any) -> dict[tuple[str, str], int]:
    """(service, outcome) -> count from an ArchiveSummary, when it carries a per-service breakdown."""
    by_service = getattr(summary, "by_service", None)
    out: dict[tuple[str, str], int] = {}
    if isinstance(by_service, dict):
        for service, outcomes in by_service.items():
            if isinstance(outcomes, dict):
                for outcome, n in outcomes.items():
                    if isinstance(n, int):
                        out[(str(service), str(outcome))] = n
    return out


def _mask(url: str) -> str:
    """A database URL with its password hidden."""
    head, sep, tail = url.partition("://")
    if not sep or "@" not in tail:
        return url
    creds, _, rest = tail.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{head}://{user}:***@{rest}" if ":" in creds else url


def _watcher_ended(task: asyncio.Task) -> None:
    """Log a watcher that ended on an error of its own (its known failures log themselves)."""
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log_event(log, "watch.failed", error=f"{type(exc).__name__}: {exc}", fallback=WATCH_FALLBACK,
                  level=logging.WARNING)


def _consume_result(task: asyncio.Future) -> None:
    """Retrieve an abandoned task's outcome (no "exception was never retrieved" warning)."""
    if not task.cancelled():
        task.exception()


async def _quietly(awaitable: Awaitable[Any], what: str, timeout: float | None = None) -> None:
    """Await a shutdown step (within ``timeout`` if given); a failure is logged, and the
    next steps still run."""
    try:
        if timeout is None:
            await awaitable
        else:
            await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        log_event(log, f"{what}.failed", error=f"timed out after {timeout:g}s", level=logging.ERROR)
    except Exception as exc:
        log_event(log, f"{what}.failed", error=str(exc), level=logging.ERROR)
