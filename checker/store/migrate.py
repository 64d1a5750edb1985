"""Schema migrations: Alembic, configured in code, run over the async engine.

No alembic.ini is needed at runtime: the script location is the migrations folder
shipped inside the package. Two processes that open a fresh database at once are
serialised: PostgreSQL by a transaction-level advisory lock, SQLite by
``BEGIN IMMEDIATE`` (the write lock, waited for up to the busy timeout). The
second one then finds the schema at head and does nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import StoreError
from .engine import IMMEDIATE

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = ["MIGRATIONS_DIR", "HEAD", "alembic_config", "head_revision", "upgrade_engine",
           "current_revision"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

#: The newest revision in migrations/versions (a test checks it against Alembic).
#: Knowing it without Alembic lets an up-to-date database open without importing
#: Alembic at all (about half a second of start-up for every CLI command).
HEAD = "0004"

#: pg_advisory_xact_lock key for migrations: any fixed 64-bit number ("linkhlth").
_PG_LOCK_KEY = 0x6C696E6B686C7468 & 0x7FFFFFFFFFFFFFFF


def alembic_config(connection: Connection | None = None) -> "Config":
    """An Alembic Config pointing at the packaged migrations (optionally bound to a connection)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this version of linkhealth knows (read from the scripts)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    except SQLAlchemyError:
        if not await _has_version_table(engine):
            return None
        raise
    return rows[0] if rows else None


async def _has_version_table(engine: AsyncEngine) -> bool:
    from sqlalchemy import inspect

    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: inspect(c).has_table("alembic_version"))


async def upgrade_engine(engine: AsyncEngine) -> None:
    """Bring the database to head, holding the migration lock; refuse a newer database."""
    if await current_revision(engine) == HEAD:
        return
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execution_options(**{IMMEDIATE: True})
        async with conn.begin():
            if engine.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            await conn.run_sync(_upgrade_sync)


def _upgrade_sync(connection: Connection) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    current = MigrationContext.configure(connection).get_current_revision()
    script = ScriptDirectory.from_config(alembic_config())
    if current is not None and not _revision_known(script, current):
        raise StoreError(f"the database is at schema revision {current}, which this version "
                         "of linkhealth does not know: upgrade linkhealth")
    if current == script.get_current_head():
        return
    command.upgrade(alembic_config(connection), "head")


def _revision_known(script: "ScriptDirectory", revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic raises its own ResolutionError for unknown ids
        return False
