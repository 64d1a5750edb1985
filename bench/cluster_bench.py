"""Benchmark the cluster mode against the embedded mode on a many-host loopback web.

    .venv/bin/python bench/cluster_bench.py [--hosts 2000] [--urls-per-host 25]
        [--workers 1,2,4] [--concurrency 200] [--per-host 2] [--no-embedded]
        [--pg postgresql+asyncpg://postgres@127.0.0.1:5432/test]

What it does:
1. creates a database of its own on the PostgreSQL server of --pg (CREATE DATABASE, dropped at
   the end, so pg_stat_database counts only this benchmark) and fills ``links`` with
   hosts x urls-per-host due links (http://hN.bench/pM);
2. serves every host from one aiohttp server in a separate process on 127.0.0.1, each URL
   answering 200 with a small titled page after a latency fixed per URL (20-300 ms);
3. embedded: runs the check stage in this process (the daemon's path: one Prober, the
   in-process limiter, the batching writer) over every due link;
4. for each worker count: starts that many ``linkhealth worker`` processes, waits until
   they are live, queues the due links (the daemon's producer), waits until none is due
   and the queue is empty;
5. prints, per mode: wall time, checks/s, CPU per check of the checking processes, the
   PostgreSQL backends' CPU per check and transactions per check (pg_stat_database), and
   writes bench/out/cluster.json.

Every mode starts from the same state (checks deleted, every link due). Only 127.0.0.1 is
contacted. The machine is shared: CPU figures are per process (psutil), wall times are
not alone on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import zlib
from datetime import datetime, timezone
from pathlib import Path

import psutil
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from checker.pipeline import check_stage  # noqa: E402
from checker.rules import load_rules  # noqa: E402
from checker.settings import load_settings  # noqa: E402
from checker.store import Store, normalize_url  # noqa: E402
from checker.store import cluster as q  # noqa: E402


# -- the simulated web (its own process) --------------------------------------------------

def latency(path: str, host: str) -> float:
    """20-300 ms, fixed per URL."""
    return (20 + zlib.crc32(f"{host}{path}".encode()) % 281) / 1000.0


async def _handle(request: web.Request) -> web.Response:
    await asyncio.sleep(latency(request.path, request.host))
    return web.Response(text="<html><head><title>页面 ok</title></head><body>fine</body></html>",
                        content_type="text/html")


def serve(port: int) -> None:
    """Serve every host on 127.0.0.1:port until killed."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", _handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True,
                backlog=4096, access_log=None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- database -------------------------------------------------------------------------------

async def create_database(admin_url: str) -> tuple[str, str]:
    """CREATE DATABASE lh_bench_<hex>; (its URL, its name)."""
    name = f"lh_bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = normalize_url(admin_url).set(database=name, query={})
    return url.render_as_string(hide_password=False), name


async def drop_database(admin_url: str, name: str) -> None:
    admin = create_async_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


async def seed(store: Store, hosts: int, per_host: int) -> int:
    """hosts x per_host active, never-checked links."""
    now = datetime.now(timezone.utc)
    rows = [{"url": f"http://h{h}.bench/p{i}", "host": f"h{h}.bench", "now": now}
            for h in range(hosts) for i in range(per_host)]
    stmt = text("INSERT INTO links (url, display_url, host, active, at_risk, health, fail_streak, created_at) "
                "VALUES (:url, :url, :host, true, false, 'unknown', 0, :now)")
    async with store.begin() as conn:
        for start in range(0, len(rows), 5000):
            await conn.execute(stmt, rows[start:start + 5000])
    return len(rows)


async def reset(store: Store) -> None:
    """Every link due again, no check, no queue, no pace rows."""
    async with store.begin() as conn:
        await conn.execute(text("DELETE FROM checks"))
        await conn.execute(text("DELETE FROM runs"))
        await conn.execute(text("DELETE FROM host_clock"))
        await conn.execute(text("DELETE FROM cluster_workers"))
        await conn.execute(text("DELETE FROM procrastinate_jobs"))
        await conn.execute(text("UPDATE links SET checked_at = NULL, next_check_at = NULL, status = NULL, "
                                "health = 'unknown', fail_streak = 0"))
    async with store.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))


#: PostgreSQL (15+) flushes an idle backend's statistics after at most 10 s.
STATS_SETTLE = 11.0


