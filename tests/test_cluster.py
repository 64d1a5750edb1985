"""Cluster mode on the real PostgreSQL: `linkhealth worker` processes, procrastinate, polite hosts.

A loopback web records when each request to each host starts and ends; three worker
processes check the due links that the producer queued. Each test works in a throw-away
schema (procrastinate's tables included), so parallel runs do not meet.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web
from sqlalchemy import text

from checker.cluster.pace import ConfiguredPace
from checker.pipeline import scan_stage
from checker.rules import load_rules
from checker.settings import load_settings
from checker.store import Store, daemonquery
from checker.store import cluster as q

from pgschema import fresh_schema_url
from test_daemon import DaemonProc

pytest.importorskip("procrastinate")
from checker.cluster.runner import build_app, enqueue_due, retry_stalled_jobs  # noqa: E402

pytestmark = pytest.mark.postgres
REPO = Path(__file__).resolve().parents[1]
PER_HOST, INTERVAL = 2, 1.0
#: Starts closer than the interval by at most this much are scheduling noise of a loaded
#: machine: a worker or the web's event loop waiting for a core delays one start and not the
#: next (up to ~0.25 s seen with a load average of 8 on 2 cores). Without the pace row, two
#: slots of one host start together (a gap of ~0), far below INTERVAL - TOLERANCE.
TOLERANCE = 0.3


class RecordingWeb:
    """A web on 127.0.0.1 that answers every host, recording each request's start and end."""

    def __init__(self, delay: tuple[float, float] = (0.02, 0.06)) -> None:
        self.delay = delay
        self.starts: dict[str, list[float]] = defaultdict(list)
        self.flight: Counter = Counter()
        self.max_flight: Counter = Counter()
        self.requests: Counter = Counter()
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        host = request.host.split(":")[0]
        self.starts[host].append(time.monotonic())
        self.requests[request.path_qs] += 1
        self.flight[host] += 1
        self.max_flight[host] = max(self.max_flight[host], self.flight[host])
        try:
            await asyncio.sleep(random.uniform(*self.delay))
            return web.Response(text="<title>fine</title>", content_type="text/html")
        finally:
            self.flight[host] -= 1

    async def start(self) -> "RecordingWeb":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def min_gap(self, host: str) -> float:
        starts = sorted(self.starts[host])
        return min((b - a for a, b in zip(starts, starts[1:])), default=float("inf"))


class Worker:
    """One `linkhealth worker` subprocess with its JSON log."""

    def __init__(self, tmp_path: Path, name: str, db: str, port: int, concurrency: int = 3,
                 interval: float = INTERVAL) -> None:
        self.log_path = tmp_path / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINKHEALTH_")}
        env.update(_worker_env(db, interval))
        env["PYTHONPATH"] = str(REPO)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "checker.cli", "worker", "--connect-to", f"::127.0.0.1:{port}",
                 "--allow-private", "--concurrency", str(concurrency)],
                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)

    # The daemon tests' JSON-log readers: they use only self.log_path.
    events = DaemonProc.events
    tail = DaemonProc.tail

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def stop_all(workers: list[Worker]) -> None:
    """SIGTERM to every worker at once, then wait for each (a graceful stop in parallel)."""
    for w in workers:
        w.stop()
    for w in workers:
        w.wait()


def _worker_env(db: str, interval: float = INTERVAL) -> dict[str, str]:
    return {"LINKHEALTH_DB": db, "LINKHEALTH_DATA_DIR": ".lh", "LINKHEALTH_CHECK_PER_HOST": str(PER_HOST),
            "LINKHEALTH_CHECK_PER_HOST_INTERVAL": str(interval), "LINKHEALTH_CHECK_RETRIES": "0",
            "LINKHEALTH_CHECK_TIMEOUT": "5", "LINKHEALTH_CLUSTER_HEARTBEAT": "0.5",
            "LINKHEALTH_CLUSTER_STALLED_AFTER": "2", "LINKHEALTH_CLUSTER_STALLED_CHECK": "1",
            "LINKHEALTH_CLUSTER_REPORT_EVERY": "0.5", "LINKHEALTH_CLUSTER_BATCH_SIZE": "4",
            "LINKHEALTH_DAEMON_LOG_FORMAT": "json", "LINKHEALTH_DAEMON_GRACE_PERIOD": "3"}


