"""The cluster's task body and pure parts, in-process on the real PostgreSQL (no worker process).

Slots (table tests), the slot hash in SQL and Python, the pace row, and the faults of the
issue that one process shows: a worker whose clock is off, a job for links deleted since,
a URL of many kilobytes, a job retried for the same cycle, a stalled job whose slot was
queued again meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from checker.cluster.body import cycle_probe_id, run_slot
from checker.cluster.pace import ConfiguredPace
from checker.cluster.slots import SlotJob, lock_key, plan_slot_jobs, slot_hash, slot_of
from checker.rules import load_rules
from checker.store import cluster as q

from test_cluster import RecordingWeb, _checks_per_link, _seed, _settings, pg_url, recording_web  # noqa: F401


# -- pure ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, slots", [("http://a.example/x", 1), ("http://a.example/x", 4),
                                         ("https://mp.weixin.qq.com/s/abc", 3), ("http://b/" + "é" * 50, 7)])
def test_slot_is_in_range_and_stable(url, slots):
    assert 0 <= slot_of(url, slots) < slots
    assert slot_of(url, slots) == slot_hash(url) % slots == slot_of(url, slots)


def test_plan_makes_one_job_per_host_slot_and_skips_queued_slots():
    due = [("a", 0), ("a", 1), ("a", 2), ("a", 4), ("b", 5), ("b", 7)]
    jobs = plan_slot_jobs(due, lambda host: {"a": 2, "b": 1}[host], run_id=9)
    assert [(j.host, j.slot, j.slots, j.run_id) for j in jobs] == [("a", 0, 2, 9), ("a", 1, 2, 9), ("b", 0, 1, 9)]
    again = plan_slot_jobs(due, lambda host: {"a": 2, "b": 1}[host], skip_locks=frozenset({lock_key("a", 1)}))
    assert [(j.host, j.slot) for j in again] == [("a", 0), ("b", 0)]


def test_job_arguments_carry_no_url():
    job = SlotJob("a.example", 1, 4, 3)
    assert job.kwargs() == {"host": "a.example", "slot": 1, "slots": 4, "run_id": 3}
    assert job.lock == "check:a.example#1"


def test_cycle_probe_id_is_one_per_url_and_previous_check():
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert cycle_probe_id("http://a/", t) == cycle_probe_id("http://a/", t)
    assert cycle_probe_id("http://a/", t) != cycle_probe_id("http://a/", t + timedelta(seconds=1))
    assert cycle_probe_id("http://a/", None) != cycle_probe_id("http://b/", None)


# -- on PostgreSQL --------------------------------------------------------------------------------

pg = pytest.mark.postgres


@pg
async def test_sql_slot_hash_matches_python(tmp_path, pg_url, recording_web):  # noqa: F811
    settings = _settings(tmp_path, pg_url, recording_web.port)
    store = await _seed(tmp_path, settings, hosts=3, per_host=5)
    try:
        for host, hashed in await q.due_hashes(store, 100):
            async with store.engine.connect() as conn:
                urls = [u for (u,) in await conn.execute(text("SELECT url FROM links WHERE host = :h"), {"h": host})]
            assert hashed in {slot_hash(u) for u in urls}
        by_slot = {s: {x.url for x in await q.due_in_slot(store, "h0.example", s, 3, 100)} for s in range(3)}
        assert set().union(*by_slot.values()) == {f"http://h0.example/p{i}" for i in range(5)}
        assert all(slot_of(u, 3) == s for s, urls in by_slot.items() for u in urls)
    finally:
        await store.close()


@pg
async def test_pace_row_spaces_bookings_from_any_connection(tmp_path, pg_url, recording_web):  # noqa: F811
    settings = _settings(tmp_path, pg_url, recording_web.port)
    store = await _seed(tmp_path, settings, hosts=1, per_host=1)
    try:
        waits = await asyncio.gather(*(q.reserve_start(store, "x.example", 0.5) for _ in range(4)))
        assert sorted(round(w * 2) for w in waits) == [0, 1, 2, 3]        # 0, 0.5, 1.0, 1.5 s
        await q.defer_host(store, "y.example", 30)                          # a Retry-After
        assert await q.reserve_start(store, "y.example", 0) > 25
    finally:
        await store.close()


async def _run(store, settings, host="h0.example", slot=0, slots=1, **kw):
    return await run_slot(store, settings, load_rules(settings.health), ConfiguredPace(settings.check, None),
                          SlotJob(host, slot, slots), **kw)


@pg
async def test_worker_clock_off_by_a_day_writes_the_databases_time(tmp_path, pg_url, recording_web,  # noqa: F811
                                                                   monkeypatch):
    settings = _settings(tmp_path, pg_url, recording_web.port)
    store = await _seed(tmp_path, settings, hosts=1, per_host=3)
    try:
        # This machine's clock, as the pipeline would read it, is a day ahead.
        monkeypatch.setattr("checker.pipeline.utcnow", lambda: datetime.now(timezone.utc) + timedelta(days=1))
        out = await _run(store, settings)
        assert out.check.checked == 3
        db_now = await q.db_now(store)
        async with store.engine.connect() as conn:
            times = [r[0] for r in await conn.execute(text("SELECT checked_at FROM checks"))]
        assert all(abs((t - db_now).total_seconds()) < 60 for t in times), (times, db_now)
        assert (await _run(store, settings)).check.checked == 0             # not due again
        assert set((await _checks_per_link(store)).values()) == {1}
    finally:
        await store.close()


@pg
async def test_job_for_links_deleted_meanwhile_does_nothing_and_says_why(tmp_path, pg_url, recording_web,  # noqa: F811
                                                                        caplog):
    settings = _settings(tmp_path, pg_url, recording_web.port)
    store = await _seed(tmp_path, settings, hosts=2, per_host=2)
    try:
        async with store.begin() as conn:
            await conn.execute(text("UPDATE links SET active = false WHERE host = 'h0.example'"))
            await conn.execute(text("DELETE FROM links WHERE host = 'h1.example'"))
        with caplog.at_level(logging.INFO, logger="linkhealth.cluster"):
            assert (await _run(store, settings, "h0.example")).rounds == 0
            assert (await _run(store, settings, "h1.example")).rounds == 0
        assert sum(recording_web.requests.values()) == 0
        assert [r.getMessage() for r in caplog.records].count("slot.nothing_due") == 2
    finally:
        await store.close()


@pg
async def test_url_of_many_kilobytes_is_checked_once(tmp_path, pg_url, recording_web):  # noqa: F811
    long_url = "http://long.example/" + "a" * 6000 + "?q=" + "b" * 1500
    settings = _settings(tmp_path, pg_url, recording_web.port)
    store = await _seed(tmp_path, settings, hosts=0, per_host=0, extra=[long_url])
    try:
        out = await _run(store, settings, "long.example")
        assert out.check.checked == 1 and out.check.by_status
        counts = await _checks_per_link(store)
        assert list(counts.values()) == [1] and len(next(iter(counts))) > 7000
        assert sum(1 for p in recording_web.requests if p.startswith("/aaaa")) == 1
        assert sum(recording_web.requests.values()) <= 2          # and at most one sibling decoy
    finally:
        await store.close()


@pg
async def test_a_slot_job_keeps_the_hosts_learned_window(tmp_path, pg_url, recording_web):  # noqa: F811
    """A slot sends one request at a time: the window its pace shows (1) says nothing of how many
    the host takes at once; saving it would start the next embedded audit of the host at 1."""
    from checker.pace import LearnedPace

    settings = _settings(tmp_path, pg_url, recording_web.port)
    store = await _seed(tmp_path, settings, hosts=1, per_host=3)
    try:
        await store.save_paces([LearnedPace("h0.example", concurrency=3.0, interval=0.0, stress_concurrency=4.0,
                                            last_stress="HTTP 429", last_stress_at=1_700_000_000.0)])
        out = await _run(store, settings)
        assert out.check.checked == 3
        (row,) = [p for p in await store.learned_paces() if p.host == "h0.example"]
        assert (row.concurrency, row.stress_concurrency, row.last_stress) == (3.0, 4.0, "HTTP 429")
        assert row.requests >= 3                   # the row is this job's, with the window kept
    finally:
        await store.close()


@pg
async def test_a_check_sent_twice_for_one_cycle_is_stored_once(tmp_path, pg_url, recording_web):  # noqa: F811
    from checker.pipeline import check_stage
    from checker.targets import from_stored

    settings = _settings(tmp_path, pg_url, recording_web.port)
    store = await _seed(tmp_path, settings, hosts=1, per_host=2)
    try:
        states = await q.due_in_slot(store, "h0.example", 0, 1, 10)
        targets = [from_stored(s.url, s.display_url, s.host, settings) for s in states]
        ids = {s.url: cycle_probe_id(s.url, s.checked_at) for s in states}
        rules = load_rules(settings.health)
        for _ in range(2):   # a job retried after its worker died, both having stored
            await check_stage(store, settings, rules, run_id=None, targets=targets, probe_ids=ids)
        assert set((await _checks_per_link(store)).values()) == {1}
    finally:
        await store.close()


@pg
async def test_stalled_job_whose_slot_is_queued_again_is_closed_not_lost(tmp_path, pg_url, recording_web,  # noqa: F811
                                                                        caplog):
    from procrastinate import jobs as pjobs

    from checker.cluster.runner import build_app, retry_stalled_jobs

    settings = _settings(tmp_path, pg_url, recording_web.port)
    store = await _seed(tmp_path, settings, hosts=1, per_host=1)
    app = build_app(settings)
    try:
        async with app.open_async():
            job = pjobs.Job(queue="checks", task_name="check_slot", lock="check:h0.example#0",
                            queueing_lock="check:h0.example#0", task_kwargs=SlotJob("h0.example", 0, 1).kwargs())
            await app.job_manager.defer_job_async(job)
            worker_id = await app.job_manager.register_worker()
            taken = await app.job_manager.fetch_job(queues=None, worker_id=worker_id)     # its worker dies
            await app.job_manager.defer_job_async(job)                # the producer's next cycle
            async with store.begin() as conn:
                await conn.execute(text("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'"))
            with caplog.at_level(logging.INFO, logger="linkhealth.cluster"):
                assert await retry_stalled_jobs(app, 2.0) == 0
            assert "job.stalled_covered" in [r.getMessage() for r in caplog.records]
            depth = await q.queue_depth(store)
            assert depth == {("checks", "todo"): 1}, depth              # the waiting one covers it
            assert await app.job_manager.get_job_status_async(taken.id) == pjobs.Status.FAILED
    finally:
        await store.close()


# -- modes, status and metrics -----------------------------------------------------------------------

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def _python(code: str, *args: str) -> "subprocess.CompletedProcess":
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKHEALTH_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=args[-1] if args else None)


def test_embedded_audit_and_daemon_import_no_procrastinate(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("[本机](http://127.0.0.1:9/x)\n", encoding="utf-8")
    code = ("import sys\n"
            "from checker.cli import main\n"
            "import checker.daemon, checker.web\n"
            "try:\n"
            "    main(['audit', sys.argv[1], '--format', 'json', '-o', sys.argv[2] + '/out.json'])\n"
            "except SystemExit as e:\n"
            "    code = e.code\n"
            "loaded = [m for m in sys.modules if m.split('.')[0] in ('procrastinate', 'psycopg', 'psycopg_pool')]\n"
            "print('exit', code, 'loaded', loaded)\n")
    done = _python(code, str(notes), str(tmp_path))
    assert "exit 0 loaded []" in done.stdout, done.stdout + done.stderr


def test_worker_without_the_cluster_extra_says_what_to_install(tmp_path):
    code = ("import sys\n"
            "sys.modules['procrastinate'] = None   # as if linkhealth[cluster] were not installed\n"
            "from checker.cli import main\n"
            "main(['worker', '--db', 'postgresql+asyncpg://nobody@127.0.0.1:9/none'])\n")
    done = _python(code, str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "linkhealth: error: `linkhealth worker` needs the cluster extra (procrastinate): "
        "pip install 'linkhealth[cluster]'"]


@pg
async def test_status_and_metrics_show_queue_depth_and_workers(tmp_path, pg_url, recording_web):  # noqa: F811
    from test_cluster import _produce

    from checker.web import Metrics, render_metrics

    settings = _settings(tmp_path, pg_url, recording_web.port)
    store = await _seed(tmp_path, settings, hosts=2, per_host=3)
    try:
        await _produce(store, settings)
        await q.report_worker(store, "box:42:abc", checks_total=120, per_minute=30.0, in_flight=2)
        metrics = await render_metrics(store, Metrics(), lease_held=True, now=datetime.now(timezone.utc))
        assert 'linkhealth_cluster_queue_jobs{queue="checks",state="todo"} 4' in metrics
        assert 'linkhealth_cluster_worker_checks_per_minute{worker="box:42:abc"} 30.0' in metrics
        assert "linkhealth_cluster_workers 1" in metrics
        done = _python("from checker.cli import main; import sys; main(['status', '--db', sys.argv[1]])",
                       pg_url, str(tmp_path))
        lines = done.stdout.splitlines()
        assert "Recent runs:" in lines, done.stdout + done.stderr
        lines = lines[lines.index("queue: checks 4 waiting / 0 running"):]
        assert lines[1] == "workers: 1 live, 30.0 checks/min in all"
        assert lines[2].startswith("  box:42:abc  30.0 checks/min  120 checks  2 jobs running")
    finally:
        await store.close()


async def test_status_on_the_embedded_database_says_there_is_no_queue(tmp_path):
    from checker.store import Store
    from checker.cluster.status import cluster_status, status_lines

    async with await Store.open(f"sqlite:///{tmp_path / 'lh.db'}") as store:
        status = await cluster_status(store)
    assert not status.enabled and status_lines(status)[0].startswith("workers: none (embedded mode")


@pg
async def test_report_shows_workers_and_queue_depth(tmp_path, pg_url, recording_web):  # noqa: F811
    from test_cluster import _produce

    from checker.report import build_report, write_report

    settings = _settings(tmp_path, pg_url, recording_web.port)
    store = await _seed(tmp_path, settings, hosts=2, per_host=3)
    try:
        await _produce(store, settings)
        await q.report_worker(store, "box:7:<b>", checks_total=99, per_minute=12.5, in_flight=1)
        model = await build_report(store, settings=settings)
        path = tmp_path / "r.html"
        write_report(model, "html", path)
        html = path.read_text(encoding="utf-8")
        assert 'id="h-cluster"' in html and "1 live worker, 12.5 checks/min in all" in html
        assert "Queue: checks 4 waiting." in html
        assert "box:7:&lt;b&gt;" in html and "box:7:<b>" not in html      # escaped like every name
    finally:
        await store.close()


@pg
async def test_daemon_producer_and_archive_lane_queue_once(tmp_path, pg_url, recording_web):  # noqa: F811
    from checker.cluster.runner import produce, produce_archive

    settings = _settings(tmp_path, pg_url, recording_web.port)
    store = await _seed(tmp_path, settings, hosts=3, per_host=4)
    try:
        first = await produce(store, settings, load_rules(settings.health))      # the daemon's check job
        assert (first.due, first.queued) == (12, 6)
        second = await produce(store, settings, load_rules(settings.health))
        assert (second.queued, second.already) == (0, 6)
        assert await produce_archive(settings, 10) is True                       # the daemon's archive job
        assert await produce_archive(settings, 10) is False                      # one lane, cluster-wide
        depth = await q.queue_depth(store)
        assert depth == {("checks", "todo"): 6, ("archive", "todo"): 1}
        runs = await store.runs()
        assert [r["kind"] for r in runs] == ["cluster"] and "queued 6 host-slot jobs" in runs[0]["message"]
    finally:
        await store.close()
