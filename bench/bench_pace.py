"""Benchmark: a default audit against hosts that throttle, their limits not told to the checker.

Run::

    .venv/bin/python bench/bench_pace.py              # two audits: cold, then with the learned pace
    .venv/bin/python bench/bench_pace.py --runs 1 --scale 0.5

The simulated web (bench/throttle.py, on 127.0.0.1 only) has:

- mp.weixin.qq.com: more than 10 requests starting within 5 s send the client to the
  verification page (302 to /mp/wappoc_appmsgcaptcha) for 30 s;
- cap-ra.example.com: more than 2 in flight answer 429 with Retry-After: 1;
- cap-bare.example.com: more than 2 in flight answer 429 without Retry-After;
- slow.example.com: each request in flight beyond 2 makes every answer 3x slower;
- 20 hosts that answer well.

``linkhealth audit`` runs with its defaults (per-host 4, concurrency 64), through
``--connect-to``. The oracle is each host's time at its exact limit, without any
overhead (a lower bound of what a client that knows the limits needs); the run's is the
largest. Targets (issue 13): no URL ``blocked`` (every page here is live: a blocked one
was refused because of the checker's own pace), wall time <= 2x the oracle, and no
host ever saw more requests in flight than the per-host limit. Wall, CPU and peak RSS
of the child come from /usr/bin/time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))

from bench_audit import write_notes  # noqa: E402
from bench_daemon import SimulatedWeb  # noqa: E402
from throttle import CAPTCHA, CAPTCHA_PATH, LIVE, ConcurrencyCap, Ledger, RateWindow, SlowsUnderLoad  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WECHAT = "mp.weixin.qq.com"


class ThrottledWeb(SimulatedWeb):
    """Every host on one server; each with its latency and throttle; a ledger of requests."""

    def __init__(self, hosts: dict[str, tuple[float, object | None]]) -> None:
        super().__init__(1.0)
        self.hosts = hosts
        self.ledger = Ledger()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        host = (request.host or "").split(":")[0].lower()
        latency, throttle = self.hosts.get(host, (0.05, None))
        now = self.ledger.enter(host)
        try:
            if request.path.startswith(CAPTCHA_PATH):
                await asyncio.sleep(latency)
                return web.Response(text=CAPTCHA, content_type="text/html")
            refuse = throttle.enter(now) if throttle is not None else None
            try:
                if refuse is not None:
                    await asyncio.sleep(latency / 2)
                    return web.Response(status=refuse.status, headers=dict(refuse.headers), text=refuse.text,
                                        content_type="text/html")
                wait = throttle.latency(latency, self.ledger.in_flight[host]) if throttle else latency
                await asyncio.sleep(wait)
            finally:
                if throttle is not None:
                    throttle.leave(time.monotonic())
            title = f"{host} 文章 {request.path_qs}"
            return web.Response(text=LIVE.format(title=title, body=request.path_qs), content_type="text/html")
        finally:
            self.ledger.leave(host)


def plan(scale: float) -> tuple[dict[str, tuple[float, object | None]], dict[str, int]]:
    """Hosts (latency, throttle) and how many URLs each has."""
    hosts: dict[str, tuple[float, object | None]] = {
        WECHAT: (0.08, RateWindow(starts=10, window=5.0, sanction=30.0, verification=True)),
        "cap-ra.example.com": (0.15, ConcurrencyCap(cap=2, retry_after=1)),
        "cap-bare.example.com": (0.15, ConcurrencyCap(cap=2)),
        "slow.example.com": (0.15, SlowsUnderLoad(knee=2, factor=3.0)),
    }
    sizes = {WECHAT: 120, "cap-ra.example.com": 700, "cap-bare.example.com": 700, "slow.example.com": 700}
    for i in range(20):
        hosts[f"fine{i:02d}.example.com"] = (0.1, None)
        sizes[f"fine{i:02d}.example.com"] = 20
    return hosts, {h: max(1, int(n * scale)) for h, n in sizes.items()}


def oracle(hosts, sizes, per_host: int, concurrency: int) -> tuple[float, str]:
    """The largest per-host time at the exact limits (and the global bound); and its host."""
    times = {}
    for host, n in sizes.items():
        latency, throttle = hosts[host]
        times[host] = throttle.oracle(n, latency, per_host) if throttle else n * latency / per_host
    work = sum(n * hosts[h][0] for h, n in sizes.items()) / concurrency
    host = max(times, key=times.__getitem__)
    return max(times[host], work), host


async def audit(work: Path, sim: ThrottledWeb, ca: Path, extra: list[str]) -> dict:
    """One `linkhealth audit` child under /usr/bin/time; its numbers and statuses."""
    out, timing = work / "audit.json", work / "time.txt"
    cmd = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(timing),
           str(ROOT / ".venv/bin/linkhealth"), "audit", str(work / "notes"),
           "--connect-to", f":80:127.0.0.1:{sim.http_port}", "--connect-to", f":443:127.0.0.1:{sim.https_port}",
           "--ca-file", str(ca), "--db", f"sqlite:///{work / 'bench.db'}", "--format", "json",
           "-o", str(out), "--fail-on", "never", *extra]
    child = await asyncio.create_subprocess_exec(*cmd, cwd=str(work), env={**os.environ},
                                                 stdout=asyncio.subprocess.DEVNULL,
                                                 stderr=asyncio.subprocess.PIPE)
    _, stderr = await child.communicate()
    wall, user, system, rss_kb = timing.read_text().split()[-4:]
    links = json.loads(out.read_text(encoding="utf-8"))["links"] if out.exists() else []
    return {"code": child.returncode, "wall": float(wall), "cpu": float(user) + float(system),
            "rss_mb": int(rss_kb) / 1024, "statuses": Counter(str(link["status"]) for link in links),
            "blocked": [link["url"] for link in links if link["status"] == "blocked"],
            "stderr": stderr.decode("utf-8", "replace")}


async def main(args: argparse.Namespace) -> int:
    hosts, sizes = plan(args.scale)
    urls = [f"https://{host}/s/{i:05d}" for host, n in sizes.items() for i in range(n)]
    bound, slowest = oracle(hosts, sizes, args.per_host, 64)
    print(f"{len(urls)} URLs on {len(hosts)} hosts; oracle {bound:.1f} s ({slowest}); target <= {2 * bound:.1f} s")
    ok = True
    with tempfile.TemporaryDirectory(prefix="lh-pace-") as tmp:
        work = Path(tmp)
        write_notes(SimpleNamespace(urls=urls), work / "notes")
        sim = await ThrottledWeb(hosts).start()
        ca = work / "ca.pem"
        sim.ca.cert_pem.write_to_path(str(ca))
        try:
            for run in range(1, args.runs + 1):
                sim.ledger = Ledger()
                refused_before = {h: getattr(t, "refusals", 0) for h, (_, t) in hosts.items()}
                got = await audit(work, sim, ca, ["--per-host", str(args.per_host)])
                refusals = {h: getattr(t, "refusals", 0) - refused_before[h] for h, (_, t) in hosts.items()}
                peaks = dict(sim.ledger.peak)
                over = {h: p for h, p in peaks.items() if p > args.per_host}
                print(f"run {run}: exit {got['code']}  wall {got['wall']:.1f} s  ({got['wall'] / bound:.2f}x oracle)  "
                      f"cpu {got['cpu']:.1f} s  peak RSS {got['rss_mb']:.0f} MB")
                print(f"  statuses {dict(sorted(got['statuses'].items()))}; blocked {len(got['blocked'])}")
                for host in list(hosts)[:4]:
                    s = sim.ledger.starts.get(host, [])
                    span = (s[-1] - s[0]) if len(s) > 1 else 0.0
                    print(f"  {host:24} {sizes[host]:4} URLs  {len(s):5} requests  refused {refusals[host]:4}  "
                          f"peak in flight {peaks.get(host, 0)}  busy {span:6.1f} s")
                for line in got["stderr"].splitlines():
                    if "warning" in line:
                        print("  " + line.strip())
                stuck = {h: t.in_flight for h, (_, t) in hosts.items() if getattr(t, "in_flight", 0)}
                if stuck:
                    print(f"  server still counts requests in flight: {stuck}")
                if over:
                    print(f"  CEILING PASSED: {over}")
                ok &= not got["blocked"] and not over and got["wall"] <= 2 * bound and got["code"] in (0, 1)
        finally:
            await sim.close()
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every host's URL count")
    parser.add_argument("--per-host", type=int, default=4)
    sys.exit(asyncio.run(main(parser.parse_args())))
