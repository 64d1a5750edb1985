"""The command line: a thin click layer over the library (the only module importing click).

Faults (checker.errors) become a one-line message and exit code 2 here, at the edge.
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import sys
from typing import Any, Callable

import click

from . import __version__
from .errors import LinkhealthError
from .settings import Settings, load_settings, parse_duration

EXIT_OK, EXIT_FAILING, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

FORMATS_AUDIT = ("text", "json", "html", "markdown", "csv")
FORMATS_REPORT = ("html", "json", "markdown", "csv")


def _fail(message: str) -> None:
    click.echo(f"linkhealth: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _edge(func: Callable) -> Callable:
    """Turn deliberate faults into one line on stderr and exit code 2; Ctrl-C into 130."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LinkhealthError as exc:
            _fail(str(exc))
        except KeyboardInterrupt as exc:
            # Ctrl-C: 130; SIGTERM: 143; SIGHUP: 129 (128 + the signal, as a shell reports it).
            signum = getattr(exc, "signum", None)
            name = f" by {signal.Signals(signum).name}" if signum else ""
            click.echo(f"linkhealth: interrupted{name}; checks done so far are saved", err=True)
            sys.exit(128 + signum if signum else EXIT_INTERRUPTED)
        except (SystemExit, click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception:   # a bug: keep the traceback, but never exit 1 ("failing links found")
            import traceback
            traceback.print_exc()
            click.echo("linkhealth: internal error (a bug; the traceback is above)", err=True)
            sys.exit(EXIT_USAGE)
    return wrapper


def _duration(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _common_options(func: Callable) -> Callable:
    """--config and --db, shared by every command that opens the database."""
    func = click.option("--db", "db", metavar="URL",
                        help="Database URL (default: SQLite at .linkhealth/linkhealth.db).")(func)
    func = click.option("--config", "config", metavar="FILE", type=click.Path(dir_okay=False),
                        help="Config file (default: config/linkhealth.toml when present).")(func)
    return func


def _check_options(func: Callable) -> Callable:
    """The check options shared by audit and daemon."""
    options = [
        click.option("--concurrency", type=click.IntRange(1), help="Global limit of requests in flight (64)."),
        click.option("--per-host", type=click.IntRange(1), help="Requests in flight per host (4)."),
        click.option("--timeout", type=click.FloatRange(0, min_open=True), help="Seconds per request (20)."),
        click.option("--retries", type=click.IntRange(0), help="Retries on timeouts, resets, 5xx, 429 (2)."),
        click.option("--include-code", is_flag=True, default=None, help="Also check URLs inside code."),
        click.option("--allow-private", is_flag=True, default=None,
                     help="Fetch private, loopback and link-local addresses too."),
        click.option("--connect-to", multiple=True, metavar="HOST:PORT:ADDR:PORT",
                     help="Send HOST:PORT to ADDR:PORT instead (curl's meaning; repeatable)."),
        click.option("--ca-file", type=click.Path(exists=True, dir_okay=False),
                     help="Extra CA certificates (PEM) to trust."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _settings(config: str | None, db: str | None = None, **flags: Any) -> Settings:
    mapping = {
        "concurrency": "check.concurrency", "per_host": "check.per_host", "timeout": "check.timeout",
        "retries": "check.retries", "include_code": "notes.include_code",
        "allow_private": "check.allow_private", "ca_file": "check.ca_file",
        "recheck_after": "check.recheck_after", "fail_on": "check.fail_on", "listen": "daemon.listen",
    }
    overrides: dict[str, Any] = {mapping[k]: v for k, v in flags.items() if k in mapping and v is not None}
    if flags.get("connect_to"):
        overrides["check.connect_to"] = tuple(flags["connect_to"])
    if db:
        overrides["db"] = db
    return load_settings(config, overrides=overrides)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="linkhealth")
def main() -> None:
    """Check, record and preserve the links in a collection of markdown notes.

    \b
    Example:
      linkhealth audit notes/ --format json -o report.json
    """
    # A terminal whose locale cannot show Chinese gets escapes, not a crash.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text", show_default=True)
@click.option("--include-code", is_flag=True, help="Also list URLs inside code spans and blocks.")
@click.option("--config", "config", metavar="FILE", type=click.Path(dir_okay=False))
@_edge
def extract(paths: tuple[str, ...], fmt: str, include_code: bool, config: str | None) -> None:
    """List every reference URL in the notes, with its file, line and column.

    \b
    Example:
      linkhealth extract notes/ --format jsonl > refs.jsonl
    """
    from .commands import printable, write_stdout
    from .extract import extract as extract_refs
    from .notes import encoding_notice, scan
    settings = _settings(config)
    found = scan(paths, settings.notes)
    for skipped in found.skipped:
        click.echo(printable(f"linkhealth: warning: skipped {skipped.path}: {skipped.reason}"), err=True)
    notice = encoding_notice(found.notes)
    if notice:
        click.echo(printable(f"linkhealth: note: {notice}"), err=True)
    for note in found.notes:
        lines = []
        for ref in extract_refs(found.text(note), note.path, bare_www=settings.notes.bare_www):
            if ref.in_code and not (include_code or settings.notes.include_code):
                continue
            if fmt == "jsonl":
                lines.append(json.dumps({"file": ref.file, "line": ref.line, "col": ref.col, "url": ref.url,
                                         "kind": str(ref.kind), "in_code": ref.in_code}, ensure_ascii=False))
            else:
                code = " (code)" if ref.in_code else ""
                # A note's text and name may hold escape sequences: never sent raw to a terminal.
                lines.append(printable(f"{ref.file}:{ref.line}:{ref.col}") + f"\t{ref.kind}{code}\t"
                             + printable(ref.url))
        if lines:
            write_stdout("\n".join(lines) + "\n")


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@_common_options
@click.option("--format", "fmt", type=click.Choice(FORMATS_AUDIT), default="text", show_default=True,
              help="Output format (the HTML report is also written to .linkhealth/report.html).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the output here (default: stdout).")
@_check_options
@click.option("--archive/--no-archive", default=False, show_default=True,
              help="Archive at-risk and dead links after checking.")
@click.option("--recheck-after", callback=_duration, metavar="DURATION",
              help="Skip links checked successfully more recently than this (e.g. 12h, 7d).")
@click.option("--fail-on", type=click.Choice(["broken", "dead", "never"]), default=None,
              help="Exit 1 on any failing link (broken, default), on confirmed dead links, or never.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Skip links an interrupted audit of the last 24 hours already checked.")
@click.option("-q", "--quiet", is_flag=True, help="Print no summary and no progress (warnings and -o still work).")
@click.option("--list-limit", type=click.IntRange(0), default=20, show_default=True, metavar="N",
              help="List at most N failing links in the terminal (0: all; -o FILE gets all).")
@_edge
def audit(paths: tuple[str, ...], config: str | None, db: str | None, fmt: str, output: str | None,
          archive: bool, resume: bool, quiet: bool, list_limit: int, **flags: Any) -> None:
    """Check every link in the notes once, record it, and report.

    Exit status: 0 nothing failing, 1 failing links found (per --fail-on), 2 usage,
    configuration or input error.

    \b
    Example:
      linkhealth audit notes/ --format json -o audit.json --recheck-after 1d
    """
    from .commands import run_audit_command
    settings = _settings(config, db, **flags)
    if not (paths or settings.notes.paths):
        raise click.UsageError("give the notes folder(s) to audit, or set [notes] paths in the config")
    code = run_audit_command(settings, paths or settings.notes.paths, fmt=fmt, output=output, archive=archive,
                             resume=resume, quiet=quiet, list_limit=list_limit)
    sys.exit(code)


@main.command()
@_common_options
@click.option("--format", "fmt", type=click.Choice(FORMATS_REPORT), default="html", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write here (default: .linkhealth/report.html for html, stdout otherwise).")
@_edge
def report(config: str | None, db: str | None, fmt: str, output: str | None) -> None:
    """Write the health report from the database (no network).

    \b
    Example:
      linkhealth report --format markdown -o HEALTH.md
    """
    from .commands import run_report_command
    run_report_command(_settings(config, db), fmt=fmt, output=output)


@main.command()
@_common_options
@_edge
def status(config: str | None, db: str | None) -> None:
    """Show recent runs, the pace learned per host (hosts that pushed back first) and, in
    cluster mode, the queue depth and the live workers with their checks per minute.

    \b
    Example:
      linkhealth status --db sqlite:///.linkhealth/linkhealth.db
      linkhealth status --db postgresql+asyncpg://linkhealth@db/linkhealth
    """
    from .commands import run_status_command
    run_status_command(_settings(config, db))


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@_common_options
@click.option("--listen", metavar="HOST:PORT", help="Where to serve the report and API (127.0.0.1:8787).")
@_check_options
@_edge
def daemon(paths: tuple[str, ...], config: str | None, db: str | None, **flags: Any) -> None:
    """Keep watch: rescan, recheck when due, archive, and serve the report.

    A saved note is rescanned within seconds (daemon.watch). With a token, browsers
    sign in at /login; API clients send Authorization: Bearer TOKEN.

    \b
    Example:
      linkhealth daemon notes/ --listen 127.0.0.1:8787
    """
    from .daemon import run_daemon
    from .runtime import runner
    settings = _settings(config, db, **flags)
    with runner() as run:
        sys.exit(run.run(run_daemon(settings, paths=list(paths) or None)))


@main.group(invoke_without_command=True)
@_common_options
@click.option("--dry-run", is_flag=True, help="Say what would be archived; send nothing.")
@click.option("--limit", type=click.IntRange(1), help="Run at most this many archive jobs.")
@click.pass_context
@_edge
def archive(ctx: click.Context, config: str | None, db: str | None, dry_run: bool, limit: int | None) -> None:
    """Preserve at-risk pages and find snapshots of dead ones (runs the queue once).

    \b
    Example:
      linkhealth archive --dry-run --limit 20
      linkhealth archive show https://mp.weixin.qq.com/s/abc
    """
    ctx.obj = {"config": config, "db": db}
    if ctx.invoked_subcommand is None:
        from .commands import run_archive_command
        run_archive_command(_settings(config, db), dry_run=dry_run, limit=limit)


@archive.command("show")
@click.argument("url")
@_common_options
@click.pass_context
@_edge
def archive_show(ctx: click.Context, url: str, config: str | None, db: str | None) -> None:
    """Print where the copies of URL are (Wayback captures, local WARC and readable copy).

    \b
    Example:
      linkhealth archive show https://mp.weixin.qq.com/s/abc
    """
    from .commands import run_archive_show
    # --config and --db go before or after `show`, as in every other command.
    sys.exit(run_archive_show(_settings(config or ctx.obj["config"], db or ctx.obj["db"]), url))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@_common_options
@click.option("--apply", "apply_", is_flag=True, help="Rewrite the notes (default: only show the changes).")
@_edge
def fix(paths: tuple[str, ...], config: str | None, db: str | None, apply_: bool) -> None:
    """Point dead links in the notes to their archived copies (dry run unless --apply).

    \b
    Example:
      linkhealth fix notes/ --apply
    """
    from .commands import run_fix_command
    sys.exit(run_fix_command(_settings(config, db), paths, apply=apply_))


@main.command()
@_common_options
@_check_options
@_edge
def worker(config: str | None, db: str | None, **flags: Any) -> None:
    """Run checks from the cluster queue (PostgreSQL + procrastinate) until stopped.

    Any number of workers, on any machines, share one PostgreSQL database; the daemon with
    [cluster] enabled = true queues the due links. --concurrency is jobs (host slots) at once.

    \b
    Example:
      linkhealth worker --db postgresql+asyncpg://linkhealth@db/linkhealth --concurrency 64
    """
    from .cluster.commands import run_worker_command
    settings = _settings(config, db, **flags)
    sys.exit(run_worker_command(settings, concurrency=flags.get("concurrency")))

@main.group(invoke_without_command=True)
@click.option("--config", "config", metavar="FILE", type=click.Path(dir_okay=False),
              help="Config file (default: config/linkhealth.toml when present); its rules_files are loaded.")
@click.pass_context
@_edge
def rules(ctx: click.Context, config: str | None) -> None:
    """List the active site rules: their hosts, live markers, blocked and soft-404 markers, sources.

    \b
    Example:
      linkhealth rules
      linkhealth rules test saved.html --url https://mp.weixin.qq.com/s/abc
    """
    ctx.obj = {"config": config}
    if ctx.invoked_subcommand is None:
        from .commands import run_rules_list
        sys.exit(run_rules_list(_settings(config)))


@rules.command("test")
@click.argument("page", metavar="FILE_OR_URL")
@click.option("--url", metavar="URL", help="The URL a saved page came from (chooses the site rule).")
@click.option("--status", type=click.IntRange(100, 999), default=200, show_default=True,
              help="The HTTP status a saved page was served with.")
@click.option("--config", "config", metavar="FILE", type=click.Path(dir_okay=False),
              help="Config file (default: the one given to `rules`, else config/linkhealth.toml).")
@click.option("--connect-to", multiple=True, metavar="HOST:PORT:ADDR:PORT",
              help="Send HOST:PORT to ADDR:PORT instead when fetching a URL (curl's meaning).")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), help="Extra CA certificates (PEM).")
@click.pass_context
@_edge
def rules_test(ctx: click.Context, page: str, url: str | None, status: int, config: str | None,
               connect_to: tuple[str, ...], ca_file: str | None) -> None:
    """Say which rule and marker fire on a saved page (FILE) or on a URL fetched now, and why.

    \b
    Example:
      linkhealth rules test deleted.html --url https://mp.weixin.qq.com/s/abc
      linkhealth rules test https://zhuanlan.zhihu.com/p/123
    """
    from .commands import run_rules_test
    settings = _settings(config or ctx.obj["config"], connect_to=connect_to, ca_file=ca_file)
    sys.exit(run_rules_test(settings, page, url, status))


@main.group()
def db() -> None:
    """Database maintenance.

    \b
    Example:
      linkhealth db upgrade --db postgresql+asyncpg://user@host/linkhealth
    """


@db.command()
@_common_options
@_edge
def upgrade(config: str | None, db: str | None) -> None:
    """Create or upgrade the database schema to the latest version.

    \b
    Example:
      linkhealth db upgrade
    """
    from .store import upgrade as upgrade_db
    settings = _settings(config, db)
    asyncio.run(upgrade_db(settings.db_url)) if asyncio.iscoroutinefunction(upgrade_db) \
        else upgrade_db(settings.db_url)
    click.echo(f"database at {settings.db_url} is up to date")


if __name__ == "__main__":  # pragma: no cover
    main()
