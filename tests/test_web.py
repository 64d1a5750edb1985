"""The daemon's HTTP server in-process: a real aiohttp server on 127.0.0.1 over a real database."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import insert

from checker.errors import ConfigError
from checker.settings import Settings
from checker.store import Store
from checker.store.schema import archive_jobs, links, snapshots
from checker.web import (
    Metrics, _host_name, allowed_hosts, check_exposure, create_app, is_loopback, parse_listen, start_web,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
PG_URL = os.environ.get("LINKHEALTH_TEST_POSTGRES_URL")
BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.skipif(
        not PG_URL, reason="LINKHEALTH_TEST_POSTGRES_URL is not set")]),
]


# -- pure ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1:8787", ("127.0.0.1", 8787)), ("[::1]:9000", ("::1", 9000)),
    (":8787", ("", 8787)), ("0.0.0.0:80", ("0.0.0.0", 80)), ("localhost:0", ("localhost", 0)),
])
def test_parse_listen(value, expected):
    """HOST:PORT with IPv6 brackets and an empty host for every address."""
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["8787", "host:port", "127.0.0.1:70000"])
def test_parse_listen_rejects(value):
    """Not HOST:PORT, a port that is no number or out of range: a ConfigError naming the key."""
    with pytest.raises(ConfigError, match="daemon.listen"):
        parse_listen(value)


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("", False), ("::", False), ("192.168.1.5", False), ("example.com", False),
])
def test_is_loopback(host, loopback):
    """Only loopback addresses and localhost count as private to this machine."""
    assert is_loopback(host) is loopback


def test_exposure_rules():
    """Public without a token is refused; public with one requires it; loopback only if set."""
    with pytest.raises(ConfigError, match="without a token"):
        check_exposure("0.0.0.0", "")
    assert check_exposure("0.0.0.0", "t0ken") is True
    assert check_exposure("127.0.0.1", "") is False
    assert check_exposure("127.0.0.1", "t0ken") is True


# -- the app over a real database --------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path):
    """A migrated Store with a few links, snapshots and archive jobs."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'web.db'}"
    else:
        from test_daemon import _fresh_postgres
        url = await _fresh_postgres()
    store = await Store.open(url)
    rows = [
        dict(url="https://a.example/1", display_url="https://a.example/1", host="a.example", active=True,
             status="ok", health="alive", http_status=200, title="标题 one", checked_at=NOW,
             next_check_at=NOW + timedelta(days=36500), latency_ms=120),  # not due, whatever today is,
        dict(url="https://a.example/2", display_url="https://a.example/2", host="a.example", active=True,
             status="broken", health="suspect", http_status=404, title="Not found 100%", checked_at=NOW,
             next_check_at=NOW - timedelta(hours=1), latency_ms=80),
        dict(url="https://b.example/x_y", display_url="https://b.example/x_y", host="b.example", active=True,
             status=None, health="unknown"),
        dict(url="https://c.example/old", display_url="https://c.example/old", host="c.example", active=False,
             status="ok", health="alive", checked_at=NOW, next_check_at=NOW + timedelta(days=7)),
    ]
    async with store.engine.begin() as conn:
        for row in rows:
            await conn.execute(insert(links).values(created_at=NOW, at_risk=False, fail_streak=0, **row))
        await conn.execute(insert(snapshots).values(link_id=1, service="wayback", captured_at=NOW,
                                                    created_at=NOW, archive_url="https://web/x"))
        await conn.execute(insert(archive_jobs).values(link_id=1, service="wayback", action="save",
                                                       state="done", attempts=1, created_at=NOW,
                                                       updated_at=NOW))
    run_id = await store.start_run("daemon", NOW)
    await store.finish_run(run_id, state="done", now=NOW, links_checked=2)
    try:
        yield store
    finally:
        await store.close()


class Served:
    """A running app and a client for it."""

    def __init__(self, port: int, token: str = "") -> None:
        self.port, self.token = port, token

    async def get(self, path: str, *, token: str | None = None, host: str | None = None) -> tuple[int, Any, dict]:
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if host is not None:
            headers["Host"] = host
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{self.port}{path}", headers=headers) as resp:
                body = await resp.json() if resp.content_type == "application/json" else await resp.text()
                return resp.status, body, dict(resp.headers)


