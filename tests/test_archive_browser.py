"""Local copies in a real headless Chromium with every request blocked (issue 11).

Three page shapes from the scripted web (tests/archive_pages.py): a WeChat article, a
CSDN-style post and a hostile page. Each is archived by the local backend, then its
readable copy is opened from file:// with Playwright intercepting every request (each
attempt is counted, then aborted) and recording CSP violations: the body text must be
visible (computed style, a box), every picture drawn (naturalWidth > 0, at its real size;
backgrounds as decoded data: pictures), no request attempted, no navigation away.
Screenshots go to ``$LINKHEALTH_TEST_SHOTS`` when set (for a human to look at).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.async_api import async_playwright
from warcio.archiveiterator import ArchiveIterator

from archive_pages import (CSDN_TEXT, CSDN_URL, HOSTILE_URL, NOT_ALLOWED, PICTURES, WECHAT_TEXT, WECHAT_URL,
                           install)
from fakewayback import archive_db_url, archive_store  # noqa: F401  (fixtures are used by name)

from checker.archive.base import ArchiveJob
from checker.archive.local import LocalBackend, http_fetcher
from checker.archive.policy import Action
from checker.http import create_session
from test_report_browser import ARGS, chromium_path

pytestmark = pytest.mark.browser

WARCIO = Path(sys.executable).with_name("warcio")

# Records every CSP violation the page would cause (Playwright's init scripts run whatever
# the page's CSP says, before the page's own content).
WATCH = """window.__csp = []; window.__navs = 0;
document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"""


async def archive(web, web_settings, tmp_path, url):
    """Archive one page with the local backend; returns the snapshot record."""
    install(web)
    settings = web_settings().with_overrides({"archive.services": ("local",),
                                              "archive.local_dir": str(tmp_path / "archive")})
    async with create_session(settings) as session:
        backend = LocalBackend(settings, http_fetcher(session))
        backend.prepare()
        result = await backend.run(ArchiveJob(1, 1, url, "local", Action.SAVE, "pending"))
    assert result.snapshot is not None, result
    done = subprocess.run([str(WARCIO), "check", "-v", result.snapshot.local_path], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return result


def warc_responses(path: str) -> dict[str, tuple[bytes, object]]:
    """URL -> (payload, request headers) of the response records of a WARC."""
    out, requests = {}, {}
    with open(path, "rb") as fh:
        for rec in ArchiveIterator(fh):
            uri = rec.rec_headers.get_header("WARC-Target-URI")
            if rec.rec_type == "response":
                out[uri] = rec.content_stream().read()
            elif rec.rec_type == "request":
                requests[uri] = rec.http_headers
    return {u: (body, requests.get(u)) for u, body in out.items()}


class Opened:
    """A copy opened in Chromium: the page, blocked request attempts, navigations."""

    def __init__(self, page, attempts, requests, navigations):
        self.page, self.attempts, self.requests, self.navigations = page, attempts, requests, navigations

    async def no_requests(self, copy_uri: str) -> None:
        """Nothing was fetched, nothing even tried (intercepted or blocked by CSP), no navigation."""
        assert self.attempts == [], self.attempts
        assert [u for u in self.requests if not u.startswith(("data:", "file:"))] == []
        assert await self.page.evaluate("window.__csp") == []
        assert self.page.url == copy_uri and set(self.navigations) <= {copy_uri}, self.navigations

    async def visible(self, selector: str, text: str) -> None:
        """The element shows ``text``: visible style, full opacity, a box of non-zero size."""
        state = await self.page.evaluate("""sel => { const e = document.querySelector(sel);
            const s = getComputedStyle(e), r = e.getBoundingClientRect();
            return {vis: s.visibility, op: s.opacity, disp: s.display, w: r.width, h: r.height, text: e.innerText}; }""",
                                         selector)
        assert state["vis"] == "visible" and state["op"] == "1" and state["disp"] != "none", state
        assert state["w"] > 0 and state["h"] > 0, state
        assert text in state["text"]

    async def pictures(self) -> dict[str, list[int]]:
        """Original URL -> [naturalWidth, naturalHeight] of every picture of the copy, once all loaded."""
        await self.page.wait_for_function("[...document.images].every(i => i.complete)")
        return await self.page.evaluate("""Object.fromEntries([...document.querySelectorAll('img[data-lh-src]')]
            .map(i => [i.dataset.lhSrc, [i.naturalWidth, i.naturalHeight]]))""")

    async def background(self, selector: str) -> list[int]:
        """[width, height] of the picture the element's computed background-image draws."""
        return await self.page.evaluate("""async sel => {
            const bg = getComputedStyle(document.querySelector(sel)).backgroundImage;
            if (!bg.startsWith('url("data:image/')) return [0, 0, bg.slice(0, 60)];
            const img = new Image(); img.src = bg.slice(5, -2); await img.decode();
            return [img.naturalWidth, img.naturalHeight]; }""", selector)


