"""The report model, built from a real SQLite database filled with the schema's rows."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from checker.report import build_report
from checker.report.model import ReportModel
from checker.settings import Settings, ReportSettings
from report_db import (LONG_URL, SAMPLE_HEALTH, SAMPLE_STATUS, T0, T1, Seeder, counts, fill_sample,
                       sqlite_engine)

NOW = datetime(2024, 5, 3, tzinfo=timezone.utc)


@pytest.fixture
async def sample(tmp_path: Path) -> ReportModel:
    engine = await sqlite_engine(tmp_path / "r.db")
    await fill_sample(engine)
    model = await build_report(engine, now=NOW)
    await engine.dispose()
    return model


def by_url(model: ReportModel, url: str):
    return next(r for r in model.links if r.url == url)


async def test_summary_counts_every_status_and_health(sample: ReportModel) -> None:
    s = sample.summary
    assert dict(s.status) == SAMPLE_STATUS
    assert dict(s.health) == SAMPLE_HEALTH
    assert s.total == 11 and s.unchecked == 1 and s.failing == 4 and s.at_risk == 2
    assert sample.generated_at == NOW
    assert sample.last_checked_at == T1 + (by_url(sample, "https://blog.example.org/post/1").checked_at - T1)


async def test_only_active_links_and_their_occurrences(sample: ReportModel) -> None:
    urls = {r.url for r in sample.links}
    assert "https://gone.example/old" not in urls
    ok = by_url(sample, "https://example.com/ok")
    assert [(o.file, o.line) for o in ok.occurrences] == [("notes/a.md", 3), ("notes/b.md", 7)]
    assert ok.title == "示例页面：链接健康"
    assert by_url(sample, "http://127.0.0.1:8080/private").status == "excluded"


async def test_best_snapshot_prefers_a_2xx_wayback_capture(sample: ReportModel) -> None:
    blog = by_url(sample, "https://blog.example.org/post/1")
    # The newer wayback capture answered 404 and a local copy exists: the 2xx one wins.
    assert blog.archive_url == "https://web.archive.org/web/2023/blog"
    wx = by_url(sample, "https://mp.weixin.qq.com/s/abc")
    assert (wx.archive_service, wx.archive_url) == ("local", "archive/wx.html")
    assert by_url(sample, "https://example.com/ok").archive_url is None


async def test_history_first_failing_and_revived(sample: ReportModel) -> None:
    wx = by_url(sample, "https://mp.weixin.qq.com/s/abc")
    assert [h.status for h in wx.history] == ["soft404"] * 3
    assert wx.history[0].checked_at < wx.history[-1].checked_at
    assert wx.first_failing_at.tzinfo is not None and wx.dead_since == T0
    assert by_url(sample, "https://revived.example.net/x").revived_at is not None


async def test_changes_since_previous_run(sample: ReportModel) -> None:
    c = sample.changes
    assert c.since == T1
    assert [r.url for r in c.newly_broken] == ["https://blog.example.org/post/1"]
    assert [r.url for r in c.revived] == ["https://revived.example.net/x"]
    assert [r.url for r in c.newly_archived] == ["https://mp.weixin.qq.com/s/abc"]


async def test_runs_trend_and_aggregates(sample: ReportModel) -> None:
    assert [r.started_at for r in sample.runs] == [T0, T1]
    assert sample.runs[-1].health["dead"] == 1
    top_note = sample.notes[0]
    assert (top_note.path, top_note.failing, top_note.dead) == ("notes/a.md", 2, 1)
    hosts = {h.host: h for h in sample.hosts}
    assert hosts["mp.weixin.qq.com"].at_risk and hosts["mp.weixin.qq.com"].dead == 1
    assert hosts["www.zhihu.com"].blocked == 1
    assert sample.hosts[0].failing >= sample.hosts[-1].failing
    assert any(r.url == LONG_URL for r in sample.links)


async def test_empty_database_is_a_report_not_an_error(tmp_path: Path) -> None:
    engine = await sqlite_engine(tmp_path / "empty.db")
    model = await build_report(engine)
    await engine.dispose()
    assert model.empty and model.summary.total == 0 and model.runs == ()
    assert model.changes.since is None and model.last_checked_at is None


async def test_single_run_has_no_changes_and_title_from_settings(tmp_path: Path) -> None:
    engine = await sqlite_engine(tmp_path / "one.db")
    async with engine.begin() as conn:
        s = Seeder(conn)
        await s.run(T0, counts({"broken": 1}, {"suspect": 1}))
        await s.run(T0, None, kind="archive")
        await s.link("https://x.example/", status="broken", health="suspect", first_failing_at=T0)
    settings = Settings(report=ReportSettings(title="我的笔记"))
    model = await build_report(engine, settings=settings)
    await engine.dispose()
    assert model.title == "我的笔记"
    assert model.changes.since is None and model.changes.newly_broken == ()
    assert len(model.runs) == 1  # the archive run is not a point of the health trend


async def test_store_object_with_engine_attribute(tmp_path: Path) -> None:
    engine = await sqlite_engine(tmp_path / "s.db")

    class FakeStore:  # the shape of checker.store.Store the report relies on
        def __init__(self, engine):
            self.engine = engine

    model = await build_report(FakeStore(engine))
    await engine.dispose()
    assert model.empty
    with pytest.raises(TypeError):
        await build_report(object())
