"""Interrupted audits: SIGTERM and SIGHUP stop an audit as Ctrl-C does (exit 143 / 129, the
run recorded as interrupted with its real counts); a run left `running` by SIGKILL is
closed by the next command with the counts its stored checks give; the next audit
resumes an interrupted one (the links it checked are not checked again); the daemon's
interrupted runs keep their counts too. SQLite (the CLI's default) and, for the store
part, PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
from datetime import timedelta

import pytest

from checker.models import HealthState, Status
from checker.store import Store, daemonquery
from checker.store.schema import runs
from checker.store.writer import WRITE_INTERVAL

from test_audit import LINKHEALTH, project, run, web_args, write_notes  # noqa: F401  (project: a fixture)
from test_store import T0, db_url, result  # noqa: F401  (db_url: SQLite and PostgreSQL)

FAST = [f"https://example.com/slow/{10 + i}" for i in range(6)]


async def start_audit(web, ca_file, project, *extra: str, settle: float = 1.0) -> asyncio.subprocess.Process:
    """An audit of six fast pages and one that hangs, started; returns ``settle`` seconds
    after the six were answered."""
    write_notes(project / "notes", FAST + ["https://example.com/hang"])
    proc = await asyncio.create_subprocess_exec(
        *LINKHEALTH, "audit", "notes", "--timeout", "30", *web_args(web, ca_file), *extra, cwd=project,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    for _ in range(300):
        await asyncio.sleep(0.05)
        if all(web.hits[f"/slow/{10 + i}"] for i in range(6)) and web.hits["/hang"]:
            break
    await asyncio.sleep(settle)
    return proc


def runs_of(project) -> list[tuple]:
    db = sqlite3.connect(project / ".linkhealth" / "linkhealth.db")
    try:
        return db.execute("select state, links_checked, json_extract(counts, '$.status.ok') from runs "
                          "order by id").fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
async def test_sigterm_and_sighup_stop_an_audit_like_ctrl_c(web, ca_file, project, signum, code):
    proc = await start_audit(web, ca_file, project)
    proc.send_signal(signum)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == code, err.decode()
    assert f"interrupted by {signal.Signals(signum).name}" in err.decode()
    assert runs_of(project) == [("interrupted", 6, 6)]


async def test_a_killed_audit_is_closed_by_the_next_command_and_resumed(web, ca_file, project):
    # SIGKILL: no clean-up at all, so only what the writer committed on its own (within
    # its interval) is there.
    # (The hanging page holds the audit open that long: 5 s, then 30 s for its retry.)
    proc = await start_audit(web, ca_file, project, "--timeout", "30", settle=WRITE_INTERVAL + 1.0)
    assert proc.returncode is None
    proc.kill()
    await asyncio.wait_for(proc.wait(), 30)
    assert runs_of(project)[0][:2] == ("running", 0)
    code, _, err = await run("report", "--format", "json", "-o", "r.json", cwd=project)
    assert code == 0, err
    assert runs_of(project) == [("interrupted", 6, 6)]
    # The next audit checks only what the killed one did not (the hanging page, short now).
    code, out, err = await run("audit", "notes", "--timeout", "1", "--retries", "0", "--fail-on", "never",
                               *web_args(web, ca_file)[:2],
                               *sum((["--connect-to", r] for r in web.connect_to), []), cwd=project)
    assert code == 0, err
    assert all(web.hits[f"/slow/{10 + i}"] == 1 for i in range(6))      # not checked again
    assert "1 checked, 6 already checked by interrupted run #1" in out
    assert runs_of(project)[1] == ("done", 1, 6)
    # A finished audit ends the resume: the next one checks everything.
    code, out, _ = await run("audit", "notes", "--timeout", "1", "--retries", "0", "--fail-on", "never",
                             *web_args(web, ca_file)[:2],
                             *sum((["--connect-to", r] for r in web.connect_to), []), cwd=project)
    assert all(web.hits[f"/slow/{10 + i}"] == 2 for i in range(6)) and "7 checked" in out


async def test_no_resume_checks_everything(web, ca_file, project):
    proc = await start_audit(web, ca_file, project)
    proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(proc.communicate(), 30)
    code, out, err = await run("audit", "notes", "--no-resume", "--timeout", "1", "--retries", "0",
                               "--fail-on", "never", *web_args(web, ca_file)[:2],
                               *sum((["--connect-to", r] for r in web.connect_to), []), cwd=project)
    assert code == 0, err
    assert all(web.hits[f"/slow/{10 + i}"] == 2 for i in range(6)) and "7 checked" in out


async def test_stale_runs_are_closed_with_the_counts_of_their_checks(db_url):  # noqa: F811
    async with await Store.open(db_url) as store:
        daemon_run = await store.start_run("daemon", T0)
        dead_audit = await store.start_run("audit", T0)
        live_audit = await store.start_run("audit", T0)        # this process: alive
        for i in range(3):
            store.record(daemon_run, result(f"https://d.example.cn/{i}", Status.OK), HealthState(), None)
        for i in range(2):
            store.record(dead_audit, result(f"https://a.example.cn/{i}", Status.BROKEN, http_status=404),
                         HealthState(), None)
        await store.flush()
        async with store.begin() as conn:          # the audit's process is gone (no such pid)
            await conn.execute(runs.update().where(runs.c.id == dead_audit)
                               .values(owner=f"{socket.gethostname()}:999999999"))
        assert await store.close_stale_runs(T0 + timedelta(hours=1)) == 1
        assert await daemonquery.interrupt_stale_runs(store, "daemon", T0 + timedelta(hours=1)) == 1
        by_id = {r["id"]: r for r in await store.runs()}
    assert (by_id[daemon_run]["state"], by_id[daemon_run]["links_checked"]) == ("interrupted", 3)
    assert by_id[daemon_run]["counts"]["status"] == {"ok": 3}
    assert (by_id[dead_audit]["state"], by_id[dead_audit]["links_checked"]) == ("interrupted", 2)
    assert by_id[dead_audit]["counts"]["status"] == {"broken": 2}
    assert by_id[live_audit]["state"] == "running"


async def test_a_daemon_batch_cancelled_at_the_end_of_grace_keeps_its_count(db_url, web, web_settings,  # noqa: F811
                                                                              tmp_path):
    """A batch cancelled mid-way (the grace period is over) records the checks it finished."""
    from checker.daemon import Daemon
    from checker.pipeline import scan_stage
    from checker.rules import load_rules
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("https://example.com/title\n\nhttps://example.com/hang\n", encoding="utf-8")
    settings = web_settings(retries=0, timeout=30).with_overrides({"db": db_url, "data_dir": str(tmp_path / "d")})
    daemon = Daemon(settings, paths=[str(notes)])
    daemon.rules = load_rules(settings.health)
    daemon.store = await Store.open(db_url)
    try:
        await scan_stage(daemon.store, settings, daemon.rules, paths=[str(notes)])
        batch = asyncio.create_task(daemon._check_batch(10))
        while not web.hits["/hang"] or not web.hits["/title"]:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.8)             # the finished check is committed (0.5 s batches)
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        [row] = [r for r in await daemon.store.runs() if r["kind"] == "daemon"]
    finally:
        await daemon.store.close()
    assert (row["state"], row["links_checked"]) == ("interrupted", 1)
