"""The daemon as a real subprocess (``python -m checker.cli daemon``) over real parts.

The scripted web of tests/webserver.py plays every host (``--connect-to``), the
database is a real SQLite file (and PostgreSQL when LINKHEALTH_TEST_POSTGRES_URL is
set: a database of its own, emptied before each test), intervals are seconds.
The daemon logs JSON lines to a file; the tests read its events from there.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from checker.logs import KeyValueFormatter, JsonFormatter, RedactFilter, log_event, secrets_from
from checker.store import Store
from checker.store.schema import checks, leases, links, runs

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("LINKHEALTH_TEST_POSTGRES_URL")
# One database for these tests; a name of its own per checkout (LINKHEALTH_TEST_DAEMON_DB) keeps
# two suites running at once on one server from emptying each other's tables.
PG_DB = os.environ.get("LINKHEALTH_TEST_DAEMON_DB", "linkhealth_daemon_test")
TOKEN = "daemon-test-token-5f1c9a"

BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.skipif(
        not PG_URL, reason="LINKHEALTH_TEST_POSTGRES_URL is not set (e.g. "
                           "postgresql+asyncpg://postgres@127.0.0.1:5432/test)")]),
]


# -- fixtures and helpers ------------------------------------------------------------------


async def _fresh_postgres() -> str:
    """A database of the daemon tests' own, with an empty public schema; its URL."""
    import asyncpg
    url = make_url(PG_URL).set(drivername="postgresql")
    admin = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", PG_DB):
            await admin.execute(f'CREATE DATABASE "{PG_DB}"')
    finally:
        await admin.close()
    mine = url.set(database=PG_DB)
    conn = await asyncpg.connect(mine.render_as_string(hide_password=False))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    return mine.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: SQLite in tmp_path, or the PostgreSQL test database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'linkhealth.db'}"
    return await _fresh_postgres()


