"""The learned pace: stored per host, used next time, shown in the report and `linkhealth status`."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from checker.cli import main
from checker.pace import LearnedPace
from checker.status import pace_section
from checker.store import Store

from test_store import db_url, store  # noqa: F401 - fixtures (SQLite and PostgreSQL)

WECHAT = "mp.weixin.qq.com"


async def test_paces_round_trip_and_a_calm_run_keeps_the_last_stress(store) -> None:  # noqa: F811
    stressed = LearnedPace(WECHAT, concurrency=1.5, interval=0.6, stress_concurrency=3.0, stress_rate=2.2,
                           last_stress="WeChat verification page", last_stress_at=1_800_000_000.0,
                           requests=120, refusals=3, updated_at=1_800_000_100.0)
    assert await store.save_paces([stressed, LearnedPace("github.com", 4.0, 0.0, requests=9)]) == 2
    got = await store.load_paces([WECHAT, "github.com", "unknown.example"])
    assert got[WECHAT] == stressed and set(got) == {WECHAT, "github.com"}
    calm = LearnedPace(WECHAT, concurrency=2.0, interval=0.5, requests=80, updated_at=1_800_000_500.0)
    await store.save_paces([calm])
    again = (await store.load_paces([WECHAT]))[WECHAT]
    assert (again.concurrency, again.interval, again.requests) == (2.0, 0.5, 80)
    assert again.last_stress == "WeChat verification page" and again.stress_rate == 2.2
    listed = await store.learned_paces()
    assert [p.host for p in listed] == [WECHAT, "github.com"]       # hosts that pushed back first


def test_status_shows_the_learned_pace(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'lh.db'}"

    async def prepare() -> None:
        store = await Store.open(url)
        try:
            await store.save_paces([LearnedPace(WECHAT, 1.0, 0.55, last_stress="WeChat verification page",
                                                last_stress_at=datetime(2026, 11, 29, 13, 5, tzinfo=timezone.utc)
                                                .timestamp())])
        finally:
            await store.close()

    asyncio.run(prepare())
    lines = pace_section([LearnedPace(WECHAT, 1.0, 0.55, last_stress="HTTP 429")])
    assert lines[1] == f"  {WECHAT}: 1 at a time, 1.82/s; last stress: HTTP 429"
    result = CliRunner().invoke(main, ["status", "--db", url])
    assert result.exit_code == 0, result.output
    assert "Recent runs:" in result.output
    assert (f"{WECHAT}: 1 at a time, 1.82/s; last stress: WeChat verification page (2026-11-29 13:05 UTC)"
            in result.output)


@pytest.mark.parametrize("bad", ["postgresql+asyncpg://nobody@127.0.0.1:1/none"])
def test_status_on_a_database_it_cannot_open_is_one_line(bad) -> None:
    result = CliRunner().invoke(main, ["status", "--db", bad])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_report_hosts_view_shows_the_learned_pace() -> None:
    from checker.report.model import model_from_rows
    from checker.report.render.html import data_blob
    from checker.store.reportquery import LinkRecord, ReportRows

    link = LinkRecord(1, f"https://{WECHAT}/s/a", f"https://{WECHAT}/s/a", WECHAT, True, True, "ok", "alive",
                      200, None, "文章", None, 120, datetime(2026, 11, 29, tzinfo=timezone.utc), None, None, None)
    pace = LearnedPace(WECHAT, 2.0, 0.5, last_stress="HTTP 429")
    model = model_from_rows(ReportRows((link,), (), {}, (), (), paces=(pace,)))
    [host] = model.hosts
    assert host.pace == "2 at a time, 2/s; last stress: HTTP 429"
    assert data_blob(model)["host_stats"][0][6] == host.pace


async def test_audit_checks_captcha_refusals_again_and_keeps_the_pace_for_next_time(web, web_settings, tmp_path) -> None:
    from checker.pipeline import run_audit
    from webserver import wechat_with_captcha

    served = wechat_with_captcha(web, lambda n, _: n == 2)       # the host's verification page, once
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("".join(f"- https://{WECHAT}/s?id={i}\n" for i in range(3)), encoding="utf-8")
    settings = web_settings().with_overrides({"data_dir": str(tmp_path / ".linkhealth")})
    store = await Store.open(settings.db_url)
    try:
        outcome = await run_audit(store, settings, [str(notes)])
        paces = await store.load_paces([WECHAT])
    finally:
        await store.close()
    assert outcome.statuses == {"ok": 3}                     # refused once, checked again, not blocked
    assert served["n"] == 4
    assert paces[WECHAT].last_stress.startswith("WeChat verification page (captcha)")
    assert paces[WECHAT].refusals == 1
