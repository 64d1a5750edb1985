"""The archive stage changes nothing on a dry run, and stores no secret: an error page
that quotes the Authorization header is redacted where archive errors enter the database,
and the keys are not sent over plain http unless asked. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fakewayback import (  # noqa: F401  (fixtures are used by name)
    FakeTime, add_link, archive_db_url, archive_store, fake_wayback, jobs,
)

from checker.archive import plan_archive, run_archive
from checker.settings import Settings
from checker.store import archivequeue as aq

REPO = Path(__file__).resolve().parents[1]
KEYS = {"LINKHEALTH_IA_ACCESS_KEY": "AKsecretaccess77", "LINKHEALTH_IA_SECRET_KEY": "SKsecretvalue88"}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LINKHEALTH_")}
    return subprocess.run([sys.executable, "-m", "checker.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={**clean, "PYTHONPATH": str(REPO)})


async def test_a_dry_run_queues_nothing_and_lists_only_configured_services(archive_store, archive_db_url,
                                                                           tmp_path):
    store, ft = archive_store, FakeTime()
    risky = "https://mp.weixin.qq.com/s/at-risk"
    await add_link(store, risky, at_risk=True)
    gone = await add_link(store, "https://gone.example.cn/x", health="dead", first_failing_at=ft.now())
    # A lookup queued while the config still named wayback; the config now says local only.
    await plan_archive(store, Settings().with_overrides({"archive.services": ["wayback"]}), ft.now(), environ={})
    before = await jobs(store)
    assert [(j["link_id"], j["service"], j["action"]) for j in before] == [(gone, "wayback", "lookup")]
    (tmp_path / "lh.toml").write_text('[archive]\nservices = ["local"]\n', encoding="utf-8")
    for _ in range(2):              # the second dry run sees the same: the first changed nothing
        proc = cli("archive", "--dry-run", "--db", archive_db_url, "--config", "lh.toml", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "would queue: local:save 1" in proc.stdout
        assert f"would save on local: {risky}" in proc.stdout
        assert "wayback" not in proc.stdout
        assert await jobs(store) == before


async def test_archive_show_takes_its_options_after_the_subcommand(archive_store, archive_db_url, tmp_path):
    (tmp_path / "lh.toml").write_text('[archive]\nservices = ["local"]\n', encoding="utf-8")
    proc = cli("archive", "show", "https://nowhere.example.cn/", "--config", "lh.toml", "--db", archive_db_url,
               cwd=tmp_path)
    assert proc.returncode == 1 and "No such option" not in proc.stderr, proc.stderr
    assert "no copy of https://nowhere.example.cn/ is known" in proc.stdout


async def test_an_error_quoting_the_authorization_header_is_stored_redacted(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    await add_link(store, "https://zhuanlan.zhihu.com/p/42", at_risk=True)
    settings = fake.settings(Settings(), services=["wayback"], captures_per_minute=600)
    fake.save_plan = ["echo"]
    await plan_archive(store, settings, ft.now(), environ=KEYS)
    await run_archive(store, settings, now_fn=ft.now, environ=KEYS, sleep=ft.sleep, clock=ft.clock)
    [job] = await jobs(store)
    assert fake.count("save") == 1 and "bad request" in job["last_error"]
    assert "AKsecretaccess77" not in job["last_error"] and "SKsecretvalue88" not in job["last_error"]
    assert "Authorization: ***" in job["last_error"]


async def test_keys_are_not_sent_over_plain_http_unless_asked(archive_store, fake_wayback):
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    await add_link(store, "https://zhuanlan.zhihu.com/p/43", at_risk=True)
    settings = fake.settings(Settings(), services=["wayback"], allow_http_keys=False)
    await plan_archive(store, settings, ft.now(), environ=KEYS)
    summary = await run_archive(store, settings, now_fn=ft.now, environ=KEYS, sleep=ft.sleep, clock=ft.clock)
    assert fake.count("save") == 0
    assert any("refusing to send the archive.org keys over plain http" in e for e in summary.errors)
    [job] = await jobs(store)
    assert job["state"] == "pending"            # kept for a run with https (or the setting)
    assert await aq.due_jobs(store, ft.now())


async def test_a_stop_lets_no_new_archive_request_start(archive_store, fake_wayback):
    """The daemon's SIGTERM sets the stop event: the lookup in flight finishes, no other starts."""
    import asyncio
    import time
    store, fake, ft = archive_store, fake_wayback, FakeTime()
    for i in range(4):
        await add_link(store, f"https://gone.example.cn/{i}", health="dead", first_failing_at=ft.now())
    settings = fake.settings(Settings(), services=["wayback"], lookups_per_minute=60.0)   # 1 s apart
    await plan_archive(store, settings, ft.now(), environ={})
    stop = asyncio.Event()
    asked: list[float] = []

    async def stop_after_first_request() -> None:
        while fake.count("available") + fake.count("cdx") == 0:
            await asyncio.sleep(0.005)
        asked.append(time.monotonic())
        stop.set()

    watcher = asyncio.create_task(stop_after_first_request())
    summary = await asyncio.wait_for(run_archive(store, settings, now_fn=ft.now, environ={}, stop=stop), 10)
    await watcher
    requests = fake.times("available") + fake.times("cdx")
    assert len(requests) == 1 and all(t <= asked[0] for t in requests)
    assert time.monotonic() - asked[0] < 1.0                     # it did not wait for the next token
    assert any("stopped on request with 4 jobs left" in e for e in summary.events)
    assert {j["state"] for j in await jobs(store)} == {"pending"}
