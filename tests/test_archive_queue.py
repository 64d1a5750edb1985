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
