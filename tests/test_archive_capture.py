"""Issue 11: what a capture fetches, its budgets, fidelity and retry, revisits across captures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web as aioweb
from bs4 import BeautifulSoup
from sqlalchemy import select
from warcio.archiveiterator import ArchiveIterator

sys.path.insert(0, str(Path(__file__).parent))

from archive_pages import PICTURES, install, png, wechat_article  # noqa: E402
from fakewayback import FakeTime, add_link, archive_db_url, archive_store, jobs, snaps  # noqa: E402,F401

from checker.archive import plan_archive, run_archive, show_snapshots  # noqa: E402
from checker.archive.capture import page_referer  # noqa: E402
from checker.archive.pagemeta import read_meta  # noqa: E402
from checker.archive.resources import best_srcset, css_refs, page_refs, picture_url  # noqa: E402
from checker.store.schema import archive_resources  # noqa: E402

WARCIO = Path(sys.executable).with_name("warcio")
BASE = "https://blog.example.com/post/1.html"


def soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "lxml")


@pytest.mark.parametrize("value, best", [
    ("a.png 320w, b.png 1280w, c.png 640w", "b.png"),
    ("a.png, b.png 2x", "b.png"),
    ("a.png 1.5x,b.png 1x", "a.png"),
    ("https://x/y.jpg?w=1,2 100w, https://x/z.jpg 200w", "https://x/z.jpg"),
    ("", None), (None, None), ("   ", None),
])
def test_best_srcset(value, best):
    assert best_srcset(value) == best


@pytest.mark.parametrize("tag, url", [
    ('<img data-src="/a.png" src="data:image/gif;base64,R0l">', "https://blog.example.com/a.png"),
    ('<img data-original="//cdn.example.com/b.png" src="/loading.gif">', "https://cdn.example.com/b.png"),
    ('<img data-lazy-src="c.png" src="">', "https://blog.example.com/post/c.png"),
    ('<img data-actualsrc="https://pic1.zhimg.com/d.jpg" src="data:image/svg+xml,x">', "https://pic1.zhimg.com/d.jpg"),
    ('<img data-srcset="e1.png 1x, e2.png 2x" src="data:,">', "https://blog.example.com/post/e2.png"),
    ('<img src="f.png" srcset="f1.png 300w, f2.png 900w">', "https://blog.example.com/post/f2.png"),
    ('<img src="data:image/png;base64,AAAA">', None),
    ('<img src="javascript:alert(1)">', None),
])
def test_picture_url(tag, url):
    assert picture_url(soup(tag).find("img"), BASE) == url


def test_css_refs_imports_backgrounds_fonts():
    css = """@import "base.css"; @import url('print.css') print;
    .a{background:url(img/a.png)} .b{background-image:url("https://cdn.example.com/b.png")}
    @font-face{src:url(../fonts/f.woff2) format("woff2")} .c{background:url(data:image/png;base64,AA)}"""
    assert css_refs(css, "https://blog.example.com/css/site.css") == [
        ("https://blog.example.com/css/base.css", "css"), ("https://blog.example.com/css/print.css", "css"),
        ("https://blog.example.com/css/img/a.png", "image"), ("https://cdn.example.com/b.png", "image"),
        ("https://blog.example.com/fonts/f.woff2", "image")]


def test_page_refs_finds_what_the_page_shows():
    page = soup("""<html><head><link rel="stylesheet" href="/s.css"><link rel="icon" href="/fav.ico">
    <style>.x{background:url(/bg.png)}</style></head><body>
    <img data-src="/lazy.png" src="data:,"><picture><source srcset="/p.webp"><img src="/p.png"></picture>
    <video poster="/poster.jpg"></video><div style="background-image:url('/inline.png')"></div>
    <table background="/table.png"></table><input type="image" src="/button.png"></body></html>""")
    refs = page_refs(page, BASE, BASE)
    assert [(r.url.removeprefix("https://blog.example.com"), r.kind) for r in refs] == [
        ("/s.css", "css"), ("/bg.png", "image"), ("/lazy.png", "image"), ("/p.webp", "image"), ("/p.png", "image"),
        ("/poster.jpg", "image"), ("/inline.png", "image"), ("/table.png", "image"), ("/button.png", "image"),
        ("/fav.ico", "icon")]
    assert {r.referer for r in refs} == {BASE}


@pytest.mark.parametrize("meta, referer", [
    ("", BASE), ('<meta name="referrer" content="no-referrer">', None),
    ('<meta name="referrer" content="origin">', "https://blog.example.com/"),
    ('<meta name="Referrer" content="never">', None), ('<meta name="referrer" content="always">', BASE),
])
def test_page_referer(meta, referer):
    assert page_referer(soup(f"<head>{meta}</head>"), BASE) == referer


def test_wechat_meta_from_script_variables():
    html = wechat_article(7, account="某某科技 &amp; 研究")
    meta = read_meta(soup(html), html)
    assert meta.title == "离线测试文章 7：看得见的正文"
    assert meta.account == "某某科技 & 研究"
    assert meta.published == "2023-11-14 22:13 UTC"
    # older pages: only publish_time; a page with neither: the element text
    html2 = '<em id="publish_time">2019-01-02</em><script>var nickname = "老号";</script>'
    assert read_meta(soup(html2), html2).account == "老号" and read_meta(soup(html2), html2).published == "2019-01-02"
    html3 = '<script>var publish_time = "2018-06-20" || "";</script>'
    assert read_meta(soup(html3), html3).published == "2018-06-20"


def local_settings(web_settings, tmp_path, **archive):
    return web_settings().with_overrides({
        "archive.services": ("local",), "archive.local_dir": str(tmp_path / "archive"),
        **{f"archive.{k}": v for k, v in archive.items()}})


async def archive_once(store, settings, ft):
    await plan_archive(store, settings, ft.now(), environ={})
    return await run_archive(store, settings, now_fn=ft.now, sleep=ft.sleep, clock=ft.clock, environ={})


def records(path: str) -> list:
    with open(path, "rb") as fh:
        return [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI"), r.rec_headers) for r in ArchiveIterator(fh)]


async def test_lost_picture_says_so_and_is_retried(archive_store, web, web_settings, tmp_path, capsys):
    """A picture host answering 503: the copy is kept, says it lost a picture, and the next run
    captures again (and gets it)."""
    store, ft = archive_store, FakeTime()
    install(web)
    calls = {"n": 0}

    async def flaky(request: aioweb.Request) -> aioweb.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return aioweb.Response(status=503, text="busy")
        return aioweb.Response(body=PICTURES["/mmbiz_jpg/LhPhotoA/640"], content_type="image/jpeg")
    web.route("/mmbiz_jpg/Flaky/640", flaky)
    web.page("/s/flaky", wechat_article(3, photos=("/mmbiz_jpg/Flaky/640",)))
    url = "https://mp.weixin.qq.com/s/flaky"
    await add_link(store, url, at_risk=True)
    settings = local_settings(web_settings, tmp_path)
    summary = await archive_once(store, settings, ft)
    assert summary.outcomes == {"retry": 1}, summary
    [first] = await snaps(store)
    assert (first["pictures_found"], first["pictures_kept"]) == (3, 2)
    assert first["text_chars"] >= first["live_text_chars"] > 0
    assert "HTTP 503" in first["fidelity_note"] and first["copy_bytes"] > 0 and first["warc_bytes"] > 0
    [job] = await jobs(store)
    assert job["state"] == "pending" and "lost 1" in job["last_error"]
    [info] = await show_snapshots(store, url)
    assert info.fidelity.verdict == "partial" and info.fidelity.lost_pictures == 1
    assert "Pictures: 2 of 3 kept" in " ".join(BeautifulSoup(Path(first["archive_url"]).read_text("utf-8"), "lxml")
                                               .find(class_="linkhealth-archived").get_text(" ").split())
    # the report says so too
    from checker.report import build_report, render
    model = await build_report(store, now=ft.now())
    [link] = json.loads(render(model, "json"))["links"]
    assert link["archive_fidelity"].startswith("partial") and "lost 1" in link["archive_fidelity"]
    assert "lost 1" in render(model, "html")
    # the next run (after the backoff) captures again: the same page bytes are not "the same copy"
    ft.advance(3600)
    summary = await run_archive(store, settings, now_fn=ft.now, sleep=ft.sleep, clock=ft.clock, environ={})
    assert summary.outcomes == {"done": 1}, summary
    second = (await snaps(store))[-1]
    assert (second["pictures_found"], second["pictures_kept"]) == (3, 3) and second["fidelity_note"] is None
    assert (await jobs(store))[0]["state"] == "done"


async def test_budgets_bound_a_page_and_say_so(archive_store, web, web_settings, tmp_path):
    store, ft = archive_store, FakeTime()
    install(web)
    await add_link(store, "https://mp.weixin.qq.com/s/Lh_Test-Article_01", at_risk=True)
    settings = local_settings(web_settings, tmp_path, local_max_resources=2)
    summary = await archive_once(store, settings, ft)
    # over budget is no error to retry: a bigger budget is the fix, not another try
    assert summary.outcomes == {"done": 1}, summary
    [row] = await snaps(store)
    kinds = [t for t, *_ in records(row["local_path"])]
    assert kinds.count("response") == 3          # the page and two resources
    assert row["pictures_kept"] < row["pictures_found"] and "over the page's budget" in row["fidelity_note"]


async def test_time_budget(archive_store, web, web_settings, tmp_path):
    store, ft = archive_store, FakeTime()
    web.page("/p/slow.html", '<p>text</p><img src="/slow/3000"><img src="/pic.png">')
    web.page("/pic.png", png(4, 4, (1, 2, 3)), content_type="image/png")
    await add_link(store, "https://blog.example.com/p/slow.html", at_risk=True)
    settings = local_settings(web_settings, tmp_path, local_max_seconds=0.5).with_overrides({"check.per_host": 1})
    summary = await archive_once(store, settings, ft)
    assert summary.outcomes == {"done": 1}, summary
    [row] = await snaps(store)
    assert "over the page's budget" in row["fidelity_note"]


async def test_shared_resources_become_revisits_across_captures(archive_store, web, web_settings, tmp_path):
    """Two articles of one account share the logo and the stylesheet: the second WARC holds
    revisit records pointing at the first; pywb-style lookups find the original by URL and date."""
    store, ft = archive_store, FakeTime()
    install(web)
    web.page("/s/second", wechat_article(2, photos=("/mmbiz_jpg/LhPhotoB/640",)))
    first_url, second_url = "https://mp.weixin.qq.com/s/Lh_Test-Article_01", "https://mp.weixin.qq.com/s/second"
    await add_link(store, first_url, at_risk=True)
    settings = local_settings(web_settings, tmp_path)
    assert (await archive_once(store, settings, ft)).outcomes == {"done": 1}
    await add_link(store, second_url, at_risk=True)
    ft.advance(60)
    assert (await archive_once(store, settings, ft)).outcomes == {"done": 1}
    first, second = await snaps(store)
    recs = records(second["local_path"])
    revisits = {u: h for t, u, h in recs if t == "revisit"}
    logo = "https://mmbiz.qpic.cn/mmbiz_png/LhLogo/0?wx_fmt=png"
    css = "https://res.wx.qq.com/mmbizappmsg/zh_CN/htmledition/appmsg_lh.css"
    photo_b = "https://mmbiz.qpic.cn/mmbiz_jpg/LhPhotoB/640?wx_fmt=jpeg"
    script = "https://res.wx.qq.com/mmbizappmsg/zh_CN/htmledition/js/appmsg_lh.js"
    assert set(revisits) == {logo, css, photo_b, script, "https://mmbiz.qpic.cn/mmbiz_png/LhBackground/640?wx_fmt=png"}
    first_recs = {u: h for t, u, h in records(first["local_path"]) if t == "response"}
    for uri, headers in revisits.items():
        assert headers.get_header("WARC-Refers-To-Target-URI") == uri
        assert headers.get_header("WARC-Refers-To-Date") == first_recs[uri].get_header("WARC-Date")
        assert headers.get_header("WARC-Payload-Digest") == first_recs[uri].get_header("WARC-Payload-Digest")
    for path in (first["local_path"], second["local_path"]):
        done = subprocess.run([str(WARCIO), "check", "-v", path], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    async with store.engine.connect() as conn:
        stored = {r.url: r.warc_path for r in (await conn.execute(select(archive_resources))).all()}
    assert stored[logo] == first["local_path"]
    # the readable copy is whole anyway: it never depends on another capture
    copy = BeautifulSoup(Path(second["archive_url"]).read_text("utf-8"), "lxml")
    assert copy.find("img", attrs={"data-lh-src": logo})["src"].startswith("data:image/png;base64,")
    # the first WARC is gone: no later revisit may point at it (its resources are written in
    # full again: by the next run's recapture of the first article, which is queued again)
    Path(first["local_path"]).unlink()
    web.page("/s/third", wechat_article(3, photos=()))
    await add_link(store, "https://mp.weixin.qq.com/s/third", at_risk=True)
    ft.advance(60)
    await archive_once(store, settings, ft)
    full = {(u, h.get_header("WARC-Date")) for p in (tmp_path / "archive").rglob("*.warc.gz")
            for t, u, h in records(str(p)) if t == "response"}
    third = (await snaps(store))[-1]
    pointers = {(h.get_header("WARC-Refers-To-Target-URI"), h.get_header("WARC-Refers-To-Date"))
                for t, u, h in records(third["local_path"]) if t == "revisit"}
    assert pointers and pointers <= full, pointers - full


def test_fidelity_sees_a_body_left_hidden_and_lost_pictures():
    """Measured on the written file: a body still hidden reads as no text; a picture without
    a data: URI is lost."""
    from checker.archive.fidelity import measure
    live = soup('<div id="js_content" style="visibility: hidden; opacity: 0">' + "正文" * 50 +
                '<img data-src="https://mmbiz.qpic.cn/a/640"></div>')
    hidden_copy = ('<div id="js_content" style="visibility: hidden; opacity: 0">' + "正文" * 50 +
                   '<img data-lh-src="https://mmbiz.qpic.cn/a/640" src="data:image/png;base64,iVBOR"></div>')
    f = measure(live, hidden_copy, 10)
    assert (f.text_chars, f.live_text_chars, f.verdict) == (0, 100, "failed")
    shown = hidden_copy.replace(' style="visibility: hidden; opacity: 0"', "")
    assert measure(live, shown, 10).verdict == "ok"
    lost = shown.replace(' src="data:image/png;base64,iVBOR"', ' alt="[picture not kept]"')
    f = measure(live, lost, 10)
    assert (f.pictures_found, f.pictures_kept, f.verdict, f.lost_pictures) == (1, 0, "partial", 1)
    bg = '<div id="js_content">' + "正文" * 50 + '<section data-lh-bg="https://x/a.png https://x/b.png" ' \
         'style="background:url(data:image/png;base64,AA), url(&quot;data:,&quot;)"></section></div>'
    f = measure(live, bg, 10)
    assert (f.pictures_found, f.pictures_kept) == (2, 1)


async def test_resources_get_the_ssrf_guard_and_the_per_host_pace(archive_store, web, web_settings, tmp_path):
    """A page pointing its pictures at private addresses gets nothing from them; pictures on one
    host are fetched no faster than check.per_host_interval, as checks are."""
    import time as _time
    store, ft = archive_store, FakeTime()
    starts: list[float] = []

    async def timed(request: aioweb.Request) -> aioweb.Response:
        starts.append(_time.monotonic())
        return aioweb.Response(body=png(2, 2, (9, 9, 9)), content_type="image/png")
    for i in range(4):
        web.route(f"/pace/{i}.png", timed)
    web.page("/private.png", png(2, 2, (1, 1, 1)), content_type="image/png")
    web.page("/p/ssrf.html", "<p>text</p>" + "".join(f'<img src="/pace/{i}.png">' for i in range(4)) +
             f'<img src="http://127.0.0.1:{web.http_port}/private.png">'
             '<img src="http://169.254.169.254/latest/meta-data/x.png">')
    await add_link(store, "https://blog.example.com/p/ssrf.html", at_risk=True)
    settings = local_settings(web_settings, tmp_path).with_overrides({"check.per_host_interval": 0.3})
    summary = await archive_once(store, settings, ft)
    assert summary.outcomes == {"retry": 1}, summary          # two pictures lost: retried later
    assert web.hits["/private.png"] == 0
    [row] = await snaps(store)
    assert (row["pictures_found"], row["pictures_kept"]) == (6, 4)
    assert "127.0.0.1" in row["fidelity_note"] and "169.254.169.254" in row["fidelity_note"]
    # 4 starts 0.3 s apart span 0.9 s at the client; arrival at a busy server may bunch
    # them up a little, never by much
    assert len(starts) == 4 and starts[-1] - starts[0] >= 0.6, starts
