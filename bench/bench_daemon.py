"""Benchmark the daemon over the real corpus, every host sent to a local simulated web.

    .venv/bin/python bench/bench_daemon.py [--notes /work/shared/corpus/notes] [--idle 60]
                                           [--latency-scale 1.0] [--per-host 4] [--db URL]

What it does:
1. serves a simulated web on 127.0.0.1 (HTTP and HTTPS; the HTTPS side makes a
   certificate for whatever name the client asks for, from a throwaway trustme CA),
   each host answering 200 with a small page after a latency fixed per host
   (20-300 ms, times --latency-scale);
2. starts ``linkhealth daemon`` (subprocess) on the corpus with ``--connect-to`` rules
   sending every host there and ``--ca-file`` trusting the CA;
3. measures the first full check cycle (from the first scan's end until no link is
   due), then idle CPU and RSS for --idle seconds, then a full recheck cycle (every
   link made due at once), and the time a SIGTERM takes to exit;
4. prints the politeness bound: for each host, its URLs x max(latency / per-host
   limit, per-host interval); the largest over hosts (or the global-concurrency bound
   if larger). Targets: idle CPU < 1 %, RSS < 250 MB, recheck cycle <= 1.5 x bound.

Only 127.0.0.1 is contacted. Archiving is off (archive_interval = 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import psutil
import trustme
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select, update  # noqa: E402

from checker.rules import load_rules  # noqa: E402
from checker.settings import Settings  # noqa: E402
from checker.store import Store  # noqa: E402
from checker.store.schema import links  # noqa: E402


def host_latency(host: str, scale: float) -> float:
    """Seconds the simulated host takes to answer: 20-300 ms, fixed per host."""
    return (20 + zlib.crc32(host.encode()) % 281) / 1000.0 * scale


class SimulatedWeb:
    """Any host, any path: 200 with a title after the host's latency (HTTP and HTTPS)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.ca = trustme.CA()
        self.requests = 0
        self._contexts: dict[str, ssl.SSLContext] = {}
        self.http_port = self.https_port = 0
        self.runner: web.AppRunner | None = None

    def _context_for(self, name: str) -> ssl.SSLContext:
        context = self._contexts.get(name)
        if context is None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert(name).configure_cert(context)
            self._contexts[name] = context
        return context

    def _sni(self, sslobj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        if name:
            sslobj.context = self._context_for(name)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        host = (request.host or "").split(":")[0].lower()
        await asyncio.sleep(host_latency(host, self.scale))
        return web.Response(text=f"<!doctype html><title>{host} page</title><p>ok", content_type="text/html")

    async def start(self) -> "SimulatedWeb":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        base = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("localhost").configure_cert(base)
        base.sni_callback = self._sni
        plain = web.TCPSite(self.runner, "127.0.0.1", 0)
        secure = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=base)
        await plain.start()
        await secure.start()
        self.http_port = plain._server.sockets[0].getsockname()[1]
        self.https_port = secure._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.runner:
            await self.runner.cleanup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sampler:
    """Samples a process's RSS and CPU time."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak_rss = 0

    def cpu(self) -> float:
        times = self.proc.cpu_times()
        return times.user + times.system

    def rss(self) -> int:
        value = self.proc.memory_info().rss
        self.peak_rss = max(self.peak_rss, value)
        return value


async def metric(port: int, name: str) -> float | None:
    """A sample's value from the daemon's /metrics (None when absent or not up)."""
    import aiohttp
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
    except aiohttp.ClientError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{") and line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return None


async def wait_until_none_due(port: int, sampler: Sampler, timeout: float) -> float:
    """Seconds until /metrics says no link is due (RSS sampled meanwhile)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        sampler.rss()
        due = await metric(port, "linkhealth_links_due")
        if due == 0:
            return time.monotonic() - start
        await asyncio.sleep(0.5)
    raise SystemExit(f"links still due after {timeout}s")


def events(log: Path, name: str) -> list[dict]:
    out = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == name:
            out.append(record)
    return out


