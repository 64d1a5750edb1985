"""Benchmark of ``linkhealth audit`` against a simulated web on loopback.

Run::

    .venv/bin/python bench/bench_audit.py                 # 2,000 URLs, 60 hosts
    .venv/bin/python bench/bench_audit.py --urls 4000 --hosts 120 --per-host 4

Writes notes citing the simulated URLs (bench/simweb.py) into a temporary folder,
runs ``linkhealth audit NOTES --connect-to ::127.0.0.1:PORT --ca-file CA --format json``
as a child process, and prints wall time, CPU time (user+sys of the child), peak RSS
(of the child) and the politeness bound: for each host the sum of its latencies
divided by the per-host limit, the largest over hosts. Targets (issue 2): wall time
<= 1.5x the bound, peak RSS < 200 MB. The JSON output is checked against the plan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from simweb import Plan, make_plan, serve, tls_setup  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def write_notes(plan: Plan, folder: Path, per_note: int = 50) -> int:
    """Markdown notes citing every planned URL (bare, in links and in lists); returns the count."""
    folder.mkdir(parents=True, exist_ok=True)
    notes = 0
    for start in range(0, len(plan.urls), per_note):
        notes += 1
        lines = [f"# 笔记 {notes}", "", "读书笔记，引用了下面这些文章：", ""]
        for i, url in enumerate(plan.urls[start:start + per_note]):
            if i % 3 == 0:
                lines.append(f"- [参考文章 {i}]({url})")
            elif i % 3 == 1:
                lines.append(f"- 原文：{url}")
            else:
                lines.append(f"见 <{url}> 的讨论。")
        (folder / f"2024-01-{notes:03d}-note.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return notes


def expected_statuses(plan: Plan) -> Counter[str]:
    """What the audit should report for the plan."""
    words = {"ok": "ok", "missing": "broken", "moved": "redirect"}
    return Counter(words[plan.kind["/" + url.split("/", 3)[3]]] for url in plan.urls)


async def run_audit(args: argparse.Namespace, work: Path, port: int, ca: Path) -> tuple[int, float, Path]:
    """Run the audit child; returns (exit code, wall seconds, output path)."""
    out = work / "audit.json"
    command = [
        str(ROOT / ".venv/bin/linkhealth"), "audit", str(work / "notes"),
        "--connect-to", f"::127.0.0.1:{port}", "--ca-file", str(ca),
        "--per-host", str(args.per_host), "--concurrency", str(args.concurrency),
        "--db", f"sqlite:///{work / 'bench.db'}", "--format", "json", "-o", str(out),
        "--fail-on", "never",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    child = await asyncio.create_subprocess_exec(*command, cwd=str(work), env=env,
                                                 stdout=asyncio.subprocess.DEVNULL,
                                                 stderr=asyncio.subprocess.PIPE)
    _, stderr = await child.communicate()
    wall = time.perf_counter() - start
    if child.returncode not in (0, 1):
        print(stderr.decode("utf-8", "replace")[-3000:], file=sys.stderr)
    return child.returncode or 0, wall, out


async def main(args: argparse.Namespace) -> int:
    plan = make_plan(args.urls, args.hosts, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="lh-bench-") as tmp:
        work = Path(tmp)
        notes = write_notes(plan, work / "notes")
        context, ca = tls_setup(work, plan)
        runner, port = await serve(plan, context)
        try:
            code, wall, out = await run_audit(args, work, port, ca)
        finally:
            await runner.cleanup()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        report = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {"links": []}
    bound, host = plan.politeness_bound(args.per_host)
    cpu = usage.ru_utime + usage.ru_stime
    rss_mb = usage.ru_maxrss / 1024          # Linux: kilobytes
    got = Counter(link["status"] for link in report["links"])
    want = expected_statuses(plan)
    sizes = sorted(plan.hosts().values(), reverse=True)
    print(f"plan: {len(plan.urls)} URLs, {len(plan.latency)} hosts, {notes} notes; "
          f"largest hosts {sizes[:5]}; per-host {args.per_host}, concurrency {args.concurrency}")
    print(f"exit code      {code}")
    print(f"wall time      {wall:8.2f} s")
    print(f"cpu time       {cpu:8.2f} s (user {usage.ru_utime:.2f} + sys {usage.ru_stime:.2f})")
    print(f"peak RSS       {rss_mb:8.1f} MB")
    print(f"bound          {bound:8.2f} s ({host}: sum of latencies / {args.per_host})")
    print(f"wall / bound   {wall / bound:8.2f}   (target <= 1.5)   RSS target < 200 MB")
    print(f"statuses       {dict(sorted(got.items()))}")
    if got != want:
        print(f"MISMATCH: expected {dict(sorted(want.items()))}", file=sys.stderr)
        return 1
    return 0 if wall <= 1.5 * bound and rss_mb < 200 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Benchmark linkhealth audit on a simulated web.")
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=60)
    parser.add_argument("--per-host", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=7)
    sys.exit(asyncio.run(main(parser.parse_args())))