@pytest.fixture
async def pg_url():
    async with fresh_schema_url("lh_cluster") as url:
        yield url


@pytest.fixture
async def recording_web():
    site = await RecordingWeb().start()
    yield site
    await site.close()


@pytest.fixture
def workers():
    started: list[Worker] = []
    yield started
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


def _settings(tmp_path: Path, db: str, port: int):
    env = _worker_env(db)
    env["LINKHEALTH_NOTES_PATHS"] = str(tmp_path / "notes")
    return load_settings(environ=env, overrides={"check.connect_to": (f"::127.0.0.1:{port}",),
                                                 "check.allow_private": True})


async def _seed(tmp_path: Path, settings, hosts: int, per_host: int, extra: list[str] = ()) -> Store:
    """Notes citing ``per_host`` URLs on each of ``hosts`` hosts, scanned into the store."""
    notes = tmp_path / "notes"
    notes.mkdir()
    urls = [f"http://h{h}.example/p{i}" for h in range(hosts) for i in range(per_host)] + list(extra)
    (notes / "n.md").write_text("".join(f"- [链接]({u})\n" for u in urls), encoding="utf-8")
    store = await Store.open(settings.db_url)
    await scan_stage(store, settings, load_rules(settings.health))
    return store


async def _until(predicate: Callable[[], Awaitable[Any]], timeout: float, what: str,
                 procs: list[Worker] = ()) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n---\n".join(p.tail() for p in procs)
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")
        await asyncio.sleep(0.2)


async def _drained(store: Store) -> bool:
    due = await daemonquery.due_count(store, await q.db_now(store))
    depth = await q.queue_depth(store)
    return due == 0 and not any(n for (queue, _), n in depth.items() if queue == "checks")


async def _checks_per_link(store: Store) -> dict[str, int]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(text("SELECT l.url, count(c.id) FROM links l LEFT JOIN checks c "
                                       "ON c.link_id = l.id WHERE l.active GROUP BY l.url"))
        return {url: int(n) for url, n in rows}


async def _produce(store: Store, settings) -> Any:
    app = build_app(settings)
    async with app.open_async():
        return await enqueue_due(store, app, settings, ConfiguredPace(settings.check, None))


async def test_three_workers_keep_each_hosts_limit_and_interval(tmp_path, pg_url, recording_web, workers):
    settings = _settings(tmp_path, pg_url, recording_web.port)
    store = await _seed(tmp_path, settings, hosts=4, per_host=6)
    try:
        workers.extend(Worker(tmp_path, f"w{i}", pg_url, recording_web.port) for i in range(3))
        # Started first: three Python processes starting up on a small machine would delay the
        # web's own event loop, and with it the start times it records.
        await _until(lambda: _live_workers(store, 3), 60, "three live workers", workers)
        produced = await _produce(store, settings)
        assert produced.due == 24 and produced.queued == 4 * PER_HOST
        # A second producer at once: a slot still waiting is not queued twice; a slot whose job
        # already runs may get one more job, which finds its links checked and does nothing.
        again = await _produce(store, settings)
        assert again.queued + again.already == 4 * PER_HOST and again.already >= 1
        await _until(lambda: _drained(store), 60, "every due link checked", workers)
        for host in (f"h{h}.example" for h in range(4)):
            starts = sorted(recording_web.starts[host])
            gaps = [round(b - a, 3) for a, b in zip(starts, starts[1:])]
            assert recording_web.max_flight[host] <= PER_HOST, (host, recording_web.max_flight[host])
            assert recording_web.min_gap(host) >= INTERVAL - TOLERANCE, (host, gaps)
        assert set((await _checks_per_link(store)).values()) == {1}
        # Each link fetched once; besides them only the random-sibling probe's decoys (one per
        # slot job at most: it runs once per host and job, and only on a live-looking page).
        links = {p: n for p, n in recording_web.requests.items() if re.fullmatch(r"/p\d+", p)}
        assert sum(links.values()) == 24
        assert sum(recording_web.requests.values()) - 24 <= 4 * PER_HOST
        await _until(lambda: _rows_with_checks(store), 10, "worker rows with counts", workers)
    finally:
        stop_all(workers)
        await store.close()