@pytest.fixture
async def serve(store, tmp_path):
    """``await serve(state="running", token="")`` starts the app on a random port."""
    runners = []

    async def start(state: str = "running", token: str = "", report: str | None = None,
                    metrics: Metrics | None = None, listen: str | None = None) -> Served:
        overrides: dict[str, Any] = {"daemon.token": token}
        if listen is not None:
            overrides["daemon.listen"] = listen
        settings = Settings(data_dir=str(tmp_path / "data")).with_overrides(overrides)
        if report is not None:
            settings.report_path.parent.mkdir(parents=True, exist_ok=True)
            settings.report_path.write_text(report, encoding="utf-8")
        app = create_app(store, settings, metrics=metrics or Metrics(), state=lambda: state,
                         lease_held=lambda: state == "running")
        runner, port = await start_web(app, "127.0.0.1", 0)
        runners.append(runner)
        return Served(port, token)

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_api_links_filters_and_pages(serve):
    """status, health, q (literal text, not a pattern), active and paging."""
    web = await serve()
    status, body, _ = await web.get("/api/links")
    assert status == 200 and body["total"] == 3 and len(body["links"]) == 3
    first = body["links"][0]
    assert first["url"] == "https://a.example/1" and first["title"] == "标题 one"
    assert first["checked_at"] == "2024-05-01T12:00:00Z"
    assert (await web.get("/api/links?status=broken"))[1]["total"] == 1
    assert (await web.get("/api/links?health=alive,unknown"))[1]["total"] == 2
    assert (await web.get("/api/links?q=%E6%A0%87%E9%A2%98"))[1]["total"] == 1   # 标题 in a title
    assert (await web.get("/api/links?q=100%25"))[1]["total"] == 1                # % is literal
    assert (await web.get("/api/links?q=x_y"))[1]["total"] == 1                  # _ is literal
    assert (await web.get("/api/links?q=_"))[1]["total"] == 1
    assert (await web.get("/api/links?active=0"))[1]["links"][0]["url"] == "https://c.example/old"
    assert (await web.get("/api/links?active=all"))[1]["total"] == 4
    page = (await web.get("/api/links?limit=1&offset=1"))[1]
    assert page["total"] == 3 and [r["url"] for r in page["links"]] == ["https://a.example/2"]
    assert (await web.get("/api/links?limit=abc"))[0] == 400


async def test_api_runs(serve):
    """Recent runs, newest first, JSON-ready."""
    web = await serve()
    status, body, _ = await web.get("/api/runs?limit=5")
    assert status == 200
    assert body["runs"][0]["kind"] == "daemon" and body["runs"][0]["state"] == "done"
    assert body["runs"][0]["started_at"].startswith("2024-05-01T12:00:00")


async def test_healthz_follows_state(serve):
    """200 while running and the database answers; 503 in standby or while stopping."""
    running = await serve("running")
    status, body, _ = await running.get("/healthz")
    assert status == 200 and body == {"status": "ok", "state": "running", "database": True}
    for state in ("standby", "stopping"):
        status, body, _ = await (await serve(state)).get("/healthz")
        assert status == 503 and body["state"] == state and body["database"] is True


async def test_healthz_503_when_database_does_not_answer(tmp_path):
    """A database that cannot be reached makes /healthz 503 (the scheduler alone is not enough)."""
    class DeadStore:
        engine = None

        async def runs(self, limit: int = 50) -> list:
            raise RuntimeError("no database")

    app = create_app(DeadStore(), Settings(data_dir=str(tmp_path)), metrics=Metrics(),
                     state=lambda: "running")
    runner, port = await start_web(app, "127.0.0.1", 0)
    try:
        status, body, _ = await Served(port).get("/healthz")
        assert status == 503 and body == {"status": "unavailable", "state": "running", "database": False}
    finally:
        await runner.cleanup()


async def test_index_serves_the_report_or_says_none_yet(serve):
    """/ is the report file with a strict CSP; before the first one, 503 with a sentence."""
    empty = await serve()
    status, body, headers = await empty.get("/")
    assert status == 503 and "No report yet" in body and headers["Retry-After"] == "30"


