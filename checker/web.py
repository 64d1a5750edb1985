"""The daemon's small HTTP server (aiohttp.web): the report, a JSON API, health and metrics.

    GET /                 the latest HTML report file (503 until the first one is written)
    GET /api/links        links from the database: ?status=&health=&q=&active=&limit=&offset=
                          (a bad or unknown parameter: 400 with the reason, see webparams)
    GET /api/runs         recent runs (?limit=)
    GET /healthz          200 while the scheduler runs and the database answers, else 503
    GET /metrics          Prometheus text format (version 0.0.4)
    GET /archive/...      local copies and WARC files (checker/webarchive.py)

When a token is configured every endpoint but ``/healthz`` needs ``Authorization:
Bearer <token>`` or, for browsers, the session cookie that ``/login`` sets (webauth); listening on anything but loopback without a token is refused
(:func:`check_exposure`), because the API shows every URL of the notes.

Without a token (loopback only), every endpoint but ``/healthz`` also checks the Host
header: only the listen address, ``localhost``, ``127.0.0.1`` and ``[::1]`` (with any
port) are served, anything else gets 421. Otherwise a web page could rebind its own name
to 127.0.0.1 (DNS rebinding) and read the API and the report from the user's browser.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from .errors import ConfigError
from .settings import Settings
from .store import daemonquery
from . import webauth, webparams
from .weblog import server_logger
from .webarchive import archive_route

__all__ = [
    "Metrics", "create_app", "start_web", "parse_listen", "is_loopback", "check_exposure",
    "LATENCY_BUCKETS",
]

#: Upper bounds (seconds) of the check latency histogram; a page usually answers in 0.05-2 s,
#: and check.timeout defaults to 20 s.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
PING_TIMEOUT = 3.0


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8787``, ``:8787`` for every address) -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep:
        raise ConfigError(f"daemon.listen {value!r} is not HOST:PORT (e.g. 127.0.0.1:8787)", key="daemon.listen")
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"daemon.listen {value!r}: the port must be a number", key="daemon.listen") from None
    if not 0 <= number <= 65535:
        raise ConfigError(f"daemon.listen {value!r}: port out of range", key="daemon.listen")
    return host.strip("[]"), number


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost``; an empty host means every address."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False   # a name other than localhost may resolve anywhere: treat as public


def check_exposure(host: str, token: str) -> bool:
    """Whether a token is required; raises ConfigError on a public address without one."""
    if is_loopback(host):
        return bool(token)
    if not token:
        raise ConfigError(f"refusing to listen on {host or 'every address'} without a token: set daemon.token "
                          "or LINKHEALTH_DAEMON_TOKEN, or listen on 127.0.0.1", key="daemon.token")
    return True


@dataclass
class Metrics:
    """In-process counters of the daemon (the database gives the gauges at scrape time)."""

    checks: Counter = field(default_factory=Counter)                    # by status
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_count: int = 0
    latency_sum: float = 0.0
    job_runs: Counter = field(default_factory=Counter)                  # (job, result)
    job_last_run: dict[str, float] = field(default_factory=dict)        # job -> unix time of last end
    job_last_duration: dict[str, float] = field(default_factory=dict)
    archive_results: Counter = field(default_factory=Counter)           # (service, outcome)
    started_at: float = field(default_factory=time.time)

    def observe_check(self, status: str, latency_ms: int | None) -> None:
        """Count one finished check and its latency."""
        self.checks[status] += 1
        if latency_ms is None:
            return
        seconds = latency_ms / 1000.0
        self.latency_count += 1
        self.latency_sum += seconds
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.latency_buckets[i] += 1

    def observe_job(self, job: str, result: str, started: float, ended: float) -> None:
        """Record one job run: its result (ok, failed, cancelled), end time and duration."""
        self.job_runs[(job, result)] += 1
        self.job_last_run[job] = ended
        self.job_last_duration[job] = ended - started


def _label(value: Any) -> str:
    # Prometheus text format: backslash, double quote and newline are escaped in label values.
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Exposition:
    """Builds the Prometheus text exposition, one metric family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str, samples: list[tuple[dict, float]]) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.sample(name, labels, value)

    def sample(self, name: str, labels: dict, value: float) -> None:
        text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        number = "+Inf" if value == math.inf else repr(float(value)) if isinstance(value, float) else str(value)
        self.lines.append(f"{name}{{{text}}} {number}" if text else f"{name} {number}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


async def render_metrics(store: Any, metrics: Metrics, *, lease_held: bool, now: datetime) -> str:
    """The Prometheus exposition: database gauges plus the in-process counters."""
    counts = await daemonquery.link_counts(store)
    due = await daemonquery.due_count(store, now)
    archive = await daemonquery.archive_counts(store)
    runs = await store.runs(limit=1) if hasattr(store, "runs") else []
    out = _Exposition()
    out.family("linkhealth_links", "gauge", "Active links by latest status.",
               [({"status": s}, n) for s, n in sorted(counts["status"].items())])
    out.family("linkhealth_links_health", "gauge", "Active links by health.",
               [({"health": h}, n) for h, n in sorted(counts["health"].items())])
    out.family("linkhealth_links_due", "gauge", "Active links due for a check now.", [({}, due)])
    out.family("linkhealth_checks_total", "counter", "Checks done by this process, by status.",
               [({"status": s}, n) for s, n in sorted(metrics.checks.items())] or [({"status": "ok"}, 0)])
    _histogram(out, metrics)
    out.family("linkhealth_archive_jobs", "gauge", "Archive queue entries by service, action and state.",
               [({"service": s, "action": a, "state": st}, n) for s, a, st, n in sorted(archive["jobs"])])
    out.family("linkhealth_snapshots", "gauge", "Archived copies by service.",
               [({"service": s}, n) for s, n in sorted(archive["snapshots"].items())])
    out.family("linkhealth_archive_submissions_total", "counter",
               "Archive jobs run by this process, by service and outcome.",
               [({"service": s, "outcome": o}, n) for (s, o), n in sorted(metrics.archive_results.items())])
    out.family("linkhealth_job_runs_total", "counter", "Scheduled job runs by job and result.",
               [({"job": j, "result": r}, n) for (j, r), n in sorted(metrics.job_runs.items())])
    out.family("linkhealth_job_last_run_timestamp_seconds", "gauge", "When each job last finished (unix time).",
               [({"job": j}, t) for j, t in sorted(metrics.job_last_run.items())])
    out.family("linkhealth_job_last_duration_seconds", "gauge", "How long each job's last run took.",
               [({"job": j}, t) for j, t in sorted(metrics.job_last_duration.items())])
    last = _last_run_time(runs)
    out.family("linkhealth_last_run_timestamp_seconds", "gauge", "Start of the newest run in the database.",
               [({}, last)] if last is not None else [])
    out.family("linkhealth_lease_held", "gauge", "1 while this process holds the daemon lease.",
               [({}, 1 if lease_held else 0)])
    out.family("linkhealth_process_start_time_seconds", "gauge", "When this process started (unix time).",
               [({}, metrics.started_at)])
    from .cluster.status import cluster_status, metric_families   # workers, queue depth (cluster mode)
    for family in metric_families(await cluster_status(store)):
        out.family(*family)
    return out.text()


def _histogram(out: _Exposition, metrics: Metrics) -> None:
    name = "linkhealth_check_latency_seconds"
    out.lines.append(f"# HELP {name} Latency of the last attempt of each check.")
    out.lines.append(f"# TYPE {name} histogram")
    for bound, count in zip(LATENCY_BUCKETS, metrics.latency_buckets):
        out.sample(f"{name}_bucket", {"le": repr(bound)}, count)
    out.sample(f"{name}_bucket", {"le": "+Inf"}, metrics.latency_count)
    out.sample(f"{name}_sum", {}, float(metrics.latency_sum))
    out.sample(f"{name}_count", {}, metrics.latency_count)


def _last_run_time(runs: list[dict]) -> float | None:
    if not runs:
        return None
    started = runs[0].get("started_at")
    if isinstance(started, datetime):
        if started.tzinfo is None:
            started = started.replace(tzinfo=timezone.utc)
        return started.timestamp()
    return None


def _json(data: Any, status: int = 200) -> web.Response:
    body = json.dumps(data, ensure_ascii=False, default=_default)
    return web.Response(text=body, status=status, content_type="application/json", charset="utf-8")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return str(value)


@dataclass(frozen=True)
class _Ctx:
    store: Any
    settings: Settings
    metrics: Metrics
    state: Callable[[], str]           # the daemon's state: running, standby, stopping...
    lease_held: Callable[[], bool]


_CTX = web.AppKey("linkhealth", _Ctx)


#: Host names always accepted by the Host check (besides the listen address).
LOCAL_HOSTS = frozenset({"localhost", "localhost.", "127.0.0.1", "::1"})


def _host_name(header: str) -> str | None:
    """The host part of a Host header, lowercased, without brackets or port; None if malformed."""
    value = header.strip().lower()
    if value.startswith("["):                       # [::1] or [::1]:8787
        name, sep, rest = value[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return name
    name, sep, port = value.partition(":")
    if sep and not port.isdigit():                  # a second colon, or a port that is no number
        return None
    return name or None


def allowed_hosts(listen_host: str) -> frozenset[str]:
    """Host names the Host check accepts: the loopback names and the listen address."""
    extra = {listen_host.strip("[]").lower()} if listen_host else set()
    return LOCAL_HOSTS | extra


def _host_middleware(allowed: frozenset[str]):
    @web.middleware
    async def middleware(request: web.Request, handler):
        # No token: the only guard of the API is that it listens on loopback. A browser
        # tricked by DNS rebinding reaches it too, but still sends the attacker's name as
        # Host. A request without Host (HTTP/1.0) comes from no browser: let it through.
        header = request.headers.get("Host")
        if request.path != "/healthz" and header is not None and _host_name(header) not in allowed:
            return web.Response(text="misdirected request: unknown Host header (use http://127.0.0.1:PORT/, "
                                     "or set daemon.token)\n", status=421)
        return await handler(request)

    return middleware


async def _index(request: web.Request) -> web.StreamResponse:
    ctx = request.app[_CTX]
    path = Path(ctx.settings.report_path)
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
               # The report is one self-contained file: nothing needs to load from elsewhere.
               "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                                          "style-src 'unsafe-inline'; img-src data:; connect-src 'none'"}
    if not path.is_file():
        return web.Response(text="<!doctype html><meta charset=utf-8><title>linkhealth</title>"
                                 "<p>No report yet: it is written after the first check batch.</p>",
                            status=503, content_type="text/html", charset="utf-8",
                            headers={"Retry-After": "30", **headers})
    return web.FileResponse(path, headers={"Content-Type": "text/html; charset=utf-8", **headers})


async def _links(request: web.Request) -> web.Response:
    ctx = request.app[_CTX]
    try:
        p = webparams.links_query(request.query)
    except webparams.BadParam as exc:
        return _json(exc.body(), status=400)
    total, rows = await daemonquery.list_links(ctx.store, status=p.status, health=p.health, q=p.q,
                                               active=p.active, limit=p.limit, offset=p.offset)
    return _json({"total": total, "limit": p.limit, "offset": p.offset, "links": rows})


async def _runs(request: web.Request) -> web.Response:
    ctx = request.app[_CTX]
    try:
        limit = webparams.runs_limit(request.query)
    except webparams.BadParam as exc:
        return _json(exc.body(), status=400)
    return _json({"runs": await ctx.store.runs(limit=limit)})


async def _healthz(request: web.Request) -> web.Response:
    ctx = request.app[_CTX]
    state = ctx.state()
    try:
        database = await asyncio.wait_for(daemonquery.ping(ctx.store), PING_TIMEOUT)
    except Exception:  # any failure to answer is "the database does not answer"
        database = False
    ok = state == "running" and database
    return _json({"status": "ok" if ok else "unavailable", "state": state, "database": database},
                 status=200 if ok else 503)


async def _metrics(request: web.Request) -> web.Response:
    ctx = request.app[_CTX]
    text = await render_metrics(ctx.store, ctx.metrics, lease_held=ctx.lease_held(),
                                now=datetime.now(timezone.utc))
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"X-Prometheus-Format": "0.0.4"})