async def _live_workers(store: Store, n: int) -> bool:
    return len(await q.workers(store, 60)) >= n


async def _rows_with_checks(store: Store) -> bool:
    rows = await q.workers(store, 60)
    return sum(int(r["checks_total"]) for r in rows) == 24 and len(rows) >= 1


async def test_a_worker_killed_mid_batch_loses_nothing(tmp_path, pg_url, workers):
    site = await RecordingWeb(delay=(0.15, 0.25)).start()
    settings = _settings(tmp_path, pg_url, site.port)
    store = await _seed(tmp_path, settings, hosts=3, per_host=8)
    try:
        await _produce(store, settings)
        first = Worker(tmp_path, "victim", pg_url, site.port, concurrency=6, interval=0.1)
        workers.append(first)

        async def victim_busy() -> bool:
            # Every job taken, and a few checks stored: the kill lands mid-batch.
            depth = await q.queue_depth(store)
            return depth.get(("checks", "todo"), 0) == 0 and await daemonquery.stored_check_count(store) >= 3
        await _until(victim_busy, 30, "the first worker to take the jobs", workers)
        first.proc.kill()                                  # SIGKILL: no clean-up at all
        first.proc.wait()
        stored_at_kill = await daemonquery.stored_check_count(store)
        assert stored_at_kill < 24
        dead_jobs = (await q.queue_depth(store)).get(("checks", "doing"), 0)   # left running by the dead
        assert dead_jobs >= 1
        workers.extend(Worker(tmp_path, f"w{i}", pg_url, site.port, interval=0.1) for i in range(2))
        await _until(lambda: _drained(store), 60, "the dead worker's jobs retried and finished", workers)
        counts = await _checks_per_link(store)
        assert len(counts) == 24 and set(counts.values()) == {1}, counts
        retried = [e for w in workers[1:] for e in w.events("job.retried_stalled")
                   if str(e.get("lock")).startswith("check:")]
        assert len(retried) == dead_jobs, retried               # every job the dead worker held
        assert await daemonquery.duplicate_probe_ids(store) == 0
    finally:
        stop_all(workers)
        await store.close()
        await site.close()


class PgProxy:
    """A TCP relay to PostgreSQL that can be cut (every connection dropped, the port closed)
    and restored on the same port: a database restart or a network cut, as a worker sees it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> "PgProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()


async def test_worker_cut_off_from_the_database_stops_checking_and_resumes(tmp_path, pg_url, recording_web,
                                                                            workers):
    from sqlalchemy import make_url
    interval = 0.5
    settings = _settings(tmp_path, pg_url, recording_web.port)
    store = await _seed(tmp_path, settings, hosts=3, per_host=6)
    proxy = await PgProxy(make_url(pg_url).port or 5432).start()
    via_proxy = make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False)
    try:
        worker = Worker(tmp_path, "cut", via_proxy, recording_web.port, concurrency=6, interval=interval)
        workers.append(worker)
        await _until(lambda: _live_workers(store, 1), 60, "the worker", workers)
        await _produce(store, settings)
        await _until(lambda: _stored_at_least(store, 4), 30, "a few checks", workers)
        await proxy.cut()                                    # PostgreSQL is gone for the worker
        cut_at = time.monotonic()
        await asyncio.sleep(4)
        late = [t - cut_at for starts in recording_web.starts.values() for t in starts
                if t > cut_at + interval + 0.5]
        assert late == [], f"requests started {late} s after the cut"
        await _until(lambda: _logged(worker, "worker.database_lost"), 30, "the worker's log line", workers)
        assert worker.proc.poll() is None                   # it waits for the database, it did not die
        assert await daemonquery.due_count(store, await q.db_now(store)) > 0
        await proxy.start()                                  # the database is back, same address
        await _until(lambda: _drained(store), 60, "the worker to resume and finish", workers)
        assert set((await _checks_per_link(store)).values()) == {1}
    finally:
        stop_all(workers)
        await proxy.close()
        await store.close()


async def _logged(worker: Worker, event: str) -> bool:
    return bool(worker.events(event))


async def _stored_at_least(store: Store, n: int) -> bool:
    return await daemonquery.stored_check_count(store) >= n