async def open_copy(path: Path, shot: str, tmp_path: Path, check):
    """Open a copy with every request intercepted; run ``check(opened)``; screenshot it."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=ARGS)
        context = await browser.new_context(viewport={"width": 900, "height": 1000})
        attempts: list[str] = []

        async def block(route):
            if route.request.url == path.as_uri():
                await route.continue_()        # the copy itself, and nothing else
                return
            attempts.append(route.request.url)
            await route.abort()
        await context.route("**/*", block)
        await context.add_init_script(WATCH)
        page = await context.new_page()
        requests: list[str] = []
        navigations: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("framenavigated", lambda f: navigations.append(f.url) if f == page.main_frame else None)
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        await page.goto(path.as_uri())
        await page.wait_for_load_state("load")
        await page.wait_for_timeout(1500)      # past the hostile page's 1 s meta refresh
        opened = Opened(page, attempts, requests, navigations)
        await check(opened)
        assert dialogs == []
        target = tmp_path / f"{shot}.png"
        await page.screenshot(path=str(target), full_page=False)
        if os.environ.get("LINKHEALTH_TEST_SHOTS"):
            shutil.copy(target, Path(os.environ["LINKHEALTH_TEST_SHOTS"]) / target.name)
        await browser.close()


async def test_wechat_article_copy(web, web_settings, tmp_path):
    result = await archive(web, web_settings, tmp_path, WECHAT_URL)
    snap = result.snapshot
    responses = warc_responses(snap.local_path)
    # the hotlink-protected pictures are the real ones, fetched with the article as Referer
    for path in ("/mmbiz_jpg/LhPhotoA/640", "/mmbiz_jpg/LhPhotoB/640", "/mmbiz_png/LhBackground/640",
                 "/mmbiz_png/LhLogo/0"):
        fmt = "jpeg" if "jpg" in path else "png"
        body, request = responses[f"https://mmbiz.qpic.cn{path}?wx_fmt={fmt}"]
        assert body == PICTURES[path] and body != NOT_ALLOWED
        assert request.get_header("Referer") == WECHAT_URL
    assert "https://res.wx.qq.com/mmbizappmsg/zh_CN/htmledition/appmsg_lh.css" in responses
    # the page's script is kept for replay tools (never in the copy: see the checks below)
    assert "https://res.wx.qq.com/mmbizappmsg/zh_CN/htmledition/js/appmsg_lh.js" in responses
    f = snap.fidelity
    assert (f.pictures_found, f.pictures_kept, f.verdict) == (4, 4, "ok"), f
    assert f.text_chars >= f.live_text_chars > len(WECHAT_TEXT)
    copy = Path(snap.archive_url)

    async def check(o: Opened) -> None:
        await o.visible("#js_content", WECHAT_TEXT)
        pics = await o.pictures()
        assert pics == {"https://mmbiz.qpic.cn/mmbiz_jpg/LhPhotoA/640?wx_fmt=jpeg": [64, 48],
                        "https://mmbiz.qpic.cn/mmbiz_jpg/LhPhotoB/640?wx_fmt=jpeg": [48, 64],
                        "https://mmbiz.qpic.cn/mmbiz_png/LhLogo/0?wx_fmt=png": [24, 24]}, pics
        assert await o.background("#lh-bg") == [80, 40]
        header = await o.page.inner_text(".linkhealth-archived")
        for expected in (WECHAT_URL, "离线测试号", "2023-11-14", "离线测试文章 1", "all 4 kept"):
            assert expected in header, header
        assert await o.page.get_attribute("#js_content a", "href") == "https://mp.weixin.qq.com/s/Other_Article"
        await o.no_requests(copy.as_uri())
    await open_copy(copy, "wechat", tmp_path, check)


async def test_csdn_post_copy(web, web_settings, tmp_path):
    result = await archive(web, web_settings, tmp_path, CSDN_URL)
    snap = result.snapshot
    responses = warc_responses(snap.local_path)
    for url in ("https://csdnimg.cn/release/blogv2/dist/pc/css/fonts-lh.css",
                "https://csdnimg.cn/release/fonts/lh-test.ttf", "https://csdnimg.cn/release/img/header-bg.png",
                "https://img-blog.csdnimg.cn/img/photo-1280.png", "https://g.csdnimg.cn/static/logo/favicon32.ico"):
        assert url in responses, url
    assert "https://img-blog.csdnimg.cn/img/photo-320.png" not in responses   # srcset: the best only
    assert snap.fidelity.verdict == "ok", snap.fidelity
    copy = Path(snap.archive_url)

    async def check(o: Opened) -> None:
        await o.visible("#content_views", CSDN_TEXT)
        pics = await o.pictures()
        assert pics == {"https://img-blog.csdnimg.cn/img/photo-1280.png": [128, 96],
                        "https://img-blog.csdnimg.cn/img/lazy-a.png": [40, 40],
                        "https://img-blog.csdnimg.cn/img/pic.webp": [36, 36],
                        "https://img-blog.csdnimg.cn/img/native-lazy.png": [50, 20]}, pics
        assert await o.background("#lh-header-bg") == [60, 30]
        loaded = await o.page.evaluate("""async () => { await document.fonts.ready;
            return [...document.fonts].filter(f => f.family.replace(/"/g, '') === 'LhTestFont')
                .map(f => f.status); }""")
        assert loaded == ["loaded"], loaded
        assert await o.page.get_attribute("a:text('上一篇')", "href") == \
            "https://blog.csdn.net/lhtest/article/details/987654321"
        await o.no_requests(copy.as_uri())
    await open_copy(copy, "csdn", tmp_path, check)


async def test_hostile_page_copy(web, web_settings, tmp_path):
    result = await archive(web, web_settings, tmp_path, HOSTILE_URL)
    copy = Path(result.snapshot.archive_url)
    text = copy.read_text("utf-8")
    for gone in ("<script", "onload=", "onclick=", "onerror=", "http-equiv=\"refresh\"", "<base", "<iframe",
                 "<object", "javascript:", "evil.example/steal", "prefetch"):
        assert gone not in text, gone

    async def check(o: Opened) -> None:
        await o.visible("main", "Readable text of the hostile page stays readable.")
        assert await o.page.evaluate("window.__ran") is None
        await o.page.click("#send", no_wait_after=True)     # the form cannot submit anywhere
        await o.page.press("input[name=q]", "Enter", no_wait_after=True)
        await o.page.click("#js-link", no_wait_after=True)
        await o.page.wait_for_timeout(300)
        assert await o.page.get_attribute("#rel-link", "href") == "https://evil.example/other.html"
        assert await o.page.inner_text(".linkhealth-embed") == "[embedded content: https://evil.example/frame]"
        await o.no_requests(copy.as_uri())
    await open_copy(copy, "hostile", tmp_path, check)


async def test_report_served_by_the_daemon_links_the_copy_over_http(archive_store, web, web_settings, tmp_path):
    """Opened from the daemon (http://), the report's "local copy" link goes to /archive/...
    on the same server (a browser refuses file:// links there), and the copy opens."""
    from fakewayback import FakeTime, add_link

    from checker.archive import plan_archive, run_archive
    from checker.report import build_report, write_report
    from checker.web import Metrics, create_app, start_web
    store, ft = archive_store, FakeTime()
    install(web)
    await add_link(store, WECHAT_URL, at_risk=True)
    settings = web_settings().with_overrides({"archive.services": ("local",), "data_dir": str(tmp_path / "data")})
    await plan_archive(store, settings, ft.now(), environ={})
    assert (await run_archive(store, settings, now_fn=ft.now, sleep=ft.sleep, clock=ft.clock,
                              environ={})).outcomes == {"done": 1}
    write_report(await build_report(store, now=ft.now()), "html", settings.report_path)
    runner, port = await start_web(create_app(store, settings, metrics=Metrics(), state=lambda: "running"),
                                   "127.0.0.1", 0)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path(),
                                               args=[*ARGS[:-1], "--host-resolver-rules=MAP * ~NOTFOUND , "
                                                     "EXCLUDE localhost , EXCLUDE 127.0.0.1"])
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{port}/")
            await page.wait_for_selector("body[data-ready=true]")
            href = await page.get_attribute("a:text('local copy')", "href")
            assert href.startswith(f"http://127.0.0.1:{port}/archive/mp.weixin.qq.com/") and href.endswith(".html")
            response = await page.goto(href)
            assert response.status == 200 and "sandbox" in response.headers["content-security-policy"]
            assert WECHAT_TEXT in await page.inner_text("#js_content")
            await browser.close()
    finally:
        await runner.cleanup()
