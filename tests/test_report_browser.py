"""The HTML report in a real headless Chromium: counts, search, filters, no XSS.

Needs Debian's chromium at /usr/bin/chromium (``apt-get install -y chromium``); the
test fails, not skips, without it, so CI cannot pass silently.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright
from sqlalchemy import func, select

from checker.report import build_report, write_report
from checker.store.schema import links
from report_db import XSS_TITLE, fill_sample, sqlite_engine

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-default-apps",
        "--no-pings", "--disable-domain-reliability",
        # Every host name resolves to "not found" without asking DNS: the report is a file://
        # page, and nothing may leave the machine (Chromium otherwise looks up Google's hosts).
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost"]


def chromium_path() -> str:
    """The Chromium binary, or a failure that says how to install it."""
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not path:
        pytest.fail("Chromium not found at /usr/bin/chromium: install it with "
                    "`apt-get update && apt-get install -y chromium` (the browser test never skips)")
    return path


async def db_counts(engine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(links.c.status, func.count()).where(links.c.active.is_(True))
                                  .group_by(links.c.status))
        return {status: n for status, n in rows if status}


async def svg_texts(page: Page, selector: str) -> list[str]:
    """The text of each SVG element matching ``selector`` (inner_text is for HTML)."""
    return await page.evaluate("s => [...document.querySelectorAll(s)].map(t => t.textContent)", selector)


async def shown(page: Page, selector: str) -> str:
    return (await page.locator(selector).inner_text()).strip()


async def test_report_in_chromium(tmp_path: Path) -> None:
    executable = chromium_path()
    engine = await sqlite_engine(tmp_path / "r.db")
    await fill_sample(engine)
    expected = await db_counts(engine)
    report = write_report(await build_report(engine), "html", tmp_path / "report.html")
    await engine.dispose()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=ARGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        dialogs: list[str] = []
        errors: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(report.as_uri())
        await page.wait_for_selector("body[data-ready=true]")

        # Counts shown are the database's counts.
        for status, n in expected.items():
            assert await shown(page, f'[data-count-status="{status}"]') == str(n), status
        assert await shown(page, '[data-count="total"]') == str(sum(expected.values()) + 1)  # + unchecked
        assert await shown(page, "#match-count") == "11"
        assert await page.locator("#links-body tr").count() == 11

        # Typing in the search box filters the table.
        await page.fill("#q", "weixin")
        await page.wait_for_function("document.getElementById('match-count').textContent === '1'")
        assert await page.locator("#links-body tr").count() == 1
        assert "mp.weixin.qq.com" in await shown(page, "#links-body tr")
        await page.fill("#q", "")
        await page.wait_for_function("document.getElementById('match-count').textContent === '11'")

        # A status filter button narrows to that status.
        await page.click('.chip[data-status="broken"]')
        assert await page.get_attribute('.chip[data-status="broken"]', "aria-pressed") == "true"
        assert await shown(page, "#match-count") == str(expected["broken"])
        badges = await page.locator("#links-body tr td:first-child .badge.st-broken").count()
        assert badges == expected["broken"]
        await page.click('.chip[data-status="broken"]')

        # The hostile titles are text: no dialog, no injected element, no flag set.
        await page.fill("#q", "evil.example/xss")
        await page.wait_for_function("document.getElementById('match-count').textContent === '1'")
        assert await shown(page, "#links-body .title") == XSS_TITLE
        assert dialogs == [] and errors == []
        assert await page.evaluate("window.__xss === undefined")
        assert await page.locator("#injected").count() == 0
        assert await page.locator("#links-body script, #links-body img").count() == 0

        # Notes view: the note with most failures first; choosing it scopes the links table.
        await page.fill("#q", "")
        await page.click("#tab-notes")
        first_note = page.locator("#notes-body tr button").first
        assert await first_note.inner_text() == "notes/a.md"
        await first_note.click()
        await page.wait_for_function("document.getElementById('match-count').textContent === '3'")
        assert await page.is_visible("#scope")

        # Keyboard: every control has a label, and arrow keys move between tabs.
        unlabeled = await page.evaluate(
            "[...document.querySelectorAll('input, select')].filter(e => !e.labels.length).length")
        assert unlabeled == 0
        await page.focus("#tab-links")
        await page.keyboard.press("ArrowRight")
        assert await page.get_attribute("#tab-notes", "aria-selected") == "true"

        shot = tmp_path / "report.png"
        await page.click("#tab-links")
        await page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        await browser.close()


async def test_empty_report_in_chromium(tmp_path: Path) -> None:
    executable = chromium_path()
    engine = await sqlite_engine(tmp_path / "e.db")
    report = write_report(await build_report(engine), "html", tmp_path / "empty.html")
    await engine.dispose()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=ARGS)
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(report.as_uri())
        assert "Nothing to report yet" in await page.inner_text("#empty")
        await page.screenshot(path=str(tmp_path / "empty.png"))
        assert errors == []
        await browser.close()


async def test_script_urls_never_become_links(tmp_path: Path) -> None:
    """A note's link written "java<TAB>script:..." is shown as text: the browser would read it
    as javascript: (it drops tabs), so the report must judge the URL as the browser parses it."""
    from report_db import Seeder
    executable = chromium_path()
    engine = await sqlite_engine(tmp_path / "j.db")
    async with engine.begin() as conn:
        s = Seeder(conn)
        for line, url in enumerate(("java\tscript:window.__xss=3", "\x01javascript:window.__xss=4",
                                    "https://fine.example/x"), start=1):
            await s.link(url, status="excluded", health="unknown", cites=[("notes/j.md", line)])
    report = write_report(await build_report(engine), "html", tmp_path / "j.html")
    await engine.dispose()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=ARGS)
        page = await browser.new_page()
        await page.goto(report.as_uri())
        await page.wait_for_selector("body[data-ready=true]")
        hrefs = await page.evaluate("[...document.querySelectorAll('#links-body a')].map(a => a.href)")
        assert hrefs == ["https://fine.example/x"]
        # Clicking the URLs shown as text runs nothing (the https link is not followed:
        # the test never navigates away from the file).
        for link in await page.locator("#links-body span.u").all():
            await link.click()
        assert await page.evaluate("window.__xss === undefined")
        await browser.close()


ROOT = "/home/user/blog/_posts"


async def _trend_report(tmp_path: Path, runs: int) -> Path:
    """A report of notes outside the working directory (absolute paths) with ``runs`` runs."""
    from datetime import timedelta

    from report_db import T0, Seeder, counts
    engine = await sqlite_engine(tmp_path / f"t{runs}.db")
    async with engine.begin() as conn:
        s = Seeder(conn)
        for i in range(runs):
            await s.run(T0 + timedelta(days=3 * i), counts({"ok": 3}, {"alive": 40 - i, "suspect": 5 + i,
                                                                       "dead": i, "unknown": 2}))
        await s.note(f"{ROOT}/2016/no-links.md")
        await s.link("https://a.example/x", status="broken", health="suspect", http_status=404,
                     history=[("ok", T0), ("broken", T0 + timedelta(days=3))],
                     cites=[(f"{ROOT}/2016/with-links.md", 7)])
    report = write_report(await build_report(engine), "html", tmp_path / f"t{runs}.html")
    await engine.dispose()
    return report


async def test_trend_is_readable_at_a_glance(tmp_path: Path) -> None:
    """Dates on the axis, link counts on the other, a legend, local time beside UTC,
    note paths relative to the notes' folder, a legend for the history squares."""
    executable = chromium_path()
    many, one = await _trend_report(tmp_path, 6), await _trend_report(tmp_path, 1)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Asia/Shanghai")
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(many.as_uri())
        await page.wait_for_selector("body[data-ready=true]")

        dates = await svg_texts(page, "svg.trend text.date")
        assert dates[0] == "May 1" and dates[-1] == "May 16" and 2 <= len(dates) <= 5
        for width in (1280, 390):                                  # desktop and phone
            await page.set_viewport_size({"width": width, "height": 900})
            boxes = await page.evaluate("[...document.querySelectorAll('svg.trend text.axis')]"
                                        ".map(t => { const b = t.getBoundingClientRect(); "
                                        "return [b.left, b.right, b.top, b.bottom]; })")
            card = await page.evaluate("(() => { const b = document.querySelector('svg.trend')"
                                       ".closest('section').getBoundingClientRect(); return [b.left, b.right]; })()")
            dates = [b for b in boxes[3:]]
            assert all(a[1] < b[0] for a, b in zip(dates, dates[1:])), (width, dates)   # no label touches another
            assert all(card[0] <= b[0] and b[1] <= card[1] for b in boxes), (width, boxes, card)   # none cut off
        await page.set_viewport_size({"width": 1280, "height": 900})
        assert await svg_texts(page, "svg.trend text.axis:not(.date)") == ["0", "26", "52"]
        assert await page.locator("svg.trend polygon").count() == 4
        assert await page.locator("svg.trend g.run title").count() == 6
        legend = await page.locator(".trend-legend li").all_inner_texts()
        assert [item.split()[0] for item in legend] == ["dead", "suspect", "unknown", "alive"]
        assert legend[0] == "dead 5"                               # the latest run's counts

        # Times: UTC as written, the reader's local time beside it (UTC+8 here).
        meta = await shown(page, "header .meta")
        assert "last check 2024-05-04 08:00 UTC (16:00 local time)" in meta
        changes = await shown(page, "#h-changes + p")
        assert changes == "What changed in the latest run, started 2024-05-16 08:00 UTC (16:00 local time):"

        # Note paths relative to the folder all notes share, named once in the header.
        assert await shown(page, "#notes-root") == f"{ROOT}/2016"
        assert await shown(page, "#links-body td.cites") == "with-links.md:7"
        legend_text = await shown(page, "#hist-legend")
        assert "oldest first" in legend_text and all(s in legend_text for s in ("ok", "broken", "soft404"))
        await page.click("#tab-notes")
        assert await shown(page, "#tab-notes") == "Notes 2"
        assert "2 notes read, 1 of them citing no link" in await shown(page, "#notes-explained")
        await page.screenshot(path=str(tmp_path / "trend.png"), full_page=True)

        # One run is one column, not a band cut in two halves.
        await page.goto(one.as_uri())
        await page.wait_for_selector("body[data-ready=true]")
        assert await page.locator("svg.trend polygon").count() == 0
        assert await page.locator("svg.trend rect[class^='h-']").count() == 3     # alive, unknown, suspect
        assert await svg_texts(page, "svg.trend text.date") == ["May 1"]
        assert "only run so far" in await shown(page, "#h-trend ~ p.small")
        assert errors == []
        await browser.close()
