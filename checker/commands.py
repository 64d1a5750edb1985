"""What each CLI command does, apart from argument parsing: open the store, run the
pipeline, print to the terminal (rich), return an exit code. No click here."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable, Sequence, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn
from rich.table import Table

from .errors import Interrupted
from .fsutil import check_writable, writing
from .models import CheckResult
from .pipeline import AuditOutcome, run_audit
from .runtime import runner
from .settings import Settings

__all__ = ["run_audit_command", "run_report_command", "run_archive_command", "run_archive_show",
           "run_fix_command", "run_rules_list", "run_rules_test", "write_stdout", "printable", "plural"]

EXIT_OK, EXIT_FAILING = 0, 1
T = TypeVar("T")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(value: object) -> str:
    """Text from notes or remote servers, safe for a terminal: every control character
    (a hostile note, title or error could carry escape sequences) becomes U+FFFD."""
    return _CONTROL.sub("\ufffd", str(value))


def _t(value: object) -> str:
    """:func:`printable` text with rich markup escaped, for console.print."""
    return escape(printable(value))


def plural(count: int, word: str, many: str | None = None) -> str:
    """"1 note", "2 notes": a count with its noun in the right number."""
    return f"{count} {word if count == 1 else many or word + 's'}"


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
        if not self.console.is_terminal or self.console.quiet:
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


async def _open_store(settings: Settings):
    """Open the store and close the runs that killed processes left ``running``."""
    from .pipeline import utcnow
    from .store import Store
    store = await Store.open(settings.db_url)
    try:
        await store.close_stale_runs(utcnow())
    except BaseException:
        await store.close()
        raise
    return store


#: Signals that stop a command the way Ctrl-C does (SIGINT is asyncio.run's own).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _run(main: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run(main()), where SIGTERM and SIGHUP cancel the work like Ctrl-C: the run is
    recorded as interrupted, the checks done are kept, and Interrupted(signal) is raised."""
    received: list[int] = []

    async def guarded() -> T:
        task, loop = asyncio.current_task(), asyncio.get_running_loop()

        def stop(signum: int) -> None:
            if not received:            # one cancel: the clean-up must not be cut short
                received.append(signum)
                task.cancel()
        installed = []
        for signum in STOP_SIGNALS:
            try:
                loop.add_signal_handler(signum, stop, signum)
                installed.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
                pass
        try:
            return await main()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    try:
        with runner() as run:
            return run.run(guarded())
    except asyncio.CancelledError:
        if received:
            raise Interrupted(received[0]) from None
        raise


def run_audit_command(settings: Settings, paths: Sequence[str], *, fmt: str, output: str | None,
                      archive: bool, resume: bool = True, quiet: bool = False, list_limit: int = 20) -> int:
    """`linkhealth audit`: check, write the report(s), print the summary, return the exit code.

    The terminal gets the summary with at most ``list_limit`` failing links (0: all);
    ``-o`` gets the whole of it, and the terminal a short summary saying where it went;
    ``quiet`` prints nothing but warnings and the requested output.
    """
    err = Console(stderr=True, quiet=quiet)
    bar = _Bar(err, "checking")
    archive_bar = _ArchiveBar(err)

    # An output that cannot be written fails now, not after an hour of checks.
    check_writable(settings.report_path, "the HTML report")
    if output:
        check_writable(Path(output), "the output")

    async def main() -> AuditOutcome:
        store = await _open_store(settings)
        try:
            outcome = await run_audit(store, settings, paths, progress=bar, archive=archive,
                                      archive_progress=archive_bar, resume=resume)
            bar.stop()
            await _write_outputs(store, settings, fmt, output)
            return outcome
        finally:
            bar.stop()
            archive_bar.stop()
            await store.close()

    outcome = _run(main)
    warn = Console(stderr=True)             # warnings are printed under --quiet too
    _warn_skipped(warn, outcome.scan.notes_skipped, quiet=quiet)
    for notice in outcome.check.notices:      # hosts set aside, the network looking down
        warn.print(f"[yellow]warning[/]: {_t(notice)}", highlight=False, soft_wrap=True)
    if outcome.scan.encoding_notice:
        warn.print(f"note: {_t(outcome.scan.encoding_notice)}", highlight=False, soft_wrap=True)
    if fmt == "text" and output:
        with writing(output, "the summary"), open(output, "w", encoding="utf-8") as handle:
            _print_summary(Console(file=handle, width=120), outcome, settings, limit=0)
    elif fmt == "text" and not quiet:
        _print_summary(Console(), outcome, settings, limit=list_limit)
    if output and not quiet:
        _print_brief(Console(), outcome, settings, output)
    if outcome.archive is not None and not quiet:
        print_archive_summary(Console(stderr=fmt != "text" and not output), outcome.archive)
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


