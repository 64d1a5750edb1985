"""What each CLI command does, apart from argument parsing: open the store, run the
pipeline, print to the terminal (rich), return an exit code. No click here."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn
from rich.table import Table

from .models import CheckResult
from .pipeline import AuditOutcome, run_audit
from .settings import Settings

__all__ = ["run_audit_command", "run_report_command", "run_archive_command", "run_archive_show",
           "run_fix_command", "write_stdout"]

EXIT_OK, EXIT_FAILING = 0, 1


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _t(value: object) -> str:
    """Text from notes or remote servers, safe to print: no control characters (a hostile
    title or error could carry terminal escape sequences), and rich markup escaped."""
    return escape(_CONTROL.sub("\ufffd", str(value)))


def write_stdout(text: str) -> None:
    """Structured output (JSON, CSV, Markdown, HTML, JSONL) goes out as UTF-8 whatever the
    terminal's locale says, so that Chinese titles survive a pipe or a redirect."""
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(text)
        return
    buffer.write(text.encode("utf-8"))
    buffer.flush()


class _Bar:
    """The rich progress bar on stderr, shown only when stderr is a terminal."""

    def __init__(self, console: Console, label: str) -> None:
        self.console = console
        self.label = label
        self.progress: Progress | None = None
        self.task = None
        self._views = None            # the probe engine's per-host views (checker.schedule)
        self._shown = 0.0

    def watch(self, views) -> None:
        """Show the busiest hosts from ``views()`` (a list of LaneView) under the bar."""
        self._views = views

    def start(self, total: int) -> None:
        if not self.console.is_terminal:
            return
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=self.console,
                                 transient=True)
        self.progress.start()
        self.task = self.progress.add_task(self.label, total=total)

    def advance(self, result: CheckResult | None = None) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)
            now = time.monotonic()
            if self._views is not None and now - self._shown >= 1.0:   # at most once a second
                from .schedule import describe_hosts
                self._shown = now
                busiest = describe_hosts(self._views())
                self.progress.update(self.task, description=f"{self.label}  {busiest}" if busiest else self.label)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _open_store(settings: Settings):
    from .store import Store
    return Store.open(settings.db_url)


def run_audit_command(settings: Settings, paths: Sequence[str], *, fmt: str, output: str | None,
                      archive: bool) -> int:
    """`linkhealth audit`: check, write the report(s), print the summary, return the exit code."""
    err = Console(stderr=True)
    bar = _Bar(err, "checking")
    archive_bar = _ArchiveBar(err)

    async def main() -> AuditOutcome:
        store = await _open_store(settings)
        try:
            outcome = await run_audit(store, settings, paths, progress=bar, archive=archive,
                                      archive_progress=archive_bar)
            bar.stop()
            await _write_outputs(store, settings, fmt, output)
            return outcome
        finally:
            bar.stop()
            archive_bar.stop()
            await store.close()

    outcome = asyncio.run(main())
    for skipped in outcome.scan.notes_skipped:
        err.print(f"[yellow]warning[/]: skipped {_t(skipped.path)}: {_t(skipped.reason)}", highlight=False)
    for notice in outcome.check.notices:      # hosts set aside, the network looking down
        err.print(f"[yellow]warning[/]: {_t(notice)}", highlight=False, soft_wrap=True)
    if fmt == "text" and output:
        with open(output, "w", encoding="utf-8") as handle:
            _print_summary(Console(file=handle, width=120), outcome, settings)
    elif fmt == "text":
        _print_summary(Console(), outcome, settings)
    if outcome.archive is not None:
        print_archive_summary(Console(stderr=fmt != "text"), outcome.archive)
    return EXIT_FAILING if outcome.exit_failing(settings.check.fail_on) else EXIT_OK


async def _write_outputs(store, settings: Settings, fmt: str, output: str | None) -> None:
    """The HTML report always goes to its path; the requested format to -o or stdout."""
    from .report import build_report, render, write_report
    model = await build_report(store, settings=settings)
    write_report(model, "html", settings.report_path)
    if fmt == "text":
        return
    if output:
        write_report(model, fmt, Path(output))
    else:
        write_stdout(render(model, fmt))


