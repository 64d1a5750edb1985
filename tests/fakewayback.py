"""A faithful imitation of the Wayback Machine endpoints, on 127.0.0.1, scriptable per test.

Endpoints (shapes as the real service answers them, issue 5 and the SPN2 document):

- ``POST /save``                 SPN2: form ``url=``; JSON ``{"url", "job_id"}``
- ``GET  /save/status/<job_id>`` ``{"status": "pending"|"success"|"error", ...}``
- ``GET  /wayback/available``    ``{"url", "archived_snapshots": {"closest": {...}}}``
- ``GET  /cdx/search/cdx``       JSON rows with ``output=json``, else space-separated text
- ``GET  /web/<ts>/<url>``       302 to the nearest capture, 200 on an exact one

Scripting::

    fake = await FakeWayback().start()
    fake.save_plan = ["ok", ("429", 3), ("error", "error:user-session-limit"), "html", "500"]
    fake.status_plan = ["pending", "pending", "success"]     # per job (the default)
    fake.status_plan = ["pending"] * 10**6                   # a job pending forever
    fake.wrong_url = "https://example.com/login"             # success, but of another URL
    fake.add_capture("https://a.example/x", "20200101000000", status=200)
    fake.available_mode = "html" | "429" | "normal"; fake.cdx_mode likewise
    settings = fake.settings(base_settings)                  # every archive URL pointed here

``fake.log`` holds (endpoint, monotonic time, headers) for every request, so tests can
measure the rate on the server's side; ``fake.times("save")`` gives the POST times.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from checker.settings import Settings

__all__ = ["FakeWayback", "Capture"]


@dataclass
class Capture:
    """One capture the fake knows."""

    original: str
    timestamp: str
    status: int = 200
    mimetype: str = "text/html"


@dataclass
class _Job:
    url: str
    plan: list[Any]
    polls: int = 0


class FakeWayback:
    """The fake service; see the module docstring."""

    def __init__(self) -> None:
        self.save_plan: list[Any] = []        # consumed one per POST; empty -> "ok"
        self.status_plan: list[Any] = ["pending", "pending", "success"]
        self.wrong_url: str | None = None
        self.require_keys = True
        self.available_mode = "normal"
        self.cdx_mode = "normal"
        self.retry_after = "5"
        self.captures: list[Capture] = []
        self.jobs: dict[str, _Job] = {}
        self.log: list[tuple[str, float, dict[str, str]]] = []
        self.forms: list[dict[str, str]] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base = ""

    # -- scripting ------------------------------------------------------------------------
    def add_capture(self, original: str, timestamp: str, status: int = 200) -> None:
        """Pretend the archive holds a capture."""
        self.captures.append(Capture(original, timestamp, status))

    def settings(self, base: Settings | None = None, **archive: Any) -> Settings:
        """Settings with every Wayback URL pointed at this fake (plus ``archive`` overrides)."""
        # The imitation speaks plain http on loopback: the keys may go there.
        urls = {"save_url": f"{self.base}/save", "status_url": f"{self.base}/save/status",
                "availability_url": f"{self.base}/wayback/available",
                "cdx_url": f"{self.base}/cdx/search/cdx", "web_url": f"{self.base}/web",
                "allow_http_keys": True}
        return (base or Settings()).with_overrides({f"archive.{k}": v for k, v in {**urls, **archive}.items()})

    def times(self, endpoint: str) -> list[float]:
        """Monotonic times of the requests to one endpoint."""
        return [t for name, t, _ in self.log if name == endpoint]

    def count(self, endpoint: str) -> int:
        """How many requests one endpoint got."""
        return len(self.times(endpoint))

    def headers(self, endpoint: str) -> list[dict[str, str]]:
        """Request headers seen by one endpoint."""
        return [h for name, _, h in self.log if name == endpoint]

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> "FakeWayback":
        """Listen on a random port of 127.0.0.1."""
        app = web.Application()
        app.router.add_post("/save", self._save)
        app.router.add_get("/save/status/{job_id}", self._status)
        app.router.add_get("/wayback/available", self._available)
        app.router.add_get("/cdx/search/cdx", self._cdx)
        app.router.add_get("/web/{ts:[0-9]+}/{url:.*}", self._web)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - aiohttp has no public getter
        self.base = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def _note(self, endpoint: str, request: web.Request) -> None:
        self.log.append((endpoint, time.monotonic(), dict(request.headers)))

    # -- SPN2 -----------------------------------------------------------------------------
    async def _save(self, request: web.Request) -> web.StreamResponse:
        self._note("save", request)
        form = dict(await request.post())
        self.forms.append(form)
        step = self.save_plan.pop(0) if self.save_plan else "ok"
        if self.require_keys and not request.headers.get("Authorization", "").startswith("LOW "):
            # Anonymous saving is refused (issue 5: "refused or throttled hard").
            return web.json_response({"status": "error", "status_ext": "error:unauthorized",
                                      "message": "You need to be logged in."}, status=401)
        if isinstance(step, tuple) and step[0] == "429":
            return web.Response(status=429, text="<html><body>Too Many Requests</body></html>",
                                content_type="text/html", headers={"Retry-After": str(step[1])})
        if step == "echo":
            # Some error pages quote the request back, headers and all.
            return web.json_response({"status": "error", "status_ext": "error:bad-request",
                                      "message": "bad request: Authorization: "
                                                 f"{request.headers.get('Authorization', '')}"})
        if isinstance(step, tuple) and step[0] == "error":
            return web.json_response({"status": "error", "status_ext": step[1],
                                      "message": f"scripted {step[1]}"})
        if step == "html":
            return web.Response(text="<html><head><title>Internet Archive: Error</title></head>"
                                     "<body>Service unavailable</body></html>", content_type="text/html")
        if step == "500":
            return web.Response(status=502, text="Bad Gateway")
        job_id = f"spn2-{next(self._ids):06x}"
        self.jobs[job_id] = _Job(form.get("url", ""), list(self.status_plan))
        return web.json_response({"url": form.get("url"), "job_id": job_id})

    async def _status(self, request: web.Request) -> web.StreamResponse:
        self._note("status", request)
        job = self.jobs.get(request.match_info["job_id"])
        if job is None:
            return web.json_response({"status": "error", "status_ext": "error:not-found",
                                      "message": "job not found"})
        step = job.plan[min(job.polls, len(job.plan) - 1)]
        job.polls += 1
        if step == "pending":
            return web.json_response({"status": "pending", "job_id": request.match_info["job_id"],
                                      "resources": []})
        if step == "echo":
            # Some error pages quote the request back, headers and all.
            return web.json_response({"status": "error", "status_ext": "error:bad-request",
                                      "message": "bad request: Authorization: "
                                                 f"{request.headers.get('Authorization', '')}"})
        if isinstance(step, tuple) and step[0] == "error":
            return web.json_response({"status": "error", "status_ext": step[1],
                                      "message": f"scripted {step[1]}", "job_id": request.match_info["job_id"]})
        ts = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
        original = self.wrong_url or job.url
        self.add_capture(original, ts)
        return web.json_response({"status": "success", "job_id": request.match_info["job_id"],
                                  "original_url": original, "timestamp": ts, "duration_sec": 6.3,
                                  "http_status": 200})

    # -- lookups --------------------------------------------------------------------------
    def _of(self, url: str, status: int | None = None) -> list[Capture]:
        return sorted((c for c in self.captures if c.original == url and (status is None or c.status == status)),
                      key=lambda c: c.timestamp)

    async def _available(self, request: web.Request) -> web.StreamResponse:
        self._note("available", request)
        if self.available_mode == "429":
            return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": self.retry_after})
        if self.available_mode == "html":
            return web.Response(text="<html><body>Wayback Machine is down</body></html>", content_type="text/html")
        url = request.query.get("url", "")
        wanted = request.query.get("timestamp", "99999999999999").ljust(14, "0")
        caps = self._of(url) or [c for c in self.captures if url.rstrip("/") in c.original]
        if not caps:
            return web.json_response({"url": url, "archived_snapshots": {}})
        best = min(caps, key=lambda c: abs(int(c.timestamp) - int(wanted[:14])))
        return web.json_response({"url": url, "archived_snapshots": {"closest": {
            "status": str(best.status), "available": True, "timestamp": best.timestamp,
            "url": f"http://web.archive.org/web/{best.timestamp}/{best.original}"}}})

    async def _cdx(self, request: web.Request) -> web.StreamResponse:
        self._note("cdx", request)
        if self.cdx_mode == "429":
            return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": self.retry_after})
        if self.cdx_mode == "html":
            return web.Response(status=503, text="<html><body>Service Unavailable</body></html>",
                                content_type="text/html")
        q = request.query
        caps = self._of(q.get("url", ""))
        for flt in q.getall("filter", []):
            if flt.startswith("statuscode:"):
                caps = [c for c in caps if str(c.status) == flt.split(":", 1)[1]]
        if "to" in q:
            caps = [c for c in caps if c.timestamp <= q["to"].ljust(14, "9")]
        if "from" in q:
            caps = [c for c in caps if c.timestamp >= q["from"].ljust(14, "0")]
        limit = int(q.get("limit", "0") or 0)
        if limit < 0:
            caps = caps[limit:]
        elif limit > 0:
            caps = caps[:limit]
        rows = [[_urlkey(c.original), c.timestamp, c.original, c.mimetype, str(c.status),
                 "A" * 32, "1234"] for c in caps]
        if q.get("output") == "json":
            if not rows:
                return web.Response(text="[]", content_type="application/json")
            head = ["urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length"]
            return web.Response(text=json.dumps([head, *rows]), content_type="application/json")
        return web.Response(text="\n".join(" ".join(r) for r in rows) + ("\n" if rows else ""))

    async def _web(self, request: web.Request) -> web.StreamResponse:
        self._note("web", request)
        ts = request.match_info["ts"]
        url = unquote(request.match_info["url"])
        if request.query_string:
            url += "?" + request.query_string
        caps = self._of(url)
        if not caps:
            return web.Response(status=404, text="<html><body>Hrm. The Wayback Machine has not "
                                                 "archived that URL.</body></html>", content_type="text/html")
        best = min(caps, key=lambda c: abs(int(c.timestamp) - int(ts.ljust(14, "0")[:14])))
        if best.timestamp != ts:
            raise web.HTTPFound(f"/web/{best.timestamp}/{best.original}")
        return web.Response(text=f"<html><head><title>capture of {best.original}</title></head>"
                                 f"<body>archived {best.timestamp}</body></html>", content_type="text/html",
                            headers={"Memento-Datetime": best.timestamp})


def _urlkey(url: str) -> str:
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    host = ",".join(reversed((parts.hostname or "").split(".")))
    return f"{host}){parts.path or '/'}"


# -- helpers shared by the archive tests (rows the pipeline would have written) -----------

async def add_link(store: Any, url: str, *, health: str = "alive", at_risk: bool = False,
                   first_failing_at: datetime | None = None) -> int:
    """Insert an active links row as the check stage leaves it; returns its id."""
    from urllib.parse import urlsplit

    from sqlalchemy import insert

    from checker.store.schema import links
    now = datetime.now(timezone.utc)
    async with store.begin() as conn:
        result = await conn.execute(insert(links).values(
            url=url, display_url=url, host=urlsplit(url).hostname or "", active=True,
            at_risk=at_risk, health=health, status="ok" if health == "alive" else "broken",
            first_failing_at=first_failing_at, fail_streak=0, created_at=now))
        return int(result.inserted_primary_key[0])


async def jobs(store: Any) -> list[dict]:
    """Every archive_jobs row, as dicts, in id order."""
    from sqlalchemy import select

    from checker.store.schema import archive_jobs
    async with store.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(archive_jobs).order_by(archive_jobs.c.id))).mappings()]


async def snaps(store: Any) -> list[dict]:
    """Every snapshots row, as dicts, in id order."""
    from sqlalchemy import select

    from checker.store.schema import snapshots
    async with store.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(snapshots).order_by(snapshots.c.id))).mappings()]


# -- fixtures for the archive tests (import them into a test module to use them) -----------

import pytest as _pytest  # noqa: E402



@_pytest.fixture(params=["sqlite", _pytest.param("postgresql", marks=_pytest.mark.postgres)])
async def archive_db_url(request: Any, tmp_path: Any) -> Any:
    """An empty database: a SQLite file, or a fresh PostgreSQL schema (skipped without the variable)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'linkhealth.db'}"
        return
    from pgschema import fresh_schema_url
    async with fresh_schema_url("lh_archive") as url:
        yield url


@_pytest.fixture
async def archive_store(archive_db_url: str) -> Any:
    """An open Store on ``archive_db_url``."""
    from checker.store import Store
    store = await Store.open(archive_db_url)
    try:
        yield store
    finally:
        await store.close()


@_pytest.fixture
async def fake_wayback() -> Any:
    """A started FakeWayback."""
    fake = await FakeWayback().start()
    try:
        yield fake
    finally:
        await fake.close()


class FakeTime:
    """An injectable clock and sleep: sleeping advances the clock instantly."""

    def __init__(self, start: datetime | None = None) -> None:
        self.t = 1000.0
        self.start = start or datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    def now(self) -> datetime:
        from datetime import timedelta
        return self.start + timedelta(seconds=self.t - 1000.0)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def advance(self, seconds: float) -> None:
        self.t += seconds
