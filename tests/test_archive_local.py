"""The local WARC archive: pages from the scripted web on 127.0.0.1, read back with warcio."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from warcio.archiveiterator import ArchiveIterator

sys.path.insert(0, str(Path(__file__).parent))

from fakewayback import (  # noqa: E402,F401  (fixtures are used by name)
    FakeTime, add_link, archive_db_url, archive_store, jobs, snaps,
)

from checker.archive import plan_archive, run_archive, show_snapshots  # noqa: E402
from checker.archive.local import LocalBackend, payload_digest, validate_warc  # noqa: E402

WARCIO = Path(sys.executable).with_name("warcio")
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
ARTICLE = """<!doctype html><html><head><meta charset="utf-8"><title>文章标题 Article</title>
<link rel="stylesheet" href="/static/site.css"><script src="/static/track.js"></script></head>
<body onload="track()"><h1>正文 heading</h1><p>Body text of the article.</p>
<img src="/img/a.png"><img src="https://mp.weixin.qq.com/img/copy-of-a.png">
<script>alert(1)</script></body></html>"""
URL = "https://mp.weixin.qq.com/s/article"


@pytest.fixture
def site(web):
    web.page("/s/article", ARTICLE)
    web.page("/static/site.css", "h1 { color: #c00 }", content_type="text/css")
    web.page("/static/track.js", "function track(){}", content_type="application/javascript")
    web.page("/img/a.png", PNG, content_type="image/png")
    web.page("/img/copy-of-a.png", PNG, content_type="image/png")
    web.page("/s/gone", "<title>Not here</title>", status=404)
    web.page("/paper.pdf", b"%PDF-1.4 fake pdf bytes", content_type="application/pdf")
    return web


def local_settings(web_settings, tmp_path, **archive):
    return web_settings().with_overrides({
        "archive.services": ("local",), "archive.local_dir": str(tmp_path / "archive"), **{
            f"archive.{k}": v for k, v in archive.items()}})


async def archive_once(store, settings, ft, **kw):
    await plan_archive(store, settings, ft.now(), environ={})
    return await run_archive(store, settings, now_fn=ft.now, sleep=ft.sleep, clock=ft.clock,
                             environ={}, **kw)


def warcio_check(path: Path) -> None:
    done = subprocess.run([str(WARCIO), "check", "-v", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def records(path: Path) -> list:
    out = []
    with open(path, "rb") as fh:
        for rec in ArchiveIterator(fh):
            out.append((rec.rec_type, rec.rec_headers.get_header("WARC-Target-URI"), rec.rec_headers,
                        rec.http_headers, rec.content_stream().read()))
    return out


async def test_page_and_resources_into_a_real_warc(archive_store, site, web_settings, tmp_path):
    store, ft = archive_store, FakeTime()
    link = await add_link(store, URL, at_risk=True)
    settings = local_settings(web_settings, tmp_path)
    summary = await archive_once(store, settings, ft)
    assert summary.outcomes == {"done": 1}, summary
    [snap] = await snaps(store)
    warc = Path(snap["local_path"])
    assert warc.is_file() and warc.name.endswith(".warc.gz") and warc.parent.name == "mp.weixin.qq.com"
    assert warc.is_relative_to(tmp_path / "archive")
    warcio_check(warc)
    recs = records(warc)
    kinds = [(t, u) for t, u, *_ in recs]
    assert kinds[0][0] == "warcinfo"
    assert ("response", URL) in kinds and ("request", URL) in kinds
    assert ("response", "https://mp.weixin.qq.com/static/site.css") in kinds
    assert ("response", "https://mp.weixin.qq.com/img/a.png") in kinds
    # the same bytes under a second URL: a revisit record, not a second copy
    assert ("revisit", "https://mp.weixin.qq.com/img/copy-of-a.png") in kinds
    # scripts are kept in the WARC for replay tools, never in the readable copy
    assert ("response", "https://mp.weixin.qq.com/static/track.js") in kinds
    page = next(r for r in recs if r[0] == "response" and r[1] == URL)
    _, _, warc_headers, http_headers, body = page
    assert http_headers.get_statuscode() == "200"
    assert "text/html" in http_headers.get_header("Content-Type")
    assert body == ARTICLE.encode("utf-8")
    assert warc_headers.get_header("WARC-Payload-Digest") == payload_digest(body) == snap["digest"]
    # the stored offset points at the page's response record
    with open(warc, "rb") as fh:
        fh.seek(snap["warc_offset"])
        first = next(iter(ArchiveIterator(fh)))
        assert first.rec_type == "response" and first.rec_headers.get_header("WARC-Target-URI") == URL
    # the readable copy opens offline: scripts gone, images and CSS inlined, nothing remote
    readable = Path(snap["archive_url"])
    assert readable.parent == warc.parent and readable.suffix == ".html"
    soup = BeautifulSoup(readable.read_text("utf-8"), "lxml")
    assert soup.title.string == "文章标题 Article" and "正文 heading" in soup.h1.text
    assert soup.find("script") is None and not soup.body.get("onload")
    imgs = [i["src"] for i in soup.find_all("img")]
    assert imgs[0].startswith("data:image/png;base64,") and imgs[1].startswith("data:image/png;base64,")
    assert base64.b64decode(imgs[0].split(",", 1)[1]) == PNG
    css = soup.find("style", attrs={"data-lh-href": "https://mp.weixin.qq.com/static/site.css"})
    assert "h1 { color: #c00 }" in css.text and soup.find("link", rel="stylesheet") is None
    assert soup.find("meta", attrs={"http-equiv": "Content-Security-Policy"}) is not None
    assert URL in soup.find(class_="linkhealth-archived").text
    assert not list(tmp_path.rglob("*.part"))
    [info] = await show_snapshots(store, URL)
    assert info.available and info.local_path == str(warc) and info.archive_url == str(readable)
    assert (await jobs(store))[0]["state"] == "done" and link


async def test_same_payload_is_not_written_twice(archive_store, site, web_settings, tmp_path):
    store, ft = archive_store, FakeTime()
    await add_link(store, URL, at_risk=True)
    settings = local_settings(web_settings, tmp_path, max_age_days=1.0)
    await archive_once(store, settings, ft)
    ft.advance(2 * 86400)          # older than max_age: the policy saves again
    summary = await archive_once(store, settings, ft)
    assert summary.outcomes == {"done": 1}
    rows = await snaps(store)
    assert len(rows) == 2 and rows[0]["local_path"] == rows[1]["local_path"]
    assert len(list((tmp_path / "archive").rglob("*.warc.gz"))) == 1
    # the page changes: a new WARC
    site.page("/s/article", ARTICLE.replace("Body text", "Edited text"))
    ft.advance(2 * 86400)
    await archive_once(store, settings, ft)
    files = sorted((tmp_path / "archive").rglob("*.warc.gz"))
    assert len(files) == 2
    for f in files:
        warcio_check(f)


async def test_error_page_is_not_kept(archive_store, site, web_settings, tmp_path):
    store, ft = archive_store, FakeTime()
    await add_link(store, "https://mp.weixin.qq.com/s/gone", at_risk=True)
    summary = await archive_once(store, local_settings(web_settings, tmp_path), ft)
    assert summary.outcomes == {"retry": 1}
    [job] = await jobs(store)
    assert job["state"] == "pending" and "HTTP 404" in job["last_error"]
    assert not list((tmp_path / "archive").rglob("*.warc.gz"))


async def test_non_html_is_archived_without_readable_copy(archive_store, site, web_settings, tmp_path):
    store, ft = archive_store, FakeTime()
    await add_link(store, "https://example.com/paper.pdf", at_risk=True)
    await archive_once(store, local_settings(web_settings, tmp_path), ft)
    [snap] = await snaps(store)
    assert snap["archive_url"] is None
    warcio_check(Path(snap["local_path"]))
    assert [r[4] for r in records(Path(snap["local_path"])) if r[0] == "response"] == [b"%PDF-1.4 fake pdf bytes"]


async def test_resources_are_bounded(archive_store, site, web_settings, tmp_path):
    store, ft = archive_store, FakeTime()
    await add_link(store, URL, at_risk=True)
    await archive_once(store, local_settings(web_settings, tmp_path, local_max_resources=1), ft)
    [snap] = await snaps(store)
    kinds = [t for t, *_ in records(Path(snap["local_path"]))]
    assert kinds.count("response") == 2     # the page and one resource


async def test_unwritable_folder_is_a_clear_error_and_jobs_stay(archive_store, site, web_settings, tmp_path):
    store, ft = archive_store, FakeTime()
    await add_link(store, URL, at_risk=True)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = web_settings().with_overrides({"archive.services": ("local",),
                                              "archive.local_dir": str(blocker / "archive")})
    summary = await archive_once(store, settings, ft)
    assert summary.errors and "not writable" in summary.errors[0] and str(blocker) in summary.errors[0]
    [job] = await jobs(store)
    assert (job["state"], job["attempts"]) == ("pending", 0)
    # fixed folder: the kept job runs
    settings = local_settings(web_settings, tmp_path)
    summary = await archive_once(store, settings, ft)
    assert summary.outcomes == {"done": 1}


async def test_halfway_written_warc_is_removed_and_rewritten(archive_store, site, web_settings, tmp_path):
    store, ft = archive_store, FakeTime()
    await add_link(store, URL, at_risk=True)
    settings = local_settings(web_settings, tmp_path)
    await archive_once(store, settings, ft)
    [snap] = await snaps(store)
    warc = Path(snap["local_path"])
    # a process killed (an hour and more ago) while writing leaves a .part file: it is never
    # served, and removed; a fresh one may be another run's write in progress and stays
    data = warc.read_bytes()
    part = warc.with_name("20260101000000-deadbeef.warc.gz.part")
    part.write_bytes(data[: len(data) // 2])
    old = time.time() - 2 * 3600
    os.utime(part, (old, old))
    fresh = warc.with_name("20260101000001-cafef00d.warc.gz.part")
    fresh.write_bytes(data[: len(data) // 2])
    assert not validate_warc(part)
    assert validate_warc(warc)
    # the finished file is lost too (deleted by hand): the snapshot goes, the save is queued again
    warc.unlink()
    ft.advance(60)
    summary = await run_archive(store, settings, now_fn=ft.now, sleep=ft.sleep, clock=ft.clock, environ={})
    assert not part.exists() and fresh.exists()
    assert summary.outcomes == {"done": 1}
    [snap2] = await snaps(store)
    assert Path(snap2["local_path"]).is_file() and snap2["local_path"] != snap["local_path"]
    warcio_check(Path(snap2["local_path"]))


def test_truncated_warc_fails_validation(tmp_path):
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter
    path = tmp_path / "x.warc.gz"
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        w.write_record(w.create_warc_record("https://a.example/", "response", payload=BytesIO(b"x" * 50000),
                                            http_headers=StatusAndHeaders("200 OK", [], protocol="HTTP/1.1")))
    assert validate_warc(path)
    path.write_bytes(path.read_bytes()[:-200])
    assert not validate_warc(path)


def test_recover_removes_only_old_part_files(tmp_path, web_settings):
    """A .part file younger than an hour may be another process writing right now: kept."""
    settings = local_settings(web_settings, tmp_path)
    backend = LocalBackend(settings, fetch=None)
    folder = tmp_path / "archive" / "a.example"
    folder.mkdir(parents=True)
    fresh, stale, done = folder / "1.warc.gz.part", folder / "2.html.part", folder / "3.warc.gz"
    for f in (fresh, stale, done):
        f.write_bytes(b"x")
    old = time.time() - 3601
    os.utime(stale, (old, old))
    assert backend.recover() == [stale]
    assert fresh.exists() and not stale.exists() and done.exists()
    # the threshold is a parameter: a zero age takes every .part file
    assert backend.recover(max_age=0, now=time.time() + 1) == [fresh]
    assert not fresh.exists() and done.exists()


async def test_paths_are_absolute_whatever_the_working_directory(
        archive_store, site, web_settings, tmp_path, monkeypatch):
    """archive.local_dir relative to the working directory: the rows still hold absolute paths,
    so `archive show` and the report find the files from anywhere."""
    store, ft = archive_store, FakeTime()
    await add_link(store, URL, at_risk=True)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    settings = web_settings().with_overrides({"archive.services": ("local",),
                                              "archive.local_dir": ".linkhealth/archive"})
    summary = await archive_once(store, settings, ft)
    assert summary.outcomes == {"done": 1}
    [snap] = await snaps(store)
    for key in ("archive_url", "local_path"):
        assert Path(snap[key]).is_absolute() and Path(snap[key]).is_file(), snap[key]
        assert Path(snap[key]).is_relative_to(project / ".linkhealth" / "archive")
    monkeypatch.chdir(tmp_path)
    [info] = await show_snapshots(store, URL)
    assert info.available and Path(info.archive_url).is_file() and Path(info.local_path).is_file()


async def test_report_links_the_local_copy_with_an_href_that_opens_it(
        archive_store, site, web_settings, tmp_path, monkeypatch):
    """The report lives in .linkhealth/report.html and the archive in .linkhealth/archive/: the
    href of the local copy must open the file (it used to resolve to .linkhealth/.linkhealth/...)."""
    import dataclasses
    import json
    import re
    from urllib.parse import unquote, urlsplit

    from checker.report import build_report, render, write_report
    from checker.report.model import Changes
    store, ft = archive_store, FakeTime()
    await add_link(store, URL, at_risk=True)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    settings = web_settings().with_overrides({"archive.services": ("local",),
                                              "archive.local_dir": ".linkhealth/archive"})
    assert (await archive_once(store, settings, ft)).outcomes == {"done": 1}
    [snap] = await snaps(store)
    model = await build_report(store, now=ft.now() + timedelta(minutes=1))
    # (one run in the database has no "changes"; put the copy in "newly archived" by hand)
    model = dataclasses.replace(model, changes=Changes(ft.now(), (), (), model.links))
    report = write_report(model, "html", Path(".linkhealth") / "report.html")
    monkeypatch.chdir(tmp_path)         # the reader opens the report from anywhere
    html = (project / report).read_text("utf-8")
    blob = json.loads(re.search(r'<script[^>]*id="report-data"[^>]*>(.*?)</script>', html, re.S).group(1))
    [row] = blob["links"]
    hrefs = [row[10]] + re.findall(r'<a href="([^"]+)"[^>]*>local copy</a>', html)
    assert len(hrefs) == 2, hrefs       # the links table and the "newly archived" list
    for href in hrefs:
        parts = urlsplit(href)
        assert parts.scheme == "file", href
        target = Path(unquote(parts.path))
        assert target.is_file() and target == Path(snap["archive_url"])
        assert "文章标题" in target.read_text("utf-8")
    # the other formats name the file by its absolute path
    doc = json.loads(render(model, "json"))
    [link] = doc["links"]
    assert link["archive_url"] == snap["archive_url"] and Path(link["archive_url"]).is_file()
    assert snap["archive_url"] in render(model, "csv")


async def test_readable_copy_is_decoded_as_a_browser_decodes_the_page(archive_store, site, web_settings,
                                                                      tmp_path):
    # UTF-7 is no encoding of the web: "+ADw-b+AD4-" stays text, it never becomes a <b> element.
    site.page("/s/utf7", b'<html><head><meta charset="utf-7"><title>T</title></head>'
                         b"<body><p>+ADw-b+AD4-x+ADw-/b+AD4-</p></body></html>", content_type="text/html")
    store, ft = archive_store, FakeTime()
    await add_link(store, "https://mp.weixin.qq.com/s/utf7", at_risk=True)
    await archive_once(store, local_settings(web_settings, tmp_path), ft)
    [snap] = await snaps(store)
    soup = BeautifulSoup(Path(snap["archive_url"]).read_text("utf-8"), "lxml")
    assert soup.find("b") is None and soup.p.get_text() == "+ADw-b+AD4-x+ADw-/b+AD4-"