async def test_index_serves_report_file(serve):
    """The latest report file, as UTF-8 HTML, not cached, with a CSP that allows only inline code."""
    web = await serve(report="<!doctype html><html><title>报告</title></html>")
    status, body, headers = await web.get("/")
    assert status == 200 and "<title>报告</title>" in body
    assert headers["Content-Type"].startswith("text/html") and "utf-8" in headers["Content-Type"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-cache"


async def test_token_guards_everything_but_healthz(serve):
    """With a token: 401 without or with a wrong one, 200 with it; /healthz stays open."""
    web = await serve(token="s3cret-token")
    for path in ("/", "/api/links", "/api/runs", "/metrics"):
        status, body, headers = await web.get(path, token="")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
        assert (await web.get(path, token="s3cret-token-not"))[0] == 401
    assert (await web.get("/api/links"))[0] == 200
    assert (await web.get("/healthz", token=""))[0] == 200


_SAMPLE = re.compile(r'^([a-z_]+)(\{[^}]*\})? (\S+)$')


async def test_metrics_prometheus_text(serve):
    """Every line is a comment or a valid sample; gauges from the database, counters in process."""
    metrics = Metrics()
    for status, ms in (("ok", 40), ("ok", 700), ("broken", 30000), ("timeout", None)):
        metrics.observe_check(status, ms)
    metrics.observe_job("check", "ok", 100.0, 103.5)
    metrics.archive_results[("wayback", "done")] += 2
    web = await serve(metrics=metrics)
    status, text_, headers = await web.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = {}
    for line in text_.splitlines():
        if line.startswith("#"):
            assert line.startswith(("# HELP ", "# TYPE "))
            continue
        match = _SAMPLE.match(line)
        assert match, line
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    assert samples['linkhealth_links{status="ok"}'] == 1
    assert samples['linkhealth_links{status="broken"}'] == 1
    assert samples['linkhealth_links{status="unchecked"}'] == 1
    assert samples['linkhealth_links_health{health="suspect"}'] == 1
    assert samples["linkhealth_links_due"] == 2          # never checked, and past next_check_at
    assert samples['linkhealth_checks_total{status="ok"}'] == 2
    assert samples['linkhealth_check_latency_seconds_bucket{le="0.05"}'] == 1
    assert samples['linkhealth_check_latency_seconds_bucket{le="1.0"}'] == 2
    assert samples['linkhealth_check_latency_seconds_bucket{le="30.0"}'] == 3
    assert samples['linkhealth_check_latency_seconds_bucket{le="+Inf"}'] == 3
    assert samples["linkhealth_check_latency_seconds_count"] == 3
    assert samples["linkhealth_check_latency_seconds_sum"] == pytest.approx(30.74)
    assert samples['linkhealth_archive_jobs{service="wayback",action="save",state="done"}'] == 1
    assert samples['linkhealth_snapshots{service="wayback"}'] == 1
    assert samples['linkhealth_archive_submissions_total{service="wayback",outcome="done"}'] == 2
    assert samples['linkhealth_job_runs_total{job="check",result="ok"}'] == 1
    assert samples['linkhealth_job_last_duration_seconds{job="check"}'] == pytest.approx(3.5)
    assert samples["linkhealth_last_run_timestamp_seconds"] == NOW.timestamp()
    assert samples["linkhealth_lease_held"] == 1


# -- the Host check (DNS rebinding) ------------------------------------------------------------


@pytest.mark.parametrize("header, name", [
    ("127.0.0.1", "127.0.0.1"), ("127.0.0.1:8787", "127.0.0.1"), ("LocalHost:8787", "localhost"),
    ("[::1]", "::1"), ("[::1]:8787", "::1"), ("evil.example", "evil.example"),
    ("evil.example:8787", "evil.example"), ("[::1]x", None), ("[::1", None), ("::1", None),
    ("127.0.0.1:port", None), ("", None),
])
def test_host_name(header, name):
    """The host part of a Host header: lowercased, brackets and port dropped, None when malformed."""
    assert _host_name(header) == name


def test_allowed_hosts_include_the_listen_address():
    """The loopback names, plus the address daemon.listen names."""
    assert allowed_hosts("127.0.0.1") == {"localhost", "localhost.", "127.0.0.1", "::1"}
    assert "127.8.0.1" in allowed_hosts("127.8.0.1") and "::1" in allowed_hosts("[::1]")
    assert "" not in allowed_hosts("")


async def test_without_token_a_foreign_host_header_is_refused(serve):
    """DNS rebinding: Host evil.example gets 421 on every endpoint but /healthz; local names work."""
    web = await serve(report="<!doctype html><title>r</title>")
    port = web.port
    for path in ("/", "/api/links", "/api/runs", "/metrics"):
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}",
                     f"localhost.evil.example:{port}", "127.0.0.1:x"):
            status, body, _ = await web.get(path, host=host)
            assert status == 421 and "Host" in body, (path, host)
        for host in (f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", "localhost", f"[::1]:{port}",
                     "[::1]", f"LOCALHOST:{port}"):
            assert (await web.get(path, host=host))[0] == 200, (path, host)
    status, body, _ = await web.get("/healthz", host="evil.example")
    assert status == 200 and body["status"] == "ok"


async def test_host_check_accepts_the_listen_address(serve):
    """A loopback listen address other than 127.0.0.1 is accepted as Host too."""
    web = await serve(listen="127.8.0.1:8787")
    assert (await web.get("/api/runs", host=f"127.8.0.1:{web.port}"))[0] == 200
    assert (await web.get("/api/runs", host=f"127.9.0.1:{web.port}"))[0] == 421


async def test_with_token_the_token_is_the_guard(serve):
    """With a token, a rebound page cannot send it: the Host header is not checked."""
    web = await serve(token="s3cret-token")
    assert (await web.get("/api/runs", host="evil.example"))[0] == 200
    assert (await web.get("/api/runs", host="evil.example", token=""))[0] == 401
