"""The wayback backend and the queue against the fake Wayback Machine on 127.0.0.1."""

from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakewayback import (  # noqa: E402,F401  (fixtures are used by name)
    FakeTime, add_link, archive_db_url, archive_store, fake_wayback, jobs, snaps,
)

from checker.archive import plan_archive, run_archive, show_snapshots  # noqa: E402

KEYS = {"LINKHEALTH_IA_ACCESS_KEY": "AKIAtestaccess42", "LINKHEALTH_IA_SECRET_KEY": "s3cr3t-do-not-log"}
URL = "https://mp.weixin.qq.com/s/at-risk-article"


def settings_for(fake, **archive):
    base = {"services": ("wayback",), "poll_interval": 5.0, "poll_timeout": 60.0,
            "captures_per_minute": 6.0, "lookups_per_minute": 20.0, **archive}
    return fake.settings(**base)


async def run(store, settings, ft, **kw):
    return await run_archive(store, settings, now_fn=ft.now, sleep=ft.sleep, clock=ft.clock,
                             environ=kw.pop("environ", KEYS), **kw)


async def test_save_succeeds_after_two_pendings_with_keys_in_header_only(
        archive_store, fake_wayback, caplog):
    caplog.set_level(logging.DEBUG, logger="linkhealth")
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    link = await add_link(store, URL, at_risk=True)
    settings = settings_for(fake)
    plan = await plan_archive(store, settings, ft.now(), environ=KEYS)
    assert [(j.link_id, j.service, str(j.action)) for j in plan.planned] == [(link, "wayback", "save")]
    summary = await run(store, settings, ft)
    assert summary.outcomes == {"done": 1} and summary.snapshots == 1
    [job] = await jobs(store)
    assert (job["state"], job["attempts"], job["external_id"]) == ("done", 1, "spn2-000001")
    assert fake.count("save") == 1 and fake.count("status") == 3      # pending, pending, success
    assert ft.sleeps == [5.0, 5.0]                                      # poll_interval, injected
    # the keys travel in the Authorization header, as SPN2 wants, on every request ...
    for headers in fake.headers("save") + fake.headers("status"):
        assert headers["Authorization"] == "LOW AKIAtestaccess42:s3cr3t-do-not-log"
        assert headers["Accept"] == "application/json"
    assert fake.forms[0]["url"] == URL and fake.forms[0]["skip_first_archive"] == "1"
    # ... and in no log line, no stored error, no repr
    assert caplog.records, "the run logs something"
    text = "\n".join(r.getMessage() for r in caplog.records) + repr(summary) + repr(await jobs(store))
    assert "s3cr3t-do-not-log" not in text and "AKIAtestaccess42" not in text
    [snap] = await snaps(store)
    assert snap["service"] == "wayback" and snap["http_status"] == 200
    assert snap["archive_url"].startswith(f"{fake.base}/web/") and snap["archive_url"].endswith(URL)
    # the capture's URL resolves on the (fake) Wayback Machine
    async with aiohttp.ClientSession() as s, s.get(snap["archive_url"]) as resp:
        assert resp.status == 200 and URL in await resp.text()
    [info] = await show_snapshots(store, URL)
    assert info.archive_url == snap["archive_url"] and info.available