def _warn_skipped(err: Console, skipped: Sequence, *, quiet: bool) -> None:
    """One warning per skipped note (one line in all under --quiet)."""
    if quiet and skipped:
        err.print(f"[yellow]warning[/]: {plural(len(skipped), 'note')} skipped "
                  f"(run without --quiet to see which)", highlight=False)
        return
    for note in skipped:
        err.print(f"[yellow]warning[/]: skipped {_t(note.path)}: {_t(note.reason)}", highlight=False)


def _headline(console: Console, outcome: AuditOutcome) -> None:
    scan = outcome.scan
    console.print(f"[bold]linkhealth audit[/]: {plural(scan.notes_scanned, 'note')}, "
                  f"{plural(scan.references, 'reference')}, {plural(scan.targets, 'unique link')}; "
                  f"{outcome.check.checked} checked"
                  + (f", {outcome.check.cached} fresh from cache" if outcome.check.cached else "")
                  + (f", {outcome.check.resumed} already checked by interrupted "
                     + ("run " if len(outcome.check.resumed_runs) == 1 else "runs ")
                     + ", ".join(f"#{r}" for r in outcome.check.resumed_runs) if outcome.check.resumed else "")
                  + (f"; {plural(len(scan.notes_skipped), 'note')} skipped" if scan.notes_skipped else ""),
                  highlight=False, soft_wrap=True)


def _print_brief(console: Console, outcome: AuditOutcome, settings: Settings, output: str) -> None:
    """The short summary the terminal gets when the output went to a file (-o)."""
    _headline(console, outcome)
    if outcome.failing:
        console.print(f"[bold red]{plural(len(outcome.failing), 'failing link')}[/]", highlight=False)
    console.print(f"wrote {_t(output)}\nreport: {_t(settings.report_path)}", highlight=False)
    _say_interrupted(console, outcome)


def _say_interrupted(console: Console, outcome: AuditOutcome) -> None:
    if outcome.interrupted:
        console.print("[yellow]interrupted[/]: the checks done so far are saved", highlight=False)


def _print_summary(console: Console, outcome: AuditOutcome, settings: Settings, *, limit: int = 0) -> None:
    """Counts by status and health, then the failing links with note:line (at most
    ``limit`` of them, 0 for all, then how many more the report has)."""
    _headline(console, outcome)
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
        console.print(f"\n[bold red]{plural(len(outcome.failing), 'failing link')}[/]")
        shown = outcome.failing[:limit] if limit else outcome.failing
        for link in shown:
            places = ", ".join(f"{o['file']}:{o['line']}" for o in link["occurrences"][:3]) or "-"
            detail = link.get("error") or (f"HTTP {link['http_status']}" if link.get("http_status") else "")
            console.print(f"  {_t(places)}  [red]{link['status']}[/] ({link['health']})  {_t(link['url'])}"
                          + (f"  [dim]{_t(detail)}[/]" if detail else ""), highlight=False, soft_wrap=True)
        if len(shown) < len(outcome.failing):
            console.print(f"  and {len(outcome.failing) - len(shown)} more, see the report", highlight=False)
    console.print(f"\nreport: {_t(settings.report_path)}", highlight=False)
    _say_interrupted(console, outcome)


def run_report_command(settings: Settings, *, fmt: str, output: str | None) -> None:
    """`linkhealth report`: render the report from the database alone."""
    from .report import build_report, render, write_report
    if output or fmt == "html":
        check_writable(Path(output or settings.report_path), f"the {fmt} report")

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

    _run(main)


