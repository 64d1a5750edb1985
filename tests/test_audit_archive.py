"""`linkhealth audit --archive` end to end: the real CLI, the scripted web, the fake Wayback.

At-risk live pages get a local WARC copy and a Wayback save (keys set); failing pages get
the newest good capture from before they failed; every outcome is in the database, the
JSON output and the HTML report.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from fakewayback import FakeWayback
from test_audit import run, web_args

PAGES = Path(__file__).parent / "fixtures" / "pages"
LIVE_WECHAT = "https://mp.weixin.qq.com/s/ArchiveMeFixture01"
LIVE_ZHIHU = "https://zhuanlan.zhihu.com/p/424242"
DEAD_WITH_CAPTURE = "https://example.com/404"
DEAD_WITHOUT = "https://example.com/410"
KEYS = {"LINKHEALTH_IA_ACCESS_KEY": "AKfixture123", "LINKHEALTH_IA_SECRET_KEY": "SKfixture456"}


async def test_audit_archive_saves_at_risk_pages_and_rescues_dead_ones(web, ca_file, tmp_path):
    web.page("/s/ArchiveMeFixture01", (PAGES / "wechat_live.html").read_bytes())
    web.page("/p/424242", "<html><head><title>知乎专栏：一篇文章</title>"
                          "<link rel=stylesheet href=/style.css></head><body><p>正文</p></body></html>")
    web.page("/style.css", "body { color: #333 }", content_type="text/css")
    fake = await FakeWayback().start()
    try:
        fake.add_capture(DEAD_WITH_CAPTURE, "20190101000000", status=200)
        fake.add_capture(DEAD_WITH_CAPTURE, "20210101000000", status=404)   # not a good capture
        project = tmp_path / "w"
        (project / "notes").mkdir(parents=True)
        (project / "notes" / "n.md").write_text(
            f"# 收藏\n\n{LIVE_WECHAT}\n\n{LIVE_ZHIHU}\n\n{DEAD_WITH_CAPTURE}\n\n{DEAD_WITHOUT}\n",
            encoding="utf-8")
        env = {**KEYS, **{f"LINKHEALTH_ARCHIVE_{k.upper()}": v for k, v in {
            "save_url": f"{fake.base}/save", "status_url": f"{fake.base}/save/status",
            "availability_url": f"{fake.base}/wayback/available", "cdx_url": f"{fake.base}/cdx/search/cdx",
            "web_url": f"{fake.base}/web", "poll_interval": "0.05", "captures_per_minute": "600",
            "lookups_per_minute": "600", "allow_http_keys": "true"}.items()}}
        code, out, err = await run("audit", "notes", "--archive", "--format", "json", "-o", "out.json",
                                   *web_args(web, ca_file), cwd=project, env=env)
        assert code == 1, err                       # the two dead pages fail the audit
        assert "AKfixture123" not in out + err and "SKfixture456" not in out + err
    finally:
        await fake.close()

    # Saves went to the fake with the keys in the header, once per at-risk live page.
    saved = sorted(form["url"] for form in fake.forms)
    assert saved == sorted([LIVE_WECHAT, LIVE_ZHIHU])
    assert all(h.get("Authorization") == "LOW AKfixture123:SKfixture456" for h in fake.headers("save"))

    db = sqlite3.connect(project / ".linkhealth" / "linkhealth.db")
    rows = db.execute("select l.url, s.service, s.archive_url, s.local_path from snapshots s "
                      "join links l on l.id = s.link_id order by l.url, s.service").fetchall()
    by = {(url, service): (archive_url, local_path) for url, service, archive_url, local_path in rows}
    for url in (LIVE_WECHAT, LIVE_ZHIHU):
        archive_url, warc = by[(url, "local")]
        assert Path(project, warc).is_file() or Path(warc).is_file()
        readable = Path(project, archive_url) if not Path(archive_url).is_absolute() else Path(archive_url)
        assert readable.is_file()
        assert by[(url, "wayback")][0].startswith(f"{fake.base}/web/")
    assert by[(DEAD_WITH_CAPTURE, "wayback")][0] == f"{fake.base}/web/20190101000000/{DEAD_WITH_CAPTURE}"
    assert (DEAD_WITHOUT, "wayback") not in by
    states = dict(db.execute("select l.url || ' ' || j.service || ' ' || j.action, j.state "
                             "from archive_jobs j join links l on l.id = j.link_id").fetchall())
    assert states[f"{LIVE_WECHAT} local save"] == "done"
    assert states[f"{LIVE_WECHAT} wayback save"] == "done"
    assert states[f"{DEAD_WITH_CAPTURE} wayback lookup"] == "done"
    assert states[f"{DEAD_WITHOUT} wayback lookup"] in ("done", "not-archivable", "failed")

    # Every WARC file is valid for the ecosystem's checker.
    warcs = list((project / ".linkhealth" / "archive").rglob("*.warc.gz"))
    assert len(warcs) >= 2
    check = subprocess.run([str(Path(sys.executable).parent / "warcio"), "check", *map(str, warcs)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    # The audit's JSON and HTML report are written after archiving, and `report` agrees.
    code, out, err = await run("report", "--format", "json", cwd=project)
    assert code == 0, err
    for document in (json.loads(out), json.loads((project / "out.json").read_text("utf-8"))):
        links = {link["url"]: link for link in document["links"]}
        assert links[DEAD_WITH_CAPTURE]["archive_url"] == f"{fake.base}/web/20190101000000/{DEAD_WITH_CAPTURE}"
        assert links[LIVE_WECHAT]["archive_url"].startswith(f"{fake.base}/web/")   # wayback beats local
        assert links[DEAD_WITHOUT]["archive_url"] is None
    html = (project / ".linkhealth" / "report.html").read_text(encoding="utf-8")
    assert f"/web/20190101000000/{DEAD_WITH_CAPTURE}" in html

    code, out, err = await run("archive", "show", LIVE_WECHAT, cwd=project)
    assert code == 0 and "local" in out and "wayback" in out
    # the local copy's fidelity check, as measured after writing (issue 11)
    assert re.search(r"copy (ok|partial|failed): text \d+/\d+ chars, pictures \d+/\d+", out), out
