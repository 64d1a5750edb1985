"""The cluster's commands behind the CLI: ``linkhealth worker`` and the cluster part of ``status``.

procrastinate is imported only once a worker really starts: without the ``cluster`` extra the
command stops with one line saying what to install.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..settings import Settings

__all__ = ["require_cluster", "run_worker_command"]

INSTALL_HINT = "pip install 'linkhealth[cluster]'"


def require_cluster(settings: Settings) -> None:
    """Refuse early, in one line, when procrastinate is missing or the database is not PostgreSQL."""
    try:
        import procrastinate  # noqa: F401
    except ImportError:
        raise ConfigError(f"`linkhealth worker` needs the cluster extra (procrastinate): {INSTALL_HINT}") from None
    if not settings.db_url.startswith(("postgresql", "postgres")):
        raise ConfigError("`linkhealth worker` needs PostgreSQL: pass --db postgresql+asyncpg://USER@HOST/DB "
                          "or set LINKHEALTH_DB (the embedded SQLite database cannot be shared)",
                          key="db")


def run_worker_command(settings: Settings, *, concurrency: int | None = None) -> int:
    """Run one worker process until SIGTERM/SIGINT; the exit code."""
    require_cluster(settings)
    from ..logs import configure_logging
    from ..store import Store
    from .runner import run_worker

    configure_logging(settings.daemon.log_format, settings.daemon.log_level)

    async def main() -> int:
        # Fail fast, in one line, on a database that is unreachable; bring its schema (and
        # procrastinate's) to head like every other command does on first use.
        store = await Store.open(settings.db_url)
        await store.close()
        return await run_worker(settings, concurrency=concurrency)

    from ..runtime import runner
    with runner() as run:
        return run.run(main())