async def test_without_keys_no_save_is_planned_and_anonymous_is_refused(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    await add_link(store, URL, at_risk=True)
    plan = await plan_archive(store, settings_for(fake), ft.now(), environ={})
    assert plan.planned == ()
    settings = settings_for(fake, anonymous_save=True)
    plan = await plan_archive(store, settings, ft.now(), environ={})
    assert len(plan.planned) == 1
    summary = await run(store, settings, ft, environ={})
    [job] = await jobs(store)
    assert job["state"] == "failed" and "401" in job["last_error"]
    assert "Authorization" not in fake.headers("save")[0]
    assert summary.outcomes == {"failed": 1}


async def test_429_pauses_the_lane_at_least_a_minute_then_resumes(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    for i in range(3):
        await add_link(store, f"{URL}-{i}", at_risk=True)
    settings = settings_for(fake)
    fake.save_plan = [("429", 5)]
    fake.status_plan = ["success"]
    await plan_archive(store, settings, ft.now(), environ=KEYS)
    t0 = ft.now()
    summary = await run(store, settings, ft)
    # one POST got the 429; the two other jobs were not sent but deferred with the lane
    assert fake.count("save") == 1
    assert summary.outcomes == {"retry": 1, "deferred": 2}
    assert any("429" in e for e in summary.events)
    rows = await jobs(store)
    assert [r["state"] for r in rows] == ["pending"] * 3
    for r in rows:
        assert r["next_try_at"] - t0 >= timedelta(seconds=60)   # Retry-After 5 -> at least 60 s
    assert "429" in rows[0]["last_error"] and rows[0]["attempts"] == 1
    assert rows[1]["attempts"] == 0                               # deferral is not an attempt
    # a run 30 s later sends nothing: the pause survives between runs (read back from the queue)
    ft.advance(30)
    summary = await run(store, settings, ft)
    assert summary.due == 0 and fake.count("save") == 1
    ft.advance(31)
    summary = await run(store, settings, ft)
    assert summary.outcomes == {"done": 3} and fake.count("save") == 4
    assert [s for s in ft.sleeps if s >= 9.9] == [pytest.approx(10.0)] * 2   # 6/min -> 10 s apart


async def test_long_retry_after_is_honoured(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    await add_link(store, URL, at_risk=True)
    settings = settings_for(fake)
    fake.save_plan = [("429", 300)]
    await plan_archive(store, settings, ft.now(), environ=KEYS)
    t0 = ft.now()
    await run(store, settings, ft)
    [job] = await jobs(store)
    assert job["next_try_at"] - t0 >= timedelta(seconds=300)


@pytest.mark.parametrize("ext, state", [
    ("error:user-session-limit", "pending"),
    ("error:no-browsers-available", "pending"),
    ("error:blocked-url", "not-archivable"),
    ("error:invalid-url-syntax", "not-archivable"),
])
async def test_spn2_errors_on_status(archive_store, fake_wayback, ext, state):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    await add_link(store, URL, at_risk=True)
    settings = settings_for(fake)
    fake.status_plan = ["pending", ("error", ext)]
    await plan_archive(store, settings, ft.now(), environ=KEYS)
    t0 = ft.now()
    await run(store, settings, ft)
    [job] = await jobs(store)
    assert job["state"] == state and ext in job["last_error"]
    if state == "pending":
        # a retryable error: the save is sent again later (the failed job_id is dropped)
        assert job["external_id"] is None and job["next_try_at"] - t0 >= timedelta(seconds=60)
    else:
        assert job["next_try_at"] is None


async def test_user_session_limit_on_submit_pauses_the_lane(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    await add_link(store, URL, at_risk=True)
    await add_link(store, URL + "-2", at_risk=True)
    settings = settings_for(fake)
    fake.save_plan = [("error", "error:user-session-limit")]
    await plan_archive(store, settings, ft.now(), environ=KEYS)
    summary = await run(store, settings, ft)
    assert fake.count("save") == 1 and summary.outcomes == {"retry": 1, "deferred": 1}


async def test_html_error_pages_trip_the_circuit_breaker(archive_store, fake_wayback, caplog):
    caplog.set_level(logging.WARNING)
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    for i in range(4):
        await add_link(store, f"{URL}-{i}", at_risk=True)
    settings = settings_for(fake, breaker_failures=2, breaker_pause=1800.0)
    fake.save_plan = ["html", "500"]
    await plan_archive(store, settings, ft.now(), environ=KEYS)
    t0 = ft.now()
    summary = await run(store, settings, ft)
    assert fake.count("save") == 2
    assert summary.outcomes == {"retry": 2, "deferred": 2}
    assert any("circuit breaker" in e for e in summary.events)
    assert any("circuit breaker" in r.getMessage() for r in caplog.records)
    rows = await jobs(store)
    assert "HTML page instead of JSON" in rows[0]["last_error"]
    assert "HTTP 502" in rows[1]["last_error"]
    for r in rows[1:]:
        assert r["next_try_at"] - t0 >= timedelta(seconds=1790)
    ft.advance(1801)
    summary = await run(store, settings, ft)
    assert summary.outcomes.get("done") == 4


async def test_a_job_pending_forever_is_polled_not_resent_then_given_up(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    await add_link(store, URL, at_risk=True)
    settings = settings_for(fake, poll_timeout=30.0, max_attempts=3)
    fake.status_plan = ["pending"]
    await plan_archive(store, settings, ft.now(), environ=KEYS)
    await run(store, settings, ft)
    [job] = await jobs(store)
    assert (job["state"], job["external_id"], job["attempts"]) == ("submitted", "spn2-000001", 1)
    assert "still pending" in job["last_error"]
    for _ in range(2):
        ft.advance(86400)
        await run(store, settings, ft)
    [job] = await jobs(store)
    assert job["state"] == "failed" and "gave up after 3 attempts" in job["last_error"]
    assert fake.count("save") == 1           # submitted once, never twice
    assert await snaps(store) == []


async def test_a_submitted_job_survives_a_restart(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    await add_link(store, URL, at_risk=True)
    settings = settings_for(fake, poll_timeout=10.0)
    fake.status_plan = ["pending"] * 4 + ["success"]
    await plan_archive(store, settings, ft.now(), environ=KEYS)
    await run(store, settings, ft)
    assert (await jobs(store))[0]["state"] == "submitted"
    # re-planning while submitted adds nothing; the next run polls the same job_id
    assert (await plan_archive(store, settings, ft.now(), environ=KEYS)).enqueued == 0
    ft.advance(3600)
    summary = await run(store, settings, ft)
    assert summary.outcomes == {"done": 1} and fake.count("save") == 1


async def test_a_capture_of_the_wrong_url_is_not_accepted(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    await add_link(store, URL, at_risk=True)
    settings = settings_for(fake)
    fake.wrong_url = "https://mp.weixin.qq.com/login"
    await plan_archive(store, settings, ft.now(), environ=KEYS)
    await run(store, settings, ft)
    [job] = await jobs(store)
    assert job["state"] == "not-archivable" and "different URL" in job["last_error"]
    assert await snaps(store) == []


async def test_rate_limit_measured_on_the_fake_side(archive_store, fake_wayback):
    store, fake = archive_store, fake_wayback
    for i in range(5):
        await add_link(store, f"{URL}-{i}", at_risk=True)
    settings = settings_for(fake, captures_per_minute=300.0)    # one every 0.2 s
    fake.status_plan = ["success"]
    await plan_archive(store, settings, FakeTime().now(), environ=KEYS)
    from datetime import datetime, timezone
    started = time.monotonic()
    summary = await run_archive(store, settings, now_fn=lambda: datetime.now(timezone.utc), environ=KEYS)
    assert summary.outcomes == {"done": 5}
    posts = fake.times("save")
    gaps = [b - a for a, b in zip(posts, posts[1:])]
    assert len(posts) == 5 and min(gaps) >= 0.2 * 0.9, gaps
    # never more than the configured rate in any window of one interval-count
    assert posts[-1] - posts[0] >= 4 * 0.2 * 0.9
    assert time.monotonic() - started < 10


# -- lookups ----------------------------------------------------------------------------------

DEAD = "https://blog.example.com/2019/gone"


async def lookup_setup(store, fake, ft, **archive):
    failing = ft.now() - timedelta(days=30)
    await add_link(store, DEAD, health="dead", first_failing_at=failing)
    settings = settings_for(fake, **archive)
    plan = await plan_archive(store, settings, ft.now(), environ={})
    assert [(j.service, str(j.action)) for j in plan.planned] == [("wayback", "lookup")]
    return settings, failing


async def test_lookup_newest_good_capture_before_the_failure(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    fake.add_capture(DEAD, "20180101000000", 200)
    fake.add_capture(DEAD, "20250101000000", 200)
    fake.add_capture(DEAD, "20260215000000", 404)    # after it died: the error page
    settings, _ = await lookup_setup(store, fake, ft)
    summary = await run(store, settings, ft, environ={})
    assert summary.outcomes == {"done": 1}
    [snap] = await snaps(store)
    assert snap["archive_url"] == f"{fake.base}/web/20250101000000/{DEAD}" and snap["http_status"] == 200
    # availability's closest was the 404 after the failure: CDX answered precisely
    assert fake.count("available") == 1 and fake.count("cdx") == 1
    [info] = await show_snapshots(store, DEAD)
    assert info.captured_at.year == 2025


async def test_lookup_from_availability_alone(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    fake.add_capture(DEAD, "20240101000000", 200)
    settings, _ = await lookup_setup(store, fake, ft)
    await run(store, settings, ft, environ={})
    assert len(await snaps(store)) == 1 and fake.count("cdx") == 0


async def test_lookup_without_any_capture_is_done_and_says_so(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    settings, _ = await lookup_setup(store, fake, ft)
    await run(store, settings, ft, environ={})
    [job] = await jobs(store)
    assert job["state"] == "done" and job["last_error"].startswith("no capture found")
    assert await snaps(store) == []
    # done lookups are not planned again
    assert (await plan_archive(store, settings, ft.now(), environ={})).planned == ()


async def test_lookup_ignores_a_capture_of_another_url(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    fake.add_capture("https://blog.example.com/2019/gone/comments", "20240101000000", 200)
    settings, _ = await lookup_setup(store, fake, ft)
    await run(store, settings, ft, environ={})
    [job] = await jobs(store)
    assert job["state"] == "done" and "different URL" in job["last_error"]
    assert await snaps(store) == []


async def test_lookup_when_availability_answers_html_falls_back_to_cdx(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    fake.add_capture(DEAD, "20240101000000", 200)
    fake.available_mode = "html"
    settings, _ = await lookup_setup(store, fake, ft)
    await run(store, settings, ft, environ={})
    assert len(await snaps(store)) == 1 and fake.count("cdx") == 1


@pytest.mark.parametrize("where", ["available", "cdx"])
async def test_lookup_429_is_a_retry_with_the_lane_paused(archive_store, fake_wayback, where):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    if where == "available":
        fake.available_mode = "429"
    else:
        fake.available_mode, fake.cdx_mode = "html", "429"
    settings, _ = await lookup_setup(store, fake, ft)
    t0 = ft.now()
    summary = await run(store, settings, ft, environ={})
    [job] = await jobs(store)
    assert job["state"] == "pending" and "429" in job["last_error"]
    assert job["next_try_at"] - t0 >= timedelta(seconds=60)
    assert summary.outcomes == {"retry": 1}


async def test_lookups_are_spaced_by_their_bucket(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    for i in range(3):
        await add_link(store, f"{DEAD}-{i}", health="dead", first_failing_at=ft.now())
    settings = settings_for(fake, lookups_per_minute=12.0)
    await plan_archive(store, settings, ft.now(), environ={})
    await run(store, settings, ft, environ={})
    # two requests a lookup (availability then CDX), each waits for a token: 5 s apart
    assert fake.count("available") == 3 and fake.count("cdx") == 3
    assert sum(ft.sleeps) == pytest.approx(5 * 5.0)
