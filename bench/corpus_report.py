"""Audit the real corpus against a simulated web on loopback, then screenshot the report.

Run::

    .venv/bin/python bench/corpus_report.py [--notes ../shared/corpus/notes] [--out bench/out]

Every host of the corpus is sent (``--connect-to``) to one local server that answers like
the real web would, deterministically per URL: most pages live with a Chinese title;
some WeChat articles deleted (200 + ``.weui-msg``) or behind the verification page;
Zhihu answering 403 to robots or "deleted"; elsewhere 404s, 500s, permanent redirects
and hangs. It runs two audits (the second after some pages "died", so the report has
history and changes), writes the HTML/JSON/Markdown/CSV reports, prints the counts and
timings, and saves desktop and phone screenshots of the HTML report taken in headless
Chromium (Debian's /usr/bin/chromium, driven by Playwright). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import zlib
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))

from bench_daemon import SimulatedWeb  # noqa: E402
from bench_report import CHROMIUM_ARGS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DELETED = ("<html><head><title></title></head><body><div class=\"weui-msg\"><div class=\"weui-msg__text-area\">"
           "<h2 class=\"weui-msg__title\">{msg}</h2></div></div></body></html>")
LIVE = ("<html><head><title>{title}</title><script>var msg_title = '{title}';</script></head>"
        "<body><div id=\"js_article\"><div id=\"js_content\"><p>{body}</p></div></div></body></html>")


class CorpusWeb(SimulatedWeb):
    """Answers per URL, from a hash of it; ``generation`` 1 lets some more pages die."""

    generation = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        host = (request.host or "").split(":")[0].lower()
        url = f"{host}{request.path_qs}"
        roll = zlib.crc32(url.encode()) % 100
        if self.generation and zlib.crc32(url.encode(), 7) % 100 < 3:
            roll = 0                                   # died since the first audit
        await asyncio.sleep((5 + zlib.crc32(host.encode()) % 30) / 1000)
        title = f"{host.split('.')[-2] if '.' in host else host} 的文章 {zlib.crc32(url.encode()) % 9973}"
        if request.path.startswith("/mp/wappoc_appmsgcaptcha"):
            return web.Response(text="<title>环境异常</title><p>环境异常 去验证</p>", content_type="text/html")
        if request.path == "/moved-here":
            return web.Response(text=f"<title>{host} 新地址</title>", content_type="text/html")
        if host == "mp.weixin.qq.com":
            if roll < 6:
                msg = ("该内容已被发布者删除", "此内容因违规无法查看", "此帐号已自主注销")[roll % 3]
                return web.Response(text=DELETED.format(msg=msg), content_type="text/html")
            if roll == 6:
                raise web.HTTPFound("/mp/wappoc_appmsgcaptcha?poc_token=x")
            return web.Response(text=LIVE.format(title=title, body="正文" * 200), content_type="text/html")
        if host.endswith("zhihu.com"):
            if roll < 12:
                return web.Response(status=403, text='{"error":{"code":40362}}', content_type="application/json")
            if roll < 15:
                return web.Response(text="<title>知乎</title><p>你似乎来到了没有知识存在的荒原</p>",
                                    content_type="text/html")
        if roll < 4:
            return web.Response(status=404, text="<title>404 Not Found</title>", content_type="text/html")
        if roll == 4:
            return web.Response(status=500, text="oops")
        if roll == 5:
            raise web.HTTPMovedPermanently("/moved-here")
        if roll == 6 and host not in ("github.com",):
            await asyncio.sleep(30)                    # past the audit's timeout
        return web.Response(text=f"<html><head><title>{title}</title></head><body>x</body></html>",
                            content_type="text/html")


async def audit(notes: Path, work: Path, sim: CorpusWeb, args: argparse.Namespace) -> tuple[int, float, str]:
    """Run `linkhealth audit` as a child; returns (exit code, seconds, stderr)."""
    ca = work / "ca.pem"
    sim.ca.cert_pem.write_to_path(str(ca))
    cmd = [sys.executable, "-m", "checker.cli", "audit", str(notes), "--format", "json", "-o", "audit.json",
           "--connect-to", f":80:127.0.0.1:{sim.http_port}", "--connect-to", f":443:127.0.0.1:{sim.https_port}",
           "--ca-file", str(ca), "--per-host", str(args.per_host), "--timeout", "2", "--retries", "1",
           "--fail-on", "never"]
    env = {**os.environ, "LINKHEALTH_CHECK_BACKOFF_BASE": "0.05", "PYTHONPATH": str(REPO)}
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=work, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    return proc.returncode, time.monotonic() - start, err.decode()


def sibling_probes(db: Path) -> list:
    """The random-sibling probe's extra requests of each audit (runs.counts), oldest first."""
    import sqlite3
    rows = sqlite3.connect(db).execute("select counts from runs where kind = 'audit' order by id").fetchall()
    return [json.loads(row[0] or "{}").get("sibling_probes") for row in rows]


async def screenshots(report: Path, out: Path) -> dict:
    """Desktop and phone screenshots; returns what the page shows and how fast."""
    from playwright.async_api import async_playwright
    shown = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for name, viewport in (("desktop", {"width": 1440, "height": 1000}), ("phone", {"width": 390, "height": 844})):
            page = await browser.new_page(viewport=viewport, color_scheme="dark" if name == "phone" else "light")
            start = time.monotonic()
            await page.goto(report.as_uri())
            await page.wait_for_selector("table tbody tr")
            shown[f"{name}_ready_s"] = round(time.monotonic() - start, 2)
            await page.screenshot(path=str(out / f"corpus-report-{name}.png"), full_page=name == "desktop")
            await page.close()
        await browser.close()
    return shown


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", default=str(REPO.parent / "shared" / "corpus" / "notes"))
    parser.add_argument("--out", default=str(REPO / "bench" / "out"))
    parser.add_argument("--per-host", type=int, default=8)
    args = parser.parse_args()
    out = Path(args.out)
    work = out / "corpus-work"
    work.mkdir(parents=True, exist_ok=True)
    for stale in (work / ".linkhealth").glob("linkhealth.db*"):
        stale.unlink()
    sim = await CorpusWeb(scale=1.0).start()
    try:
        for generation in (0, 1):
            sim.generation = generation
            code, seconds, err = await audit(Path(args.notes).resolve(), work, sim, args)
            if code != 0:
                raise SystemExit(f"audit exited {code}: {err[-2000:]}")
            print(f"audit {generation + 1}: {seconds:.1f} s, {sim.requests} requests so far")
    finally:
        await sim.close()
    summary = json.loads((work / "audit.json").read_text(encoding="utf-8"))["summary"]
    print("summary:", json.dumps(summary, ensure_ascii=False))
    print("random-sibling probe, extra requests per audit:", sibling_probes(work / ".linkhealth" / "linkhealth.db"))
    report = work / ".linkhealth" / "report.html"
    print(f"report: {report} ({report.stat().st_size / 1e6:.2f} MB)")
    print("browser:", await screenshots(report, out))
    print(f"screenshots: {out}/corpus-report-desktop.png, {out}/corpus-report-phone.png")


if __name__ == "__main__":
    asyncio.run(main())