def create_app(store: Any, settings: Settings, *, metrics: Metrics, state: Callable[[], str],
               lease_held: Callable[[], bool] = lambda: False, token: str | None = None) -> web.Application:
    """The aiohttp application; ``token`` (default settings.daemon.token) guards all but /healthz.

    Without a token, all but /healthz answer only to a loopback Host header or the one of
    daemon.listen (against DNS rebinding).
    """
    token = settings.daemon.token if token is None else token
    if token:
        middlewares = [webauth.auth_middleware(token)]
    else:
        host, _ = parse_listen(settings.daemon.listen)
        middlewares = [_host_middleware(allowed_hosts(host))]
    app = web.Application(middlewares=middlewares)
    app[_CTX] = _Ctx(store, settings, metrics, state, lease_held)
    app.router.add_get("/", _index)
    app.router.add_get("/api/links", _links)
    app.router.add_get("/api/runs", _runs)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    if token:   # a browser signs in with the token and keeps a cookie (webauth)
        webauth.add_login_routes(app, token, title=settings.report.title, max_age=settings.daemon.session_max_age)
    app.router.add_get("/archive/{path:.*}", archive_route(settings.archive_dir))
    return app


async def start_web(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving ``app`` on host:port; returns the runner (cleanup() stops it) and the bound port."""
    # Requests that do not parse are a rate-limited warning, not a traceback each (weblog).
    runner = web.AppRunner(app, access_log=None, handle_signals=False, logger=server_logger())
    await runner.setup()
    site = web.TCPSite(runner, host or None, port, reuse_address=True)
    await site.start()
    bound = port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        bound = server.sockets[0].getsockname()[1]
    return runner, bound