async def politeness_bound(db_url: str, settings: Settings, scale: float) -> tuple[float, int, str]:
    """(bound seconds, links fetched, slowest host) over the links the daemon fetches."""
    rules = load_rules(settings.health)
    store = await Store.open(db_url, upgrade=False)
    try:
        async with store.engine.connect() as conn:
            rows = (await conn.execute(
                select(links.c.host, func.count()).where(links.c.active.is_(True))
                .where(links.c.status != "excluded").group_by(links.c.host))).all()
    finally:
        await store.close()
    worst, worst_host, total_work, total = 0.0, "", 0.0, 0
    for host, n in rows:
        policy = rules.host_policy(host)
        per_host = policy.per_host or settings.check.per_host
        interval = policy.interval if policy.interval is not None else settings.check.per_host_interval
        latency = host_latency(host, scale)
        t = n * max(latency / per_host, interval)
        total_work += n * latency
        total += n
        if t > worst:
            worst, worst_host = t, host
    return max(worst, total_work / settings.check.concurrency), total, worst_host


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", default="/work/shared/corpus/notes")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle measurement")
    parser.add_argument("--latency-scale", type=float, default=1.0)
    parser.add_argument("--per-host", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--db", default="", help="database URL (default: SQLite in a temp folder)")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()

    sim = await SimulatedWeb(args.latency_scale).start()
    work = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    ca_file = work / "ca.pem"
    sim.ca.cert_pem.write_to_path(str(ca_file))
    port = free_port()
    db_url = args.db or f"sqlite:///{work / 'data' / 'linkhealth.db'}"
    connect = [f":80:127.0.0.1:{sim.http_port}", f":443:127.0.0.1:{sim.https_port}"]
    config = work / "bench.toml"
    config.write_text("\n".join([
        f"db = {json.dumps(db_url)}", f"data_dir = {json.dumps(str(work / 'data'))}",
        "[notes]", f"paths = [{json.dumps(args.notes)}]",
        "[check]", f"connect_to = {json.dumps(connect)}", f"ca_file = {json.dumps(str(ca_file))}",
        f"per_host = {args.per_host}", "retries = 0", 'timeout = "10s"',
        "[daemon]", f'listen = "127.0.0.1:{port}"', 'scan_interval = "1h"', 'check_interval = "60s"',
        "archive_interval = 0", f"batch_size = {args.batch_size}", 'log_format = "json"',
    ]) + "\n", encoding="utf-8")
    settings = Settings().with_overrides({"check.per_host": args.per_host})
    log = work / "daemon.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKHEALTH_")}
    env["PYTHONPATH"] = str(REPO)
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "checker.cli", "daemon", "--config", str(config)],
                                cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    sampler = Sampler(proc.pid)
    try:
        while not events(log, "scan.done"):
            if proc.poll() is not None:
                raise SystemExit(f"daemon exited {proc.returncode}; see {log}")
            sampler.rss()
            await asyncio.sleep(0.2)
        scan = events(log, "scan.done")[0]
        scan_end = time.monotonic()
        first_cycle = await wait_until_none_due(port, sampler, args.timeout)
        cpu_cycle = sampler.cpu()
        bound, fetched, worst_host = await politeness_bound(db_url, settings, args.latency_scale)

        # Idle: wait for the report that follows the cycle, then measure.
        reports = len(events(log, "report.written"))
        deadline = time.monotonic() + 120
        while len(events(log, "report.written")) == reports and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)
        cpu0, wall0 = sampler.cpu(), time.monotonic()
        rss_samples = []
        while time.monotonic() - wall0 < args.idle:
            rss_samples.append(sampler.rss())
            await asyncio.sleep(1.0)
        idle_cpu = (sampler.cpu() - cpu0) / (time.monotonic() - wall0) * 100

        # Full recheck: every link due now.
        store = await Store.open(db_url, upgrade=False)
        async with store.engine.begin() as conn:
            await conn.execute(update(links).values(next_check_at=datetime.now(timezone.utc)))
        await store.close()
        requests_before, batches_before = sim.requests, len(events(log, "check.batch"))
        await wait_until_none_due(port, sampler, args.timeout)
        done_at = datetime.now(timezone.utc)
        rechecked = sim.requests - requests_before
        # The cycle counts from the start of its first batch: the wait for the check
        # job's next wake-up (up to check_interval) is scheduling, not checking.
        first = events(log, "check.batch")[batches_before]
        first_start = datetime.fromisoformat(first["ts"].replace("Z", "+00:00")).timestamp() - first["seconds"]
        recheck = done_at.timestamp() - first_start

        t_stop = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        stop_seconds = time.monotonic() - t_stop
    finally:
        if proc.poll() is None:
            proc.kill()
        await sim.close()

    print(f"corpus: {args.notes}  notes={scan.get('notes')} links={scan.get('links')} fetched={fetched} "
          f"per_host={args.per_host} batch_size={args.batch_size} latency_scale={args.latency_scale}")
    print(f"start -> first scan done:     {scan_end - started:7.1f} s (scan itself {scan.get('seconds')} s)")
    print(f"first full check cycle:       {first_cycle:7.1f} s  ({cpu_cycle:.1f} s CPU since start)")
    print(f"full recheck cycle:           {recheck:7.1f} s  ({rechecked} requests; from its first batch's start)")
    print(f"politeness bound:             {bound:7.1f} s  (slowest host {worst_host}); "
          f"recheck/bound = {recheck / bound:.2f} (target <= 1.5)")
    print(f"idle CPU over {args.idle:.0f} s:          {idle_cpu:7.2f} %  (target < 1 %)")
    print(f"RSS idle / peak:              {max(rss_samples) / 2**20:7.1f} / {sampler.peak_rss / 2**20:.1f} MB "
          f"(target < 250 MB)")
    print(f"SIGTERM -> exit:              {stop_seconds:7.1f} s, exit code {code}")
    print(f"log: {log}")


if __name__ == "__main__":
    asyncio.run(main())