def free_port() -> int:
    """A port of 127.0.0.1 free right now."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def toml_str(value: str) -> str:
    """A TOML basic string (JSON string syntax is valid TOML for these values)."""
    return json.dumps(value)


def write_config(tmp_path: Path, name: str, *, db: str, web: Any, port: int, token: str = "",
                 **daemon: Any) -> Path:
    """A config file for one daemon: every host sent to ``web``, second-scale intervals."""
    options = {"scan_interval": "1s", "check_interval": "1s", "archive_interval": "1h",
               "lock_ttl": "10s", "grace_period": "5s", "batch_size": 50, "log_format": "json",
               "log_level": "info", **daemon}
    lines = [f"db = {toml_str(db)}", f"data_dir = {toml_str(str(tmp_path / 'data'))}", "",
             "[notes]", f"paths = [{toml_str(str(tmp_path / 'notes'))}]", "",
             "[check]", f"connect_to = [{', '.join(toml_str(r) for r in web.connect_to)}]",
             'timeout = "5s"', "retries = 0", "per_host = 2", "",
             "[health]", 'recheck_alive = "1h"', 'recheck_suspect = "1h"', 'recheck_dead = "1h"',
             'recheck_blocked = "1h"', "",
             # Nothing may leave loopback: the Wayback endpoints point at a closed local port.
             "[archive]", 'services = ["local"]', 'save_url = "http://127.0.0.1:9/save"',
             'status_url = "http://127.0.0.1:9/save/status"',
             'availability_url = "http://127.0.0.1:9/available"', 'cdx_url = "http://127.0.0.1:9/cdx"',
             'web_url = "http://127.0.0.1:9/web"', "",
             "[daemon]", f"listen = {toml_str(f'127.0.0.1:{port}')}", f"token = {toml_str(token)}"]
    lines += [f"{k} = {toml_str(v) if isinstance(v, str) else v}" for k, v in options.items()]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_note(tmp_path: Path, name: str, urls: list[str]) -> Path:
    """A note citing ``urls`` as markdown links."""
    folder = tmp_path / "notes"
    folder.mkdir(exist_ok=True)
    body = "# 笔记\n\n" + "".join(f"- [链接 {i}]({url})\n" for i, url in enumerate(urls, 1))
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


class DaemonProc:
    """One daemon subprocess with its JSON log file."""

    def __init__(self, tmp_path: Path, config: Path, name: str, port: int, token: str = "",
                 prefix: list[str] | None = None) -> None:
        self.cwd, self.config, self.port, self.token = tmp_path, config, port, token
        self.prefix = prefix or []   # e.g. unshare: the daemon in a namespace of its own
        self.log_path = tmp_path / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "DaemonProc":
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINKHEALTH_")}
        env["PYTHONPATH"] = str(REPO)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "checker.cli", "daemon", "--config", str(self.config)],
                cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def events(self, name: str | None = None) -> list[dict]:
        out = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if name is None or record.get("event") == name:
                out.append(record)
        return out

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"daemon did not exit in {timeout}s; log:\n{self.tail()}")
            await asyncio.sleep(0.1)
        return self.proc.returncode

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])

    async def get(self, path: str, *, token: str | None = None) -> tuple[int, Any]:
        """(status, JSON or text) of GET path; (0, None) while nothing listens."""
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                async with session.get(f"http://127.0.0.1:{self.port}{path}", headers=headers) as resp:
                    if resp.content_type == "application/json":
                        return resp.status, await resp.json()
                    return resp.status, await resp.text()
        except aiohttp.ClientConnectionError:
            return 0, None

    def stop_now(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemons():
    """Daemons started by a test; any still alive at the end is killed."""
    started: list[DaemonProc] = []
    yield started
    for daemon in started:
        daemon.stop_now()


async def until(predicate: Callable[[], Awaitable[Any]], timeout: float, what: str,
                proc: DaemonProc | None = None) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if proc is not None and proc.proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"daemon exited ({proc.proc.returncode}) while waiting for {what}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            tail = f"\nlog:\n{proc.tail()}" if proc else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{tail}")
        await asyncio.sleep(0.2)


async def db_rows(url: str, query: Any) -> list[tuple]:
    """Rows of a query on the test database (opened without migrating)."""
    store = await Store.open(url, upgrade=False)
    try:
        async with store.engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(query)]
    finally:
        await store.close()


async def links_by_url(proc: DaemonProc, active: str = "1") -> dict[str, dict]:
    status, body = await proc.get(f"/api/links?active={active}&limit=1000")
    return {row["display_url"]: row for row in body["links"]} if status == 200 else {}


# -- the daemon's life ---------------------------------------------------------------------


async def test_daemon_scans_checks_reports_serves_and_stops(tmp_path, web, db_url, daemons):
    """Scan, check, report, API; a note edit is picked up; SIGTERM exits 0 with the lease released."""
    urls = ["http://site-a.test/title?n=1", "http://site-a.test/title?n=2", "http://site-b.test/404"]
    note = write_note(tmp_path, "a.md", urls)
    port = free_port()
    config = write_config(tmp_path, "a", db=db_url, web=web, port=port, token=TOKEN)
    proc = DaemonProc(tmp_path, config, "a", port, token=TOKEN).start()
    daemons.append(proc)

    await until(lambda: _status_is(proc, "/healthz", 200), 20, "/healthz 200", proc)
    found = await until(lambda: _all_checked(proc, urls), 20, "every link checked", proc)
    assert found[urls[0]]["status"] == "ok" and found[urls[0]]["health"] == "alive"
    assert found[urls[2]]["status"] == "broken" and found[urls[2]]["http_status"] == 404
    assert (await proc.get("/api/links?status=broken"))[1]["total"] == 1
    assert (await proc.get("/api/links?q=n%3D2"))[1]["total"] == 1

    # The API is guarded by the token; /healthz is not.
    assert (await proc.get("/api/links", token="wrong"))[0] == 401
    assert (await proc.get("/healthz", token=""))[0] == 200

    report = await until(lambda: _report_page(proc), 20, "the HTML report at /", proc)
    assert "<html" in report.lower()
    metrics = (await proc.get("/metrics"))[1]
    assert 'linkhealth_links{status="ok"} 2' in metrics
    assert 'linkhealth_links{status="broken"} 1' in metrics
    assert "linkhealth_check_latency_seconds_count 3" in metrics
    assert "linkhealth_lease_held 1" in metrics
    runs_body = (await proc.get("/api/runs"))[1]["runs"]
    assert any(r["kind"] == "daemon" and r["state"] == "done" and r["links_checked"] == 3 for r in runs_body)

    # Edit the note: drop n=2, add a new link on another host.
    new_url = "http://site-c.test/title?n=3"
    write_note(tmp_path, note.name, [urls[0], urls[2], new_url])
    after = await until(lambda: _all_checked(proc, [new_url]), 20, "the added link checked", proc)
    assert urls[1] not in after
    inactive = await links_by_url(proc, active="0")
    assert urls[1] in inactive and inactive[urls[1]]["checked_at"]   # history kept

    proc.signal(signal.SIGTERM)
    assert await proc.wait_exit() == 0, proc.tail()
    assert not await db_rows(db_url, select(leases).where(leases.c.name == "daemon"))
    names = [e.get("event") for e in proc.events()]
    assert {"lease.acquired", "scan.done", "check.batch", "report.written", "lease.released",
            "daemon.stopped"} <= set(names)
    assert TOKEN not in proc.log_path.read_text(encoding="utf-8")
    batch = proc.events("check.batch")[0]
    assert batch["checked"] == 3 and batch["status_ok"] == 2 and batch["status_broken"] == 1


async def test_sigterm_lets_in_flight_checks_finish(tmp_path, web, db_url, daemons):
    """SIGTERM during a slow check: that check finishes and is stored; queued ones do not start."""
    slow = "http://slow.test/slow/2500"
    queued = [f"http://slow.test/slow/{i}" for i in range(1, 4)]
    write_note(tmp_path, "s.md", [slow, *queued])
    port = free_port()
    config = write_config(tmp_path, "s", db=db_url, web=web, port=port, grace_period="10s")
    text = config.read_text(encoding="utf-8").replace("per_host = 2", "per_host = 1")
    config.write_text(text, encoding="utf-8")   # one fetch at a time on the host
    proc = DaemonProc(tmp_path, config, "s", port).start()
    daemons.append(proc)
    await until(lambda: _hit(web, "/slow/2500"), 20, "the slow fetch to start", proc)
    proc.signal(signal.SIGTERM)
    assert await proc.wait_exit() == 0, proc.tail()
    rows = await db_rows(db_url, select(links.c.display_url, links.c.status).where(links.c.checked_at.is_not(None)))
    assert dict(rows) == {slow: "ok"}, proc.tail()
    assert all(web.hits[f"/slow/{i}"] == 0 for i in range(1, 4))


async def _hit(web, path: str) -> bool:
    return web.hits[path] > 0


async def _status_is(proc: DaemonProc, path: str, code: int) -> bool:
    return (await proc.get(path))[0] == code


async def _all_checked(proc: DaemonProc, urls: list[str]) -> dict | None:
    found = await links_by_url(proc)
    if all(u in found and found[u]["checked_at"] for u in urls):
        return found
    return None


async def _report_page(proc: DaemonProc) -> str | None:
    status, body = await proc.get("/")
    return body if status == 200 else None


async def test_kill_9_mid_batch_then_restart_loses_nothing_and_duplicates_nothing(
        tmp_path, web, db_url, daemons):
    """SIGKILL while a batch runs; the restarted daemon checks the rest, each link once."""
    # 3 hosts x 2 fetches at a time, 1.2 s each: a batch of 12 takes two rounds, and the
    # writer commits the first round's 6 checks while the second round is in flight.
    urls = [f"http://slow-{i % 3}.test/slow/1200?n={i}" for i in range(24)]
    write_note(tmp_path, "slow.md", urls)
    port = free_port()
    config = write_config(tmp_path, "k", db=db_url, web=web, port=port, batch_size=12)
    first = DaemonProc(tmp_path, config, "first", port).start()
    daemons.append(first)

    async def some_checks() -> int:
        try:
            count = (await db_rows(db_url, select(func.count()).select_from(checks)))[0][0]
        except Exception:   # the schema may not exist yet
            return 0
        # Mid-batch: some of a batch's checks are written, not all (batch_size 12), so the
        # kill lands while a run is open whatever the machine's speed.
        return count if 0 < count < len(urls) and count % 12 else 0

    done_before = await until(some_checks, 25, "some checks of a batch written", first)
    first.signal(signal.SIGKILL)
    assert await first.wait_exit() == -signal.SIGKILL

    second = DaemonProc(tmp_path, config, "second", port).start()
    daemons.append(second)
    await until(lambda: _all_checked(second, urls), 40, "every link checked after the restart", second)
    second.signal(signal.SIGTERM)
    assert await second.wait_exit() == 0, second.tail()

    per_link = await db_rows(db_url, select(checks.c.link_id, func.count()).group_by(checks.c.link_id))
    assert len(per_link) == len(urls) and all(n == 1 for _, n in per_link), per_link
    dup = select(checks.c.probe_id).group_by(checks.c.probe_id).having(func.count() > 1)
    assert not await db_rows(db_url, dup)
    assert not await db_rows(db_url, select(links.c.id).where(links.c.checked_at.is_(None)))
    states = dict(await db_rows(db_url, select(runs.c.state, func.count()).group_by(runs.c.state)))
    assert "running" not in states and states.get("interrupted", 0) >= 1, states
    if db_url.startswith("sqlite"):
        assert (await db_rows(db_url, text("PRAGMA integrity_check")))[0][0] == "ok"
    assert done_before < len(urls)
    assert second.events("lease.acquired")


async def test_two_daemons_on_one_database_only_one_works(tmp_path, web, db_url, daemons):
    """The second daemon stands by (503, no jobs) until the first stops and frees the lease."""
    urls = [f"http://site-{i}.test/title?n={i}" for i in range(4)]
    write_note(tmp_path, "n.md", urls)
    port_a, port_b = free_port(), free_port()
    a = DaemonProc(tmp_path, write_config(tmp_path, "a", db=db_url, web=web, port=port_a), "a", port_a).start()
    daemons.append(a)
    await until(lambda: _status_is(a, "/healthz", 200), 20, "daemon A healthy", a)
    b = DaemonProc(tmp_path, write_config(tmp_path, "b", db=db_url, web=web, port=port_b), "b", port_b).start()
    daemons.append(b)
    await until(lambda: _status_is(b, "/healthz", 503), 20, "daemon B answering 503", b)
    await until(lambda: _all_checked(a, urls), 20, "daemon A checked every link", a)
    await asyncio.sleep(1.5)   # more than B's lease polls (0.5 s) and A's job intervals (1 s)
    status, body = await b.get("/healthz")
    assert status == 503 and body["state"] == "standby"
    b_events = {e.get("event") for e in b.events()}
    assert "lease.standby" in b_events
    assert not b_events & {"lease.acquired", "scan.done", "check.batch", "report.written"}
    assert len(await db_rows(db_url, select(checks.c.id))) == len(urls)   # nothing checked twice

    a.signal(signal.SIGTERM)
    assert await a.wait_exit() == 0, a.tail()
    await until(lambda: _status_is(b, "/healthz", 200), 15, "daemon B taking over", b)
    assert b.events("lease.acquired")[0]["after_standby"] is True
    b.signal(signal.SIGINT)
    assert await b.wait_exit() == 0, b.tail()
    assert not await db_rows(db_url, select(leases))


async def test_public_address_without_token_is_refused(tmp_path, web):
    """Listening on 0.0.0.0 without a token: exit 2 and a message naming the setting."""
    write_note(tmp_path, "a.md", ["http://site-a.test/title"])
    config = write_config(tmp_path, "pub", db=f"sqlite:///{tmp_path / 'x.db'}", web=web, port=free_port())
    text_ = config.read_text(encoding="utf-8").replace('listen = "127.0.0.1:', 'listen = "0.0.0.0:')
    config.write_text(text_, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKHEALTH_")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-m", "checker.cli", "daemon", "--config", str(config)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "without a token" in done.stderr and "daemon.token" in done.stderr


# -- logs (pure) -----------------------------------------------------------------------------


def _record(event: str, **fields: Any):
    import logging
    return logging.LogRecord("t", logging.INFO, __file__, 1, event, None, None) if not fields else \
        _with_fields(logging.LogRecord("t", logging.INFO, __file__, 1, event, None, None), fields)


def _with_fields(record, fields):
    record.fields = fields
    return record


def test_keyvalue_lines_are_one_line_and_quoted():
    """logfmt: bare values stay bare, spaces and newlines are quoted and escaped."""
    line = KeyValueFormatter().format(_record("check.batch", run_id=3, note="两 words\nnext", ok=True, x=None))
    assert "\n" not in line
    assert "event=check.batch run_id=3 " in line
    assert 'note="两 words\\nnext"' in line and "ok=true" in line and "x=-" in line


def test_json_lines_parse():
    """JSON format: one object per line with ts, level, event and the fields."""
    data = json.loads(JsonFormatter().format(_record("scan.done", notes=5, path="笔记/a.md")))
    assert data["event"] == "scan.done" and data["notes"] == 5 and data["path"] == "笔记/a.md"
    assert data["level"] == "info" and data["ts"].endswith("Z")


@pytest.mark.parametrize("message", [
    "POST /save Authorization: LOW AKEY123:SKEY456 failed",
    "header {'authorization': 'Bearer abcdef123456'}",
    "GET https://user:hunter22@db.example/x?token=zzz999",
    "secret is IA-SECRET-VALUE-42 in a sentence",
])
def test_redaction_hides_secrets(message):
    """Keys, tokens and passwords are masked, whether known by value or by shape."""
    flt = RedactFilter(secrets_from(["IA-SECRET-VALUE-42"], environ={}))
    record = _record(message)
    flt.filter(record)
    out = record.getMessage()
    for secret in ("AKEY123", "SKEY456", "abcdef123456", "hunter22", "zzz999", "IA-SECRET-VALUE-42"):
        assert secret not in out
    assert "***" in out


def test_redaction_reaches_fields_and_environment_keys(caplog):
    """Structured fields are redacted too, and the IA keys are taken from the environment."""
    import logging
    secrets = secrets_from([], environ={"LINKHEALTH_IA_ACCESS_KEY": "ACCESSKEY77",
                                        "LINKHEALTH_IA_SECRET_KEY": "SECRETKEY88"})
    logger = logging.getLogger("linkhealth.test.redact")
    caplog.handler.addFilter(RedactFilter(secrets))
    with caplog.at_level(logging.INFO, logger=logger.name):
        log_event(logger, "archive.error", error="denied for ACCESSKEY77:SECRETKEY88", n=1)
    record = caplog.records[-1]
    assert record.fields == {"error": "denied for ***:***", "n": 1}


# -- in-process: the lease lost, the scheduler's job options -----------------------------------


async def test_daemon_that_loses_its_lease_stops_with_exit_1(tmp_path, web, db_url):
    """Another owner takes the lease (ours lapsed): the daemon stops working and exits 1."""
    from checker.daemon import LEASE_NAME, Daemon
    from checker.settings import load_settings
    write_note(tmp_path, "a.md", ["http://site-a.test/title"])
    config = write_config(tmp_path, "lost", db=db_url, web=web, port=0, lock_ttl="2s")
    daemon = Daemon(load_settings(config, environ={}))
    task = asyncio.create_task(daemon.run())

    async def running() -> bool:
        return daemon.status() == "running"

    await until(running, 15, "the in-process daemon running")
    assert daemon.scheduler is not None
    for job in daemon.scheduler.get_jobs():   # never overlaps, missed runs run once
        assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, None)
    assert {j.id for j in daemon.scheduler.get_jobs()} == {"scan", "check", "report", "archive"}
    store = await Store.open(db_url, upgrade=False)
    try:
        async with store.begin() as conn:   # BEGIN IMMEDIATE on SQLite: waits out a renewal
            await conn.execute(leases.update().where(leases.c.name == LEASE_NAME)
                               .values(owner="thief", expires_at=datetime_far()))
        assert await asyncio.wait_for(task, 15) == 1
        async with store.engine.connect() as conn:
            owner = (await conn.execute(select(leases.c.owner))).scalar_one()
        assert owner == "thief"      # a lost lease is not released: it is someone else's now
    finally:
        await store.close()


async def test_daemon_whose_renewals_hang_stops_within_half_the_ttl(tmp_path, web, db_url):
    """A hung database connection: every renewal times out, the lease counts as lost lock_ttl/2
    after the last good renewal (before the row expires), and the in-flight check is cancelled
    at once instead of draining for grace_period."""
    from checker.daemon import Daemon
    from checker.settings import load_settings
    write_note(tmp_path, "a.md", ["http://slow.test/slow/8000"])
    ttl = 2.0
    config = write_config(tmp_path, "hang", db=db_url, web=web, port=0, lock_ttl=f"{ttl}s",
                          grace_period="20s")
    daemon = Daemon(load_settings(config, environ={}))
    task = asyncio.create_task(daemon.run())
    try:
        await until(lambda: _hit(web, "/slow/8000"), 15, "the slow check in flight")
        assert "check" in daemon._running and daemon.lease_held
        renewals = []

        async def hung_renew(*args: Any, **kwargs: Any) -> bool:
            renewals.append(time.monotonic())
            await asyncio.Event().wait()     # never answers, like a dead TCP connection
            return True

        daemon.store.renew_lease = hung_renew
        cut = time.monotonic()
        while daemon.lease_held:
            assert not task.done()
            await asyncio.sleep(0.01)
        lost_at = time.monotonic()
        last_good = daemon._lease_renewed
        assert last_good <= cut
        # Lost lock_ttl/2 after the last good renewal (with slack for a busy event loop),
        # well before the row expires, lock_ttl after it.
        assert ttl / 2 <= lost_at - last_good < ttl * 0.75, lost_at - last_good
        assert renewals, "no renewal was attempted"
        assert await asyncio.wait_for(task, 5) == 1
        assert time.monotonic() - lost_at < 2.5    # no 20 s drain: the check was cancelled
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    rows = await db_rows(db_url, select(runs.c.state))
    assert rows and all(state == "interrupted" for (state,) in rows), rows


def datetime_far():
    """An expiry far in the future."""
    from datetime import datetime, timedelta, timezone
    return datetime.now(timezone.utc) + timedelta(days=1)