def _print_summary(console: Console, outcome: AuditOutcome, settings: Settings) -> None:
    """Counts by status and health, then the failing links with note:line."""
    scan = outcome.scan
    console.print(f"[bold]linkhealth audit[/]: {scan.notes_scanned} notes, {scan.references} references, "
                  f"{scan.targets} unique links; {outcome.check.checked} checked"
                  + (f", {outcome.check.cached} fresh from cache" if outcome.check.cached else "")
                  + (f"; {len(scan.notes_skipped)} notes skipped" if scan.notes_skipped else ""),
                  highlight=False, soft_wrap=True)
    table = Table(title=None, show_edge=False)
    table.add_column("status")
    table.add_column("links", justify="right")
    for status, count in sorted(outcome.statuses.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(status, str(count))
    health = Table(show_edge=False)
    health.add_column("health")
    health.add_column("links", justify="right")
    for name, count in sorted(outcome.healths.items(), key=lambda kv: (-kv[1], kv[0])):
        health.add_row(name, str(count))
    console.print(table)
    console.print(health)
    if outcome.failing:
        console.print(f"\n[bold red]{len(outcome.failing)} failing links[/]")
        for link in outcome.failing:
            places = ", ".join(f"{o['file']}:{o['line']}" for o in link["occurrences"][:3]) or "-"
            detail = link.get("error") or (f"HTTP {link['http_status']}" if link.get("http_status") else "")
            console.print(f"  {_t(places)}  [red]{link['status']}[/] ({link['health']})  {_t(link['url'])}"
                          + (f"  [dim]{_t(detail)}[/]" if detail else ""), highlight=False, soft_wrap=True)
    console.print(f"\nreport: {_t(settings.report_path)}", highlight=False)
    if outcome.interrupted:
        console.print("[yellow]interrupted[/]: the checks done so far are saved", highlight=False)


def run_report_command(settings: Settings, *, fmt: str, output: str | None) -> None:
    """`linkhealth report`: render the report from the database alone."""
    from .report import build_report, render, write_report

    async def main() -> None:
        store = await _open_store(settings)
        try:
            model = await build_report(store, settings=settings)
        finally:
            await store.close()
        if output:
            write_report(model, fmt, Path(output))
        elif fmt == "html":
            write_report(model, fmt, settings.report_path)
            print(f"report: {settings.report_path}", file=sys.stderr)
        else:
            write_stdout(render(model, fmt))

    asyncio.run(main())


def run_status_command(settings: Settings) -> None:
    """`linkhealth status`: recent runs and each host's learned pace, from the database."""
    from .status import status_lines

    async def main() -> list[str]:
        store = await _open_store(settings)
        try:
            return await status_lines(store)
        finally:
            await store.close()

    write_stdout("\n".join(asyncio.run(main())) + "\n")


def run_archive_command(settings: Settings, *, dry_run: bool, limit: int | None) -> None:
    """`linkhealth archive`: plan and run the archive queue once, with a progress bar."""
    from .archive import plan_archive, run_archive
    from .pipeline import utcnow
    err = Console(stderr=True)
    bar = _ArchiveBar(err)

    async def main():
        store = await _open_store(settings)
        try:
            plan = await plan_archive(store, settings, utcnow())
            summary = await run_archive(store, settings, now_fn=utcnow, limit=limit, dry_run=dry_run,
                                        progress=bar)
            return plan, summary
        finally:
            bar.stop()
            await store.close()

    plan, summary = asyncio.run(main())
    print_archive_summary(Console(), summary, plan=plan)


class _ArchiveBar:
    """Progress of the archive queue (done, total, message) as a rich bar on a terminal."""

    def __init__(self, console: Console) -> None:
        self.bar = _Bar(console, "archiving")
        self.started = False

    def __call__(self, done: int, total: int, message: str) -> None:
        if not self.started:
            self.bar.start(total)
            self.started = True
        self.bar.advance()

    def stop(self) -> None:
        self.bar.stop()


def print_archive_summary(console: Console, summary, *, plan=None) -> None:
    """What the archive queue did: planned jobs, outcomes, pauses and errors."""
    if plan is not None:
        planned = ", ".join(f"{k} {v}" for k, v in sorted(plan.counts.items())) or "nothing new"
        console.print(f"archive plan: {plan.candidates} candidate links; queued: {planned}", highlight=False)
    if summary.dry_run:
        console.print(f"dry run: {summary.due} jobs are due; nothing was sent", highlight=False)
        for job in summary.jobs:
            console.print(f"  would {job.action.value if hasattr(job.action, 'value') else job.action} "
                          f"on {job.service}: {_t(job.url)}", highlight=False, soft_wrap=True)
        return
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items()) if v) or "nothing due"
    console.print(f"archive: {summary.due} jobs due; {outcomes}; {summary.snapshots} new snapshots",
                  highlight=False)
    for event in summary.events:
        console.print(f"  [yellow]{_t(event)}[/]", highlight=False)
    for error in summary.errors:
        console.print(f"  [red]error[/]: {_t(error)}", highlight=False)


def run_archive_show(settings: Settings, url: str) -> int:
    """`linkhealth archive show URL`: where the copies of URL are."""
    from .archive import show_snapshots

    async def main():
        store = await _open_store(settings)
        try:
            return await show_snapshots(store, url)
        finally:
            await store.close()

    snaps = asyncio.run(main())
    console = Console()
    if not snaps:
        console.print(f"no copy of {_t(url)} is known", highlight=False)
        return EXIT_FAILING
    for snap in snaps:
        where = snap.archive_url or ""
        if snap.local_path:
            where += f"  (WARC: {snap.local_path})"
        missing = "" if snap.available else "  [red]file missing[/]"
        console.print(f"{snap.service:8} {snap.captured_at:%Y-%m-%d %H:%M} "
                      f"HTTP {snap.http_status or '-'}  {_t(where)}{missing}", highlight=False, soft_wrap=True)
    return EXIT_OK


def run_fix_command(settings: Settings, paths: Sequence[str], *, apply: bool) -> int:
    """`linkhealth fix`: point dead links to their archived copies."""
    from .fix import plan_fixes, apply_fixes
    console = Console()

    async def main():
        store = await _open_store(settings)
        try:
            return await plan_fixes(store, settings, paths)
        finally:
            await store.close()

    fixes = asyncio.run(main())
    if not fixes:
        console.print("nothing to fix: no dead link with an archived copy", highlight=False)
        return EXIT_OK
    for fix in fixes:
        console.print(f"{_t(fix.file)}:{fix.line}: {_t(fix.old)} -> {_t(fix.new)}", highlight=False,
                      soft_wrap=True)
    if apply:
        changed = apply_fixes(fixes)
        console.print(f"rewrote {len(fixes)} links in {changed} notes", highlight=False)
    else:
        console.print(f"{len(fixes)} links would change; run with --apply to rewrite", highlight=False)
    return EXIT_OK