def run_status_command(settings: Settings) -> None:
    """`linkhealth status`: recent runs and each host's learned pace, from the database."""
    from .status import status_lines

    async def main() -> list[str]:
        store = await _open_store(settings)
        try:
            # A worker reports every cluster.report_every: one missing three reports is gone.
            return await status_lines(store, alive_within=max(60.0, 3 * settings.cluster.report_every))
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
            plan = await plan_archive(store, settings, utcnow(), dry_run=dry_run)
            summary = await run_archive(store, settings, now_fn=utcnow, limit=limit, dry_run=dry_run,
                                        progress=bar)
            return plan, summary
        finally:
            bar.stop()
            await store.close()

    plan, summary = _run(main)
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
        verb = "would queue" if summary.dry_run else "queued"
        console.print(f"archive plan: {plural(plan.candidates, 'candidate link')}; {verb}: {planned}",
                      highlight=False)
    if summary.dry_run:
        # The queued jobs that are due, then the new ones the plan would queue (a dry run
        # queues nothing, so they are not in the queue yet).
        queued = {(job.url, job.service, str(job.action)) for job in summary.jobs}
        new = [job for job in (plan.planned if plan is not None else ())
               if (job.url, job.service, str(job.action)) not in queued]
        console.print(f"dry run: {plural(summary.due, 'queued job is', 'queued jobs are')} due, "
                      f"{len(new)} new would be queued; nothing was sent or queued", highlight=False)
        for job in list(summary.jobs) + new:
            console.print(f"  would {job.action.value if hasattr(job.action, 'value') else job.action} "
                          f"on {job.service}: {_t(job.url)}", highlight=False, soft_wrap=True)
        return
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items()) if v) or "nothing due"
    console.print(f"archive: {plural(summary.due, 'job')} due; {outcomes}; "
                  f"{plural(summary.snapshots, 'new snapshot')}", highlight=False)
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

    snaps = _run(main)
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
        if snap.fidelity is not None:
            colour = {"ok": "green", "partial": "yellow"}.get(snap.fidelity.verdict, "red")
            console.print(f"         copy [{colour}]{_t(snap.fidelity.summary())}[/]", highlight=False,
                          soft_wrap=True)
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

    fixes = _run(main)
    if not fixes:
        console.print("nothing to fix: no dead link with an archived copy", highlight=False)
        return EXIT_OK
    for fix in fixes:
        console.print(f"{_t(fix.file)}:{fix.line}: {_t(fix.old)} -> {_t(fix.new)}", highlight=False,
                      soft_wrap=True)
    if apply:
        changed = apply_fixes(fixes)
        console.print(f"rewrote {plural(len(fixes), 'link')} in {plural(changed, 'note')}", highlight=False)
    else:
        console.print(f"{plural(len(fixes), 'link')} would change; run with --apply to rewrite", highlight=False)
    return EXIT_OK


def run_rules_list(settings: Settings) -> int:
    """`linkhealth rules`: the active site rules, their hosts, markers and sources."""
    from .rules import load_rules

    rules = load_rules(settings.health)
    console = Console()
    for rule in rules.rules:
        flags = " (at risk)" if rule.at_risk else ""
        console.print(f"[bold]{_t(rule.name)}[/]{flags}  from {_t(rule.source)}", highlight=False)
        if rule.generator:    # a platform-software rule: any host whose page names this generator
            console.print(f"  generator: {_t(', '.join(rule.generator))} (any host)", highlight=False, soft_wrap=True)
        else:
            console.print(f"  hosts:   {_t(', '.join(rule.hosts))}" + (f"  path ~ {_t(rule.path.pattern)}" if rule.path
                                                                       else ""), highlight=False, soft_wrap=True)
        live = [*rule.live_text, *(s.css for s in rule.live)]
        if live:
            console.print(f"  live:    {_t(', '.join(live))}", highlight=False, soft_wrap=True)
        for kind, markers in (("blocked", rule.blocked), ("soft404", rule.soft404)):
            names = [m.name for m in markers]
            if kind == "blocked" and rule.blocked_statuses:
                names.insert(0, "HTTP " + "/".join(str(s) for s in sorted(rule.blocked_statuses)))
            if names:
                console.print(f"  {kind + ':':8} {_t(', '.join(names))}", highlight=False, soft_wrap=True)
        if rule.cite:
            console.print(f"  source:  {_t(' '.join(rule.cite.split()))}", highlight=False, soft_wrap=True)
    console.print(f"{len(rules)} rules; generic checks apply to every host (checker/generic.py)", highlight=False)
    return EXIT_OK


def run_rules_test(settings: Settings, source: str, url: str | None, status: int) -> int:
    """`linkhealth rules test FILE_OR_URL`: which rule and marker fire on a page, and why."""
    from .rules import load_rules
    from .ruletest import fetched_page, saved_page, check_page

    rules = load_rules(settings.health)
    if source.startswith(("http://", "https://")):
        target, probe = asyncio.run(fetched_page(source, settings, rules))
    else:
        target, probe = saved_page(source, url, status)
    result = check_page(target, probe, rules)
    console = Console()
    verdict = result.verdict
    console.print(f"url:      {_t(result.url)}", highlight=False, soft_wrap=True)
    console.print(f"rule:     {_t(result.rule.name) if result.rule else '(no site rule; generic checks only)'}",
                  highlight=False)
    console.print(f"HTTP:     {probe.http_status if probe.http_status is not None else '-'}", highlight=False)
    console.print(f"status:   [bold]{verdict.status}[/]", highlight=False)
    console.print(f"decided:  {_t(verdict.rule or '(HTTP status alone)')}", highlight=False)
    if verdict.error:
        console.print(f"error:    {_t(verdict.error)}", highlight=False, soft_wrap=True)
    if verdict.title:
        console.print(f"title:    {_t(verdict.title)}", highlight=False, soft_wrap=True)
    console.print("checks:", highlight=False)
    for name, kind, matched in result.checks:
        mark = "[green]fires[/]" if matched is not None else "-    "
        detail = f"  ({_t(matched[:100])})" if matched is not None else ""
        console.print(f"  {mark} {kind:8} {_t(name)}{detail}", highlight=False, soft_wrap=True)
    return EXIT_OK
