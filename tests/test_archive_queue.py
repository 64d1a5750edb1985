"""The archive queue in the database, and the whole stage end to end (local web + fake Wayback)."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fakewayback import (  # noqa: E402,F401  (fixtures are used by name)
    FakeTime, add_link, archive_db_url, archive_store, fake_wayback, jobs, snaps,
)

from checker.archive import best_snapshot, plan_archive, run_archive, show_snapshots  # noqa: E402
from checker.archive.base import SnapshotRecord  # noqa: E402
from checker.store import archivequeue as aq  # noqa: E402

KEYS = {"LINKHEALTH_IA_ACCESS_KEY": "access-key-1", "LINKHEALTH_IA_SECRET_KEY": "secret-key-1"}


async def test_planning_is_idempotent_and_orders_at_risk_first(archive_store):
    store, ft = archive_store, FakeTime()
    plain = await add_link(store, "https://plain.example/a")
    risky = await add_link(store, "https://zhuanlan.zhihu.com/p/1", at_risk=True)
    dead = await add_link(store, "https://gone.example/x", health="dead", first_failing_at=ft.now())
    settings = __import__("checker.settings", fromlist=["Settings"]).Settings().with_overrides(
        {"archive.archive_all": True})
    first = await plan_archive(store, settings, ft.now(), environ=KEYS)
    assert first.enqueued == 5 and first.candidates == 3
    assert first.counts == {"local:save": 2, "wayback:save": 2, "wayback:lookup": 1}
    again = await plan_archive(store, settings, ft.now(), environ=KEYS)
    assert again.enqueued == 0 and again.planned == ()
    rows = await jobs(store)
    assert len(rows) == 5 and {r["state"] for r in rows} == {"pending"}
    due = await aq.due_jobs(store, ft.now())
    assert [j.link_id for j in due][:2] == [risky, risky]
    assert {j.link_id for j in due[2:]} == {plain, dead}
    dry = await run_archive(store, settings, now_fn=ft.now, dry_run=True, limit=3, environ=KEYS)
    assert dry.dry_run and dry.due == 3 and len(dry.jobs) == 3
    assert {r["state"] for r in await jobs(store)} == {"pending"}     # a dry run sends nothing
    assert await aq.job_counts(store) == {"pending": 5}


async def test_job_not_due_before_next_try_at(archive_store):
    store, ft = archive_store, FakeTime()
    link = await add_link(store, "https://a.example/", at_risk=True)
    await plan_archive(store, __import__("checker.settings", fromlist=["x"]).Settings(), ft.now(), environ={})
    [job] = await aq.due_jobs(store, ft.now())
    await aq.update_job(store, job.id, state="pending", attempts=1, now=ft.now(),
                        next_try_at=ft.now() + timedelta(minutes=5), last_error="x")
    assert await aq.due_jobs(store, ft.now()) == []
    assert [j.link_id for j in await aq.due_jobs(store, ft.now() + timedelta(minutes=5))] == [link]


def test_best_snapshot_prefers_a_good_wayback_capture():
    from datetime import datetime, timezone
    t = datetime(2025, 1, 1, tzinfo=timezone.utc)
    local = SnapshotRecord("local", "/x/a.html", t + timedelta(days=9), 200, "/x/a.warc.gz")
    old = SnapshotRecord("wayback", "https://web.archive.org/web/2020/x", t, 200)
    new = SnapshotRecord("wayback", "https://web.archive.org/web/2021/x", t + timedelta(days=1), 200)
    bad = SnapshotRecord("wayback", "https://web.archive.org/web/2022/x", t + timedelta(days=2), 404)
    assert best_snapshot([local, old, new, bad]) == new
    assert best_snapshot([local]) == local
    assert best_snapshot([SnapshotRecord("local", None, t, 200, "/x.warc.gz")]) is None


async def test_audit_archive_done_when(archive_store, fake_wayback, web, web_settings, tmp_path, caplog):
    """Issue 5's "done when": at-risk live pages get a local WARC and a Wayback save; dead pages
    get their newest good snapshot; every outcome is in the database."""
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    web.page("/s/live-1", "<title>一</title><p>first</p>")
    web.page("/s/live-2", "<title>二</title><p>second</p>")
    live = ["https://mp.weixin.qq.com/s/live-1", "https://mp.weixin.qq.com/s/live-2"]
    dead_with, dead_without = "https://blog.example.org/old-post", "https://blog.example.org/never-saved"
    for url in live:
        await add_link(store, url, at_risk=True)
    failing = ft.now() - timedelta(days=3)
    await add_link(store, dead_with, health="dead", first_failing_at=failing)
    await add_link(store, dead_without, health="dead", first_failing_at=failing)
    fake.add_capture(dead_with, "20230505050505", 200)
    fake.add_capture(dead_with, "20240606060606", 200)
    settings = fake.settings(web_settings(), local_dir=str(tmp_path / "archive"))
    assert settings.archive.services == ("local", "wayback")
    plan = await plan_archive(store, settings, ft.now(), environ=KEYS)
    assert plan.counts == {"local:save": 2, "wayback:save": 2, "wayback:lookup": 2}
    ticks: list[tuple[int, int]] = []
    summary = await run_archive(store, settings, now_fn=ft.now, sleep=ft.sleep, clock=ft.clock,
                                environ=KEYS, progress=lambda d, t, m: ticks.append((d, t)))
    assert summary.outcomes == {"done": 6} and ticks[-1] == (6, 6)
    assert {r["state"] for r in await jobs(store)} == {"done"}
    for url in live:
        services = {s.service for s in await show_snapshots(store, url)}
        assert services == {"local", "wayback"}
    [found] = await show_snapshots(store, dead_with)
    assert found.archive_url.endswith(f"/web/20240606060606/{dead_with}")
    assert await show_snapshots(store, dead_without) == []
    assert fake.count("save") == 2
    assert "secret-key-1" not in caplog.text


# -- one runner at a time (the "archive" lease) ------------------------------------------------

async def test_two_runners_at_once_send_each_save_once(archive_db_url, fake_wayback):
    """`linkhealth archive`, `audit --archive` and the daemon may run at once on one database:
    each SPN2 save is still POSTed once, the second runner does nothing and says why."""
    import asyncio
    from datetime import datetime, timezone

    from checker.archive.runner import LEASE_NAME, QUEUE_BUSY
    from checker.store import Store
    fake = fake_wayback
    one, two = await Store.open(archive_db_url), await Store.open(archive_db_url)   # two "processes"
    try:
        urls = [f"https://mp.weixin.qq.com/s/concurrent-{i}" for i in range(4)]
        for url in urls:
            await add_link(one, url, at_risk=True)
        settings = fake.settings(**{"services": ("wayback",), "poll_interval": 0.05,
                                    "poll_timeout": 30.0, "captures_per_minute": 200.0})
        fake.status_plan = ["pending", "success"]
        now = lambda: datetime.now(timezone.utc)  # noqa: E731
        await plan_archive(one, settings, now(), environ=KEYS)
        # A short lease (0.3 s) that must be renewed while the first run works (~1 s: a save
        # every 0.3 s).
        first, second = await asyncio.gather(
            run_archive(one, settings, now_fn=now, environ=KEYS, lease_ttl=0.3),
            run_archive(two, settings, now_fn=now, environ=KEYS, lease_ttl=0.3))
        if first.events == (QUEUE_BUSY,):
            first, second = second, first
        assert first.outcomes == {"done": 4}, first
        assert second.due == 0 and second.outcomes == {} and second.events == (QUEUE_BUSY,)
        assert sorted(form["url"] for form in fake.forms) == sorted(urls)    # each save once
        assert fake.count("save") == 4
        assert {r["state"] for r in await jobs(one)} == {"done"}
        # a runner arriving after the lease's first ttl is refused too: the lease was renewed
        for url in urls:
            await aq.requeue_job(one, (await aq.jobs_for_url(one, url))[0]["link_id"], "wayback",
                                 "save", now(), "again")
        fake.forms.clear()
        running = asyncio.create_task(run_archive(one, settings, now_fn=now, environ=KEYS, lease_ttl=0.3))
        await asyncio.sleep(0.5)
        assert not running.done(), running.result()
        late = await run_archive(two, settings, now_fn=now, environ=KEYS, lease_ttl=0.3)
        assert late.events == (QUEUE_BUSY,) and late.outcomes == {}
        assert (await running).outcomes == {"done": 4}
        assert sorted(form["url"] for form in fake.forms) == sorted(urls)
        # the lease is given back at the end: anyone may take it now
        assert await two.acquire_lease(LEASE_NAME, "someone-else", 60, now())
        busy = await run_archive(one, settings, now_fn=now, environ=KEYS)
        assert busy.events == (QUEUE_BUSY,)
        await two.release_lease(LEASE_NAME, "someone-else")
    finally:
        await one.close()
        await two.close()


async def test_a_run_holding_no_lease_stops_before_the_next_job(archive_store, fake_wayback):
    """When the lease is lost mid-run (expired and taken by another runner), no further job
    is sent; the summary says so."""
    from datetime import datetime, timezone

    from checker.archive.runner import LEASE_NAME
    store, fake = archive_store, fake_wayback
    for i in range(3):
        await add_link(store, f"https://mp.weixin.qq.com/s/lost-{i}", at_risk=True)
    settings = fake.settings(**{"services": ("wayback",), "poll_interval": 0.05,
                                "poll_timeout": 30.0, "captures_per_minute": 600.0})
    fake.status_plan = ["pending"] * 6 + ["success"]
    now = lambda: datetime.now(timezone.utc)  # noqa: E731
    await plan_archive(store, settings, now(), environ=KEYS)
    original = store.renew_lease

    async def stolen(name, owner, ttl, when):
        # another runner took the lease over: our renewals fail from now on
        await store.release_lease(name, owner)
        await store.acquire_lease(name, "thief", 60, when)
        return await original(name, owner, ttl, when)

    store.renew_lease = stolen
    summary = await run_archive(store, settings, now_fn=now, environ=KEYS, lease_ttl=0.15)
    assert fake.count("save") < 3
    assert any("lease was lost" in e for e in summary.events), summary
    assert await store.acquire_lease(LEASE_NAME, "thief", 60, now())       # still the thief's
