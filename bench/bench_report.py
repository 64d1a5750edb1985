"""Benchmark the report: 25,000 links with 10 runs of history in a fresh SQLite database.

Measures build_report + render("html") time (target < 3 s), the HTML size (< 8 MB)
and the time until headless Chromium shows the table (< 2 s).

Run:  .venv/bin/python bench/bench_report.py [--links 25000] [--runs 10] [--out bench/out]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checker.report import build_report, render, write_report  # noqa: E402
from checker.store.schema import metadata  # noqa: E402

STATUSES = ["ok"] * 14 + ["redirect"] * 2 + ["broken", "soft404", "timeout", "unreachable", "blocked", "excluded"]
HEALTH = {"ok": "alive", "redirect": "alive", "blocked": "unknown", "excluded": "unknown"}
HOSTS = ["mp.weixin.qq.com", "zhuanlan.zhihu.com", "www.zhihu.com", "github.com", "blog.csdn.net",
         "www.jianshu.com", "arxiv.org", "en.wikipedia.org"] + [f"blog{i}.example.cn" for i in range(400)]
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-default-apps",
                 "--no-pings", "--disable-domain-reliability",
                 # Every host name resolves to "not found" without asking DNS: the report is a file://
                 # page, and nothing may leave the machine (Chromium otherwise looks up Google's hosts).
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost"]


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite DateTime storage format


def fill(path: Path, n_links: int, n_runs: int, seed: int = 7) -> None:
    """Create the schema and bulk-insert links, notes, occurrences, runs, checks, snapshots."""
    create_engine(f"sqlite:///{path}").dispose()
    sync = create_engine(f"sqlite:///{path}")
    metadata.create_all(sync)
    sync.dispose()
    rnd = random.Random(seed)
    db = sqlite3.connect(path)
    n_notes = max(1, n_links // 12)
    db.executemany("INSERT INTO notes (id, path, sha256, mtime, size, seen_at) VALUES (?,?,?,?,?,?)",
                   [(i + 1, f"_posts/2023-{i % 12 + 1:02d}-{i:05d}-读书笔记.md", "0" * 64, 0.0, 1, _ts(T0))
                    for i in range(n_notes)])
    run_times = [T0 + timedelta(days=7 * r) for r in range(n_runs)]
    links, occ, checks, snaps = [], [], [], []
    for i in range(n_links):
        host = rnd.choice(HOSTS)
        url = f"https://{host}/p/{i}/{uuid.UUID(int=rnd.getrandbits(128)).hex[:12]}"
        status = rnd.choice(STATUSES)
        health = HEALTH.get(status) or rnd.choice(["suspect", "dead"])
        failing = health in ("suspect", "dead")
        last = run_times[-1] + timedelta(seconds=i % 3600)
        links.append((i + 1, url, url, host, 1, int("weixin" in host or "zhihu" in host), status, health,
                      200 if status in ("ok", "redirect", "soft404") else 404 if status == "broken" else None,
                      url + "/final" if status == "redirect" else None,
                      f"第{i}篇：关于链接健康与笔记归档的一些想法 — {host}",
                      "HTTP 404 Not Found" if status == "broken" else None, rnd.randint(20, 900), _ts(last),
                      _ts(run_times[rnd.randrange(n_runs)]) if failing else None, _ts(T0)))
        for k in range(rnd.choice((1, 1, 1, 2, 3))):
            occ.append((i + 1, rnd.randrange(n_notes) + 1, rnd.randint(1, 400), k + 1, "link", url))
        for r, at in enumerate(run_times):
            st = status if r >= n_runs - 2 else "ok"
            checks.append((str(uuid.UUID(int=rnd.getrandbits(128))), i + 1, r + 1, _ts(at + timedelta(seconds=i % 3600)), st))
        if failing or rnd.random() < 0.05:
            snaps.append((i + 1, "wayback", f"https://web.archive.org/web/2023/{url}", _ts(T0), 200, _ts(T0)))
    db.executemany("INSERT INTO links (id, url, display_url, host, active, at_risk, status, health, http_status,"
                   " final_url, title, error, latency_ms, checked_at, first_failing_at, created_at, fail_streak)"
                   " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0)", links)
    db.executemany("INSERT OR IGNORE INTO occurrences (link_id, note_id, line, col, kind, written, in_code)"
                   " VALUES (?,?,?,?,?,?,0)", occ)
    db.executemany("INSERT INTO runs (id, kind, state, started_at, finished_at, notes_scanned, notes_skipped,"
                   " links_total, links_checked, counts) VALUES (?,?,?,?,?,0,0,?,?,?)",
                   [(r + 1, "audit", "done", _ts(at), _ts(at + timedelta(hours=1)), n_links, n_links,
                     json.dumps({"status": {"ok": n_links - r * 300, "broken": r * 300},
                                 "health": {"alive": n_links - r * 400, "suspect": r * 250, "dead": r * 150}}))
                    for r, at in enumerate(run_times)])
    db.executemany("INSERT INTO checks (probe_id, link_id, run_id, checked_at, status, attempts)"
                   " VALUES (?,?,?,?,?,1)", checks)
    db.executemany("INSERT INTO snapshots (link_id, service, archive_url, captured_at, http_status, created_at)"
                   " VALUES (?,?,?,?,?,?)", snaps)
    db.commit()
    db.close()


async def build_and_render(path: Path, out: Path) -> tuple[float, float, float, Path]:
    """Time build_report and render; write the HTML."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    t0 = time.perf_counter()
    model = await build_report(engine)
    t1 = time.perf_counter()
    html = render(model, "html")
    t2 = time.perf_counter()
    await engine.dispose()
    target = out / "report.html"
    write_report(model, "html", target)
    for fmt, ext in (("json", "json"), ("markdown", "md"), ("csv", "csv")):
        write_report(model, fmt, out / f"report.{ext}")
    return t1 - t0, t2 - t1, len(html.encode("utf-8")) / 1e6, target


async def browser_ready(report: Path, screenshot: Path) -> float:
    """Seconds from navigation until the table has rows, in headless Chromium."""
    from playwright.async_api import async_playwright
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        t0 = time.perf_counter()
        await page.goto(report.resolve().as_uri())
        await page.wait_for_selector("#links-body tr td .badge")
        elapsed = time.perf_counter() - t0
        t1 = time.perf_counter()
        await page.fill("#q", "weixin")
        total = await page.inner_text("#match-count")
        await page.wait_for_function(f"document.getElementById('match-count').textContent !== '{total}'")
        search = time.perf_counter() - t1
        print(f"search typed+filtered: {search:.3f} s")
        await page.screenshot(path=str(screenshot))
        await browser.close()
        return elapsed


def main() -> None:
    """Fill, build, render, open; print the numbers against the targets."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--links", type=int, default=25_000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    db = args.out / "bench_report.db"
    db.unlink(missing_ok=True)
    t = time.perf_counter()
    fill(db, args.links, args.runs)
    print(f"filled {args.links} links x {args.runs} runs in {time.perf_counter() - t:.1f} s")
    build_s, render_s, size_mb, report = asyncio.run(build_and_render(db, args.out))
    print(f"build_report: {build_s:.2f} s, render html: {render_s:.2f} s, "
          f"total {build_s + render_s:.2f} s (target < 3 s)")
    print(f"html size: {size_mb:.2f} MB (target < 8 MB)")
    ready = asyncio.run(browser_ready(report, args.out / "bench_report.png"))
    print(f"chromium table shown: {ready:.2f} s (target < 2 s)")


if __name__ == "__main__":
    main()
