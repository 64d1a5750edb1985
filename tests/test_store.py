"""The storage layer on a real SQLite file and, when LINKHEALTH_TEST_POSTGRES_URL is set, on PostgreSQL.

Each PostgreSQL test runs in a fresh schema (``options=-csearch_path=...`` in the URL)
that is dropped afterwards, so tests are isolated and can run again and again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from checker.errors import StoreError
from checker.models import (
    CheckResult, Health, HealthState, Hop, Kind, Note, Probe, Reference, Status, Target, Verdict,
)
from checker.settings import Settings
from checker.store import Store, SyncStats, mask_url, normalize_url, open_store, upgrade
from checker.store.migrate import head_revision
from checker.store.schema import checks, links, notes, occurrences
from checker.store.writer import PendingCheck
from pgschema import fresh_schema_url

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


# -- fixtures -----------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request, tmp_path):
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sub' / 'linkhealth.db'}"
        return
    async with fresh_schema_url("lh_test") as url:
        yield url


@pytest.fixture
async def store(db_url):
    s = await Store.open(db_url)
    try:
        yield s
    finally:
        await s.close()


def note(path: str, sha: str = "a" * 64) -> Note:
    return Note(path=path, abspath=Path("/nowhere") / path, sha256=sha, mtime=1.0, size=10)


def pair(path: str, line: int, url: str, host: str | None = None) -> tuple[Reference, Target]:
    host = host or url.split("/")[2]
    return (Reference(file=path, line=line, col=1, url=url, kind=Kind.BARE),
            Target(url=url, display_url=url, host=host))


def result(url: str, status: Status = Status.OK, *, at: datetime = T0, title: str | None = "标题",
           http_status: int | None = 200) -> CheckResult:
    target = Target(url=url, display_url=url, host=url.split("/")[2])
    probe = Probe(url=url, http_status=http_status, final_url=url, title=title, latency_ms=12,
                  elapsed_ms=15, redirects=(Hop(url=url + "?r", status=301),), started_at=at)
    return CheckResult(target=target, probe=probe, verdict=Verdict(status=status, title=title),
                       checked_at=at)


async def count(store: Store, table) -> int:
    async with store.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


# -- URLs and opening -------------------------------------------------------------------

def test_urls_are_normalised_and_masked(tmp_path):
    assert normalize_url(str(tmp_path / "x.db")).drivername == "sqlite+aiosqlite"
    assert normalize_url("sqlite:///rel/x.db").database == "rel/x.db"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("postgresql+asyncpg://u@h/db").drivername == "postgresql+asyncpg"
    assert mask_url("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    with pytest.raises(StoreError, match="unsupported database"):
        normalize_url("mysql://u@h/db")


async def test_open_creates_schema_and_sqlite_settings(tmp_path):
    path = tmp_path / "deep" / "er" / "lh.db"
    async with await Store.open(str(path)) as s:       # a plain path works too
        assert path.exists() and s.dialect == "sqlite"
        async with s.engine.connect() as conn:
            pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}")  # noqa: E731
            assert (await pragma("journal_mode")).scalar() == "wal"
            assert (await pragma("foreign_keys")).scalar() == 1
            assert (await pragma("synchronous")).scalar() == 1          # NORMAL
            assert (await pragma("busy_timeout")).scalar() >= 1000
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            names = {r[0] for r in await conn.execute(
                text("SELECT name FROM sqlite_master WHERE type='table'"))}
    assert version == head_revision()
    assert names >= {"notes", "links", "occurrences", "runs", "checks", "snapshots",
                     "archive_jobs", "leases", "alembic_version"}


async def test_reopen_is_idempotent_and_concurrent_opens_agree(db_url):
    first, second = await asyncio.gather(Store.open(db_url), Store.open(db_url))
    await first.close()
    await second.close()
    assert await upgrade(db_url) == head_revision()
    async with await Store.open(db_url, upgrade=False) as s:
        assert await s.runs() == []


async def test_open_store_uses_the_settings_database(tmp_path):
    async with await open_store(Settings(data_dir=str(tmp_path / "data"))) as s:
        assert s.dialect == "sqlite" and await s.runs() == []
    assert (tmp_path / "data" / "linkhealth.db").exists()


async def test_open_without_upgrade_refuses_an_empty_database(tmp_path):
    with pytest.raises(StoreError, match="db upgrade"):
        await Store.open(f"sqlite:///{tmp_path / 'empty.db'}", upgrade=False)


async def test_open_errors_name_the_url_without_password(tmp_path):
    with socket.socket() as sock:          # bound, never listening: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(StoreError) as info:
            await Store.open(f"postgresql://lh:hunter2@127.0.0.1:{port}/x")
    assert "hunter2" not in str(info.value) and f"127.0.0.1:{port}" in str(info.value)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot open database"):
        await Store.open(f"sqlite:///{blocker / 'x.db'}")
    with pytest.raises(StoreError, match="not a database"):
        await Store.open(str(blocker))


# -- notes, occurrences, links ---------------------------------------------------------------

async def test_sync_notes_new_changed_deleted_and_roots(store):
    a, b, c = "notes/a.md", "notes/b.md", "other/c.md"
    refs = {a: [pair(a, 1, "https://x.cn/1"), pair(a, 2, "https://x.cn/2")],
            b: [pair(b, 1, "https://x.cn/2")], c: [pair(c, 1, "https://y.cn/")]}
    stats = await store.sync_notes([note(a), note(b), note(c)], refs, now=T0)
    assert stats == SyncStats(notes_new=3, links_new=3, occurrences=4)
    assert await store.note_hashes() == {a: "a" * 64, b: "a" * 64, c: "a" * 64}

    # b changes (drops x.cn/2, cites x.cn/3); a vanishes; only the "notes" root was scanned.
    refs = {b: [pair(b, 5, "https://x.cn/3")]}
    stats = await store.sync_notes([note(b, "b" * 64)], refs, roots=["notes"], now=T0)
    assert (stats.notes_changed, stats.notes_deleted, stats.notes_unchanged) == (1, 1, 0)
    assert (stats.links_new, stats.links_deactivated) == (1, 2)
    states = await store.link_states()
    assert {u for u, s in states.items() if s.active} == {"https://x.cn/3", "https://y.cn/"}
    assert set(await store.note_hashes()) == {b, c}          # folder "other" untouched
    assert await count(store, occurrences) == 2

    # a comes back: new again, its links reactivated; nothing else touched.
    stats = await store.sync_notes([note(a), note(b, "b" * 64)],
                                   {a: [pair(a, 1, "https://x.cn/1")]}, roots=["notes/"], now=T0)
    assert (stats.notes_new, stats.notes_unchanged, stats.links_reactivated) == (1, 1, 1)
    async with store.engine.connect() as conn:
        deleted = (await conn.execute(select(notes.c.deleted_at).where(notes.c.path == a))).scalar()
        written = (await conn.execute(select(occurrences.c.written))).scalars().all()
    assert deleted is None and sorted(written) == ["https://x.cn/1", "https://x.cn/3", "https://y.cn/"]


async def test_unchanged_note_keeps_its_rows_but_new_references_still_land(store):
    p = "n.md"
    refs = {p: [pair(p, 1, "https://x.cn/1")]}
    await store.sync_notes([note(p)], refs, now=T0)
    async with store.engine.connect() as conn:
        before = (await conn.execute(select(occurrences.c.id))).scalars().all()
    stats = await store.sync_notes([note(p)], refs, now=T0)
    async with store.engine.connect() as conn:
        after = (await conn.execute(select(occurrences.c.id))).scalars().all()
    assert stats.notes_unchanged == 1 and stats.occurrences == 0 and before == after
    # Same file, other references (e.g. include_code switched on): replaced all the same.
    in_code = (Reference(file=p, line=3, col=5, url="https://x.cn/code", kind=Kind.BARE, in_code=True),
               Target(url="https://x.cn/code", display_url="https://x.cn/code", host="x.cn"))
    stats = await store.sync_notes([note(p)], {p: refs[p] + [in_code]}, now=T0)
    assert (stats.notes_unchanged, stats.occurrences, stats.links_new) == (1, 2, 1)
    assert await count(store, occurrences) == 2


async def test_root_prefix_is_a_folder_boundary(store):
    keep, gone = "notes-old/k.md", "notes/g.md"
    await store.sync_notes([note(keep), note(gone)], {}, now=T0)
    stats = await store.sync_notes([], {}, roots=["notes"], now=T0)
    assert stats.notes_deleted == 1 and set(await store.note_hashes()) == {keep}


async def test_link_states_at_risk_and_due_links(store):
    p = "n.md"
    urls = [f"https://h{i}.cn/" for i in range(4)]
    await store.sync_notes([note(p)], {p: [pair(p, i + 1, u) for i, u in enumerate(urls)]}, now=T0)
    await store.set_at_risk({urls[0]: True, "https://not-stored/": True})
    await store.set_at_risk({urls[0]: True, urls[1]: False})
    states = await store.link_states(urls[:2] + ["https://missing/"])
    assert set(states) == set(urls[:2])
    assert states[urls[0]].at_risk and not states[urls[1]].at_risk
    assert states[urls[0]].status is None and states[urls[0]].health is Health.UNKNOWN

    # h0 checked, due in 1 h; h1 checked, due in 2 h; h2, h3 never checked.
    for url, hours in ((urls[0], 1), (urls[1], 2)):
        store.record(None, result(url), HealthState(health=Health.ALIVE), T0 + timedelta(hours=hours))
    await store.flush()
    due = await store.due_links(T0)
    assert [s.url for s in due] == [urls[2], urls[3]]
    due = await store.due_links(T0 + timedelta(hours=3))
    assert [s.url for s in due] == [urls[2], urls[3], urls[0], urls[1]]
    assert [s.url for s in await store.due_links(T0 + timedelta(hours=3), limit=3)] == urls[2:] + urls[:1]
    # --recheck-after: due when last checked before the cut-off, next_check_at aside.
    assert {s.url for s in await store.due_links(T0, checked_before=T0)} == set(urls[2:])
    assert len(await store.due_links(T0, checked_before=T0 + timedelta(seconds=1))) == 4
    # An inactive link is never due.
    await store.sync_notes([note(p)], {p: [pair(p, 1, urls[0])]}, now=T0)
    assert [s.url for s in await store.due_links(T0 + timedelta(days=1))] == [urls[0]]


# -- runs, checks, history ----------------------------------------------------------------

async def test_runs_start_and_finish(store):
    run_id = await store.start_run("audit", T0)
    await store.finish_run(run_id, state="done", now=T0 + timedelta(seconds=5), notes_scanned=3,
                           links_total=7, links_checked=6, counts={"status": {"ok": 6}},
                           message="fine")
    other = await store.start_run("daemon", T0 + timedelta(minutes=1))
    listed = await store.runs()
    assert [r["id"] for r in listed] == [other, run_id]
    done = listed[1]
    assert (done["state"], done["links_checked"], done["counts"]) == ("done", 6, {"status": {"ok": 6}})
    assert done["finished_at"] == T0 + timedelta(seconds=5) and done["finished_at"].tzinfo is not None
    assert listed[0]["state"] == "running" and await store.runs(limit=1) == listed[:1]


async def test_record_updates_link_and_keeps_history(store):
    url = "https://mp.weixin.qq.com/s/abc"
    p = "n.md"
    await store.sync_notes([note(p)], {p: [pair(p, 1, url)]}, now=T0)
    run_id = await store.start_run("audit", T0)
    china = timezone(timedelta(hours=8))
    first = result(url, at=(T0 + timedelta(hours=1)).astimezone(china))
    failing = HealthState(health=Health.SUSPECT, fail_streak=1, first_failing_at=T0 + timedelta(hours=2))
    second = result(url, Status.BROKEN, at=T0 + timedelta(hours=2), title=None, http_status=404)
    store.record(run_id, first, HealthState(health=Health.ALIVE), T0 + timedelta(days=7), probe_id="p-1")
    store.record(run_id, second, failing, T0 + timedelta(hours=14), probe_id="p-2")
    await store.flush()
    state = (await store.link_states([url]))[url]
    assert (state.status, state.http_status, state.health, state.health_state.fail_streak) == \
        (Status.BROKEN, 404, Health.SUSPECT, 1)
    assert state.checked_at == T0 + timedelta(hours=2) and state.checked_at.tzinfo is not None
    assert state.next_check_at == T0 + timedelta(hours=14)
    assert state.health_state.first_failing_at == T0 + timedelta(hours=2)
    hist = await store.history(state.id)
    assert [h["probe_id"] for h in hist] == ["p-2", "p-1"]
    assert hist[1]["checked_at"] == T0 + timedelta(hours=1)        # same instant, stored as UTC
    assert hist[1]["title"] == "标题" and hist[1]["redirects"] == [{"url": url + "?r", "status": 301}]
    assert hist[0]["run_id"] == run_id and len(await store.history(state.id, limit=1)) == 1


async def test_resent_probe_id_adds_no_check_and_changes_nothing(store):
    url = "https://x.cn/"
    await store.sync_notes([note("n.md")], {"n.md": [pair("n.md", 1, url)]}, now=T0)
    store.record(None, result(url, at=T0), HealthState(health=Health.ALIVE), None, probe_id="same")
    await store.flush()
    # The same probe again (a retried batch), even with other values: ignored.
    store.record(None, result(url, Status.BROKEN, at=T0 + timedelta(hours=1)),
                 HealthState(health=Health.DEAD), None, probe_id="same")
    store.record(None, result(url, at=T0 + timedelta(hours=2)), HealthState(health=Health.ALIVE), None)
    await store.flush()
    assert await count(store, checks) == 2
    state = (await store.link_states([url]))[url]
    assert (state.status, state.health, state.checked_at) == (Status.OK, Health.ALIVE, T0 + timedelta(hours=2))


async def test_close_commits_what_is_queued_even_after_a_cancelled_flush(db_url):
    s = await Store.open(db_url)
    for i in range(450):
        s.record(None, result(f"https://x.cn/{i}"), HealthState(), None)
    waiter = asyncio.ensure_future(s.flush())
    await asyncio.sleep(0)
    waiter.cancel()                      # Ctrl-C while waiting: the checks are not lost
    await s.close()
    async with await Store.open(db_url) as again:
        assert await count(again, checks) == 450


async def test_check_of_unknown_url_creates_an_inactive_link(store):
    store.record(None, result("https://nobody.cn/x"), HealthState(), None)
    await store.flush()
    state = (await store.link_states())["https://nobody.cn/x"]
    assert state.status == Status.OK and not state.active


async def test_prepared_links_update_sends_what_sqlalchemy_would(store):
    # The writer's links UPDATE bypasses SQLAlchemy's per-row bind work: the stored
    # values must be those of ``conn.execute`` with the same rows, to the byte.
    from checker.store.writer import _LINK_FIELDS, _LINK_UPDATE
    urls = ["https://a.cn/", "https://b.cn/"]
    await store.sync_notes([note("n.md")], {"n.md": [pair("n.md", i, u) for i, u in enumerate(urls, 1)]}, now=T0)
    ids = [s.id for s in (await store.link_states(urls)).values()]
    china = timezone(timedelta(hours=8))
    values = ["broken", 404, "https://a.cn/\u00e9", "标题\ufffd", None, 12,
              datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=china), "dead", 3,
              datetime(2026, 1, 1), None, T0, datetime(2026, 2, 1, tzinfo=china)]
    async with store.engine.begin() as conn:
        await _LINK_UPDATE.execute(conn, [(ids[0], *values)])
        await conn.execute(_LINK_UPDATE.statement, [{"b_id": ids[1], **{f"b_{name}": value
                                                      for name, value in zip(_LINK_FIELDS, values)}}])
    columns = ", ".join(_LINK_FIELDS)
    async with store.engine.connect() as conn:      # raw SQL: the values as stored, unconverted
        rows = (await conn.execute(text(f"SELECT {columns} FROM links WHERE id IN ({ids[0]}, {ids[1]})"))).all()
    assert len(rows) == 2 and rows[0] == rows[1]
    assert rows[0][_LINK_FIELDS.index("checked_at")] is not None


async def test_writer_fault_surfaces_as_store_error(store):
    store.record(987654, result("https://x.cn/"), HealthState(), None)   # no such run: FK fails
    with pytest.raises(StoreError, match="cannot write checks"):
        await store.flush()
    with pytest.raises(StoreError):
        store.record(None, result("https://x.cn/"), HealthState(), None)


async def test_5000_checks_are_written_in_batches(store):
    urls = [f"https://h{i % 50}.example.cn/p/{i}" for i in range(1000)]
    await store.sync_notes([note("big.md")],
                           {"big.md": [pair("big.md", i + 1, u) for i, u in enumerate(urls)]}, now=T0)
    run_id = await store.start_run("audit", T0)
    alive = HealthState(health=Health.ALIVE)
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(5000):
        store.record(run_id, result(urls[i % 1000], at=T0 + timedelta(seconds=i)), alive,
                     T0 + timedelta(days=7))
    await store.flush()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"5000 checks on {store.dialect}: {elapsed:.2f} s wall, {cpu:.2f} s CPU")
    assert await count(store, checks) == 5000
    assert store._writer.batches <= 5000 // 200 + 2      # batched, never one per check
    if store.dialect == "sqlite":
        # CPU time of this process (the SQLite thread included), not wall time:
        # an informal bound that other work on a busy machine does not break.
        # About 0.8 s on the project's machines.
        assert cpu < 3.0, f"5000 checks took {cpu:.2f} s of CPU"
    state = (await store.link_states([urls[0]]))[urls[0]]
    assert state.checked_at == T0 + timedelta(seconds=4000)      # the last of its five checks


async def test_records_trickling_in_are_committed_within_the_interval(db_url):
    async with await Store.open(db_url, batch_interval=0.3) as s:
        s.record(None, result("https://x.cn/"), HealthState(), None)
        for _ in range(60):            # the writer commits after ~0.3 s on its own, no flush
            await asyncio.sleep(0.05)
            if await count(s, checks):
                break
        assert await count(s, checks) == 1


def test_a_pending_check_holds_its_row_not_the_page():
    res = result("https://x.cn/")
    res = replace(res, probe=replace(res.probe, body="正文" * 50_000))
    pending = PendingCheck.of(7, res, HealthState(), None, "p-1")
    held = [getattr(pending, f.name) for f in fields(pending)]
    assert not any(value is res or value is res.probe for value in held)
    assert pending.row["probe_id"] == "p-1" and pending.row["run_id"] == 7
    assert pending.row["title"] == res.verdict.title and "body" not in pending.row
    assert pending.target is res.target


# -- leases ------------------------------------------------------------------------------

async def test_lease_is_exclusive_until_it_expires(store):
    ttl = 60.0
    assert await store.acquire_lease("daemon", "A", ttl, T0)
    assert not await store.acquire_lease("daemon", "B", ttl, T0 + timedelta(seconds=30))
    assert await store.acquire_lease("daemon", "A", ttl, T0 + timedelta(seconds=30))   # re-entrant
    assert await store.renew_lease("daemon", "A", ttl, T0 + timedelta(seconds=50))
    assert not await store.renew_lease("daemon", "B", ttl, T0 + timedelta(seconds=50))
    assert not await store.acquire_lease("daemon", "B", ttl, T0 + timedelta(seconds=100))
    # A crashed: its lease expires at 50 + 60 s and B takes over.
    assert await store.acquire_lease("daemon", "B", ttl, T0 + timedelta(seconds=111))
    assert not await store.renew_lease("daemon", "A", ttl, T0 + timedelta(seconds=112))
    await store.release_lease("daemon", "A")               # not A's any more: no effect
    assert not await store.acquire_lease("daemon", "A", ttl, T0 + timedelta(seconds=113))
    await store.release_lease("daemon", "B")
    assert await store.acquire_lease("daemon", "A", ttl, T0 + timedelta(seconds=114))
    assert await store.acquire_lease("other", "B", ttl, T0)          # leases are per name


async def test_lease_race_has_one_winner(db_url):
    stores = [await Store.open(db_url) for _ in range(4)]
    try:
        wins = await asyncio.gather(*(s.acquire_lease("daemon", f"owner-{i}", 60, T0)
                                      for i, s in enumerate(stores)))
    finally:
        for s in stores:
            await s.close()
    assert sorted(wins) == [False, False, False, True]


# -- crash consistency ---------------------------------------------------------------------

CRASH_WRITER = textwrap.dedent('''
    import asyncio, sys
    from datetime import datetime, timedelta, timezone
    from pathlib import Path
    from checker.models import CheckResult, HealthState, Kind, Note, Probe, Reference, Status, Target, Verdict
    from checker.store import Store

    async def main(url):
        t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
        store = await Store.open(url)
        urls = [f"https://h{i}.cn/" for i in range(50)]
        note = Note(path="n.md", abspath=Path("n.md"), sha256="0" * 64, mtime=0.0, size=1)
        refs = {"n.md": [(Reference("n.md", i + 1, 1, u, Kind.BARE), Target(u, u, u[8:-1]))
                         for i, u in enumerate(urls)]}
        await store.sync_notes([note], refs, now=t0)
        batch = 0
        while True:
            for i in range(200):
                at = t0 + timedelta(seconds=batch * 200 + i)
                url = urls[i % 50]
                target = Target(url, url, url[8:-1])
                res = CheckResult(target, Probe(url=url, http_status=200), Verdict(Status.OK, title=f"b{batch}"), at)
                store.record(None, res, HealthState(), None)
            await store.flush()
            batch += 1
            print(batch, flush=True)

    asyncio.run(main(sys.argv[1]))
''')


async def test_kill_9_mid_batch_leaves_a_consistent_database(db_url, tmp_path):
    script = tmp_path / "crash_writer.py"
    script.write_text(CRASH_WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), db_url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)
    try:
        batches = 0
        while batches < 4:
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line, f"writer died: {proc.stderr.read()}"
            batches = int(line)
        await asyncio.sleep(0.05)          # let it get into the middle of further batches
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    async with await Store.open(db_url) as s:
        async with s.engine.connect() as conn:
            if s.dialect == "sqlite":
                assert (await conn.exec_driver_sql("PRAGMA integrity_check")).scalar() == "ok"
            total = (await conn.execute(select(func.count()).select_from(checks))).scalar_one()
            dupes = (await conn.execute(select(checks.c.probe_id).group_by(checks.c.probe_id)
                                        .having(func.count() > 1))).all()
            latest = dict((await conn.execute(
                select(checks.c.link_id, func.max(checks.c.checked_at)).group_by(checks.c.link_id))).all())
            rows = (await conn.execute(select(links.c.id, links.c.checked_at))).all()
    assert total >= 4 * 200 and total % 200 == 0, total          # whole batches only
    assert dupes == []
    latest = {k: (v if v.tzinfo else v.replace(tzinfo=timezone.utc)) for k, v in latest.items()}
    assert all(checked_at == latest[link_id] for link_id, checked_at in rows)
