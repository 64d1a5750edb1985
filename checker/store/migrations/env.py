"""Alembic environment for linkhealth.

linkhealth runs migrations in code (checker.store.migrate): it opens the async
engine, takes the migration lock and hands a synchronous connection to Alembic
through ``config.attributes["connection"]`` (``AsyncConnection.run_sync``, see
Alembic's cookbook "Programmatic API use (connection sharing) With Asyncio").
Run by hand (``alembic -x db=URL ...`` with ``script_location`` pointing here),
it builds the same engine from the ``db`` argument or ``sqlalchemy.url``.
"""

from __future__ import annotations

import asyncio

from alembic import context

from checker.store.schema import metadata


def _configure_and_run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    from checker.store.engine import create_engine

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_configure_and_run)
    finally:
        await engine.dispose()


def _main() -> None:
    if context.is_offline_mode():
        url = context.get_x_argument(as_dictionary=True).get("db") or context.config.get_main_option("sqlalchemy.url")
        context.configure(url=url, target_metadata=metadata, literal_binds=True,
                          render_as_batch=str(url).startswith("sqlite"))
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("db") or context.config.get_main_option("sqlalchemy.url")
    asyncio.run(_run_with_own_engine(url))


_main()