async def pg_counters(store: Store, db: str, settle: bool = True) -> dict[str, float]:
    """This database's transaction and tuple counters, and the CPU of its backends by pid."""
    if settle:
        await asyncio.sleep(STATS_SETTLE)
    async with store.engine.connect() as conn:
        row = (await conn.execute(text(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_fetched "
            "FROM pg_stat_database WHERE datname = :db"), {"db": db})).mappings().one()
        pids = [r[0] for r in await conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = :db"), {"db": db})]
    cpu = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            cpu[pid] = t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return {**{k: float(v) for k, v in row.items()}, "cpu": cpu}


def pg_delta(before: dict, after: dict) -> dict[str, float]:
    """Counter deltas; backend CPU summed over the backends alive at the end."""
    out = {k: after[k] - before[k] for k in after if k != "cpu"}
    out["backend_cpu_s"] = sum(t - before["cpu"].get(pid, 0.0) for pid, t in after["cpu"].items())
    return out


# -- modes -------------------------------------------------------------------------------------

async def due_and_queue(store: Store) -> tuple[int, int]:
    async with store.engine.connect() as conn:
        due = (await conn.execute(text(
            "SELECT count(*) FROM links WHERE active AND (checked_at IS NULL OR next_check_at <= now())"))).scalar_one()
        queued = (await conn.execute(text(
            "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = 'checks' AND status IN ('todo', 'doing')"
        ))).scalar_one()
    return int(due), int(queued)


async def run_embedded(store: Store, settings, db: str) -> dict:
    rules = load_rules(settings.health)
    before = await pg_counters(store, db)
    cpu0, t0 = time.process_time(), time.monotonic()
    outcome = await check_stage(store, settings, rules, run_id=None)
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    after = await pg_counters(store, db)
    return {"mode": "embedded", "checks": outcome.checked, "wall_s": wall, "cpu_s": cpu, **pg_delta(before, after)}


def worker_env(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKHEALTH_")}
    env.update(settings_env)
    env["PYTHONPATH"] = str(REPO)
    return env


async def run_workers(store: Store, settings, db: str, n: int, env: dict[str, str], port: int,
                      concurrency: int, out_dir: Path) -> dict:
    from checker.cluster.pace import ConfiguredPace
    from checker.cluster.runner import build_app, enqueue_due

    procs = []
    for i in range(n):
        log = open(out_dir / f"worker-{n}-{i}.log", "wb")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "checker.cli", "worker", "--connect-to", f"::127.0.0.1:{port}",
             "--allow-private", "--concurrency", str(concurrency)],
            cwd=out_dir, env=worker_env(env), stdout=log, stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + 120
        while len(await q.workers(store, 60)) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"{n} workers did not start; see {out_dir}")
            await asyncio.sleep(0.5)
        before = await pg_counters(store, db)
        ps = [psutil.Process(p.pid) for p in procs]
        cpu0 = [sum(p.cpu_times()[:2]) for p in ps]
        t0 = time.monotonic()
        app = build_app(settings)
        async with app.open_async():
            produced = await enqueue_due(store, app, settings, ConfiguredPace(settings.check, None))
        enqueue_s = time.monotonic() - t0
        while await due_and_queue(store) != (0, 0):
            await asyncio.sleep(0.5)
        wall = time.monotonic() - t0
        cpu = [sum(p.cpu_times()[:2]) - c for p, c in zip(ps, cpu0)]
        backends = await pg_counters(store, db, settle=False)     # while the pools are open
        after = await pg_counters(store, db)
        after["cpu"] = backends["cpu"]
        async with store.engine.connect() as conn:
            checks = int((await conn.execute(text("SELECT count(*) FROM checks"))).scalar_one())
            dup = int((await conn.execute(text(
                "SELECT count(*) FROM (SELECT link_id FROM checks GROUP BY link_id HAVING count(*) > 1) d"
            ))).scalar_one())
        per_worker = [dict(name=r["name"], checks=int(r["checks_total"])) for r in await q.workers(store, 60)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    return {"mode": f"{n} worker{'s' if n > 1 else ''}", "checks": checks, "links_checked_twice": dup,
            "jobs": produced.queued, "enqueue_s": enqueue_s, "wall_s": wall, "cpu_s": sum(cpu),
            "cpu_per_worker_s": cpu, "per_worker_checks": per_worker, **pg_delta(before, after)}


def row(r: dict) -> str:
    n = max(1, r["checks"])
    return (f"{r['mode']:<10} {r['checks']:>7} {r['wall_s']:>8.1f} {r['checks'] / r['wall_s']:>9.1f} "
            f"{1000 * r['cpu_s'] / n:>11.2f} {1000 * r['backend_cpu_s'] / n:>12.2f} "
            f"{r['xact_commit'] / n:>9.2f}")


async def main(args: argparse.Namespace) -> None:
    out_dir = REPO / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    url, db = await create_database(args.pg)
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    env = {"LINKHEALTH_DB": url, "LINKHEALTH_CHECK_PER_HOST": str(args.per_host),
           "LINKHEALTH_CHECK_RETRIES": "0", "LINKHEALTH_CHECK_TIMEOUT": "20",
           "LINKHEALTH_CHECK_CONCURRENCY": str(args.concurrency),
           "LINKHEALTH_CLUSTER_BATCH_SIZE": str(args.urls_per_host),
           "LINKHEALTH_DAEMON_LOG_LEVEL": "warning", "LINKHEALTH_DATA_DIR": str(out_dir / "data")}
    settings = load_settings(environ=env, overrides={"check.connect_to": (f"::127.0.0.1:{port}",),
                                                     "check.allow_private": True})
    results = []
    try:
        store = await Store.open(url)
        total = await seed(store, args.hosts, args.urls_per_host)
        print(f"{total} links on {args.hosts} hosts; per-host {args.per_host}, concurrency {args.concurrency}; "
              f"web on 127.0.0.1:{port}; database {db}", flush=True)
        modes = (["embedded"] if args.embedded else []) + [int(n) for n in args.workers.split(",") if n]
        for mode in modes:
            await reset(store)
            if mode == "embedded":
                results.append(await run_embedded(store, settings, db))
            else:
                results.append(await run_workers(store, settings, db, mode, env, port, args.concurrency, out_dir))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "per_worker_checks"}), flush=True)
        await store.close()
    finally:
        server.terminate()
        server.wait()
        await drop_database(args.pg, db)
    print("\nmode        checks   wall s  checks/s  CPU ms/chk  PG CPU ms/chk  xact/chk")
    for r in results:
        print(row(r))
    (out_dir / "cluster.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1,
                                                     default=str), encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--urls-per-host", type=int, default=25)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--per-host", type=int, default=2)
    parser.add_argument("--no-embedded", dest="embedded", action="store_false")
    parser.add_argument("--pg", default=os.environ.get("LINKHEALTH_TEST_POSTGRES_URL",
                                                       "postgresql+asyncpg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
    else:
        asyncio.run(main(args))
