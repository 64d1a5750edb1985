"""Alembic migrations: head matches schema.py exactly, downgrade works, concurrent upgrades agree."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from checker.store import Store
from checker.store.engine import create_engine
from checker.store.migrate import HEAD, alembic_config, current_revision, head_revision, upgrade_engine
from checker.store.schema import metadata

from test_store import db_url  # noqa: F401  (the SQLite / PostgreSQL fixture)

REPO = Path(__file__).resolve().parents[1]


def test_head_constant_is_the_newest_script():
    assert HEAD == head_revision()


#: procrastinate's tables (PostgreSQL only, migration 0005): not in schema.py, by design (its
#: schema is procrastinate's, applied from a frozen copy), so the comparison leaves them out
#: and the table check expects exactly these on PostgreSQL.
PROCRASTINATE_TABLES = {"procrastinate_jobs", "procrastinate_workers", "procrastinate_events",
                        "procrastinate_periodic_defers"}


def _not_procrastinate(obj, name, type_, reflected, compare_to) -> bool:
    table = getattr(obj, "table", None) if type_ != "table" else obj
    table_name = name if type_ == "table" else getattr(table, "name", "")
    return not str(table_name or "").startswith("procrastinate_")


def _diff(connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                           "include_object": _not_procrastinate})
    return compare_metadata(context, metadata)


async def test_head_creates_exactly_the_schema_of_schema_py(db_url):  # noqa: F811
    engine = create_engine(db_url)
    try:
        await upgrade_engine(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff)
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert diff == []
    queue = PROCRASTINATE_TABLES if db_url.startswith("postgresql") else set()
    assert tables == set(metadata.tables) | {"alembic_version"} | queue


async def test_downgrade_to_base_and_up_again(db_url):  # noqa: F811
    engine = create_engine(db_url)
    try:
        await upgrade_engine(engine)
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "base"))
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert tables <= {"alembic_version"}
        assert await current_revision(engine) is None
        await upgrade_engine(engine)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_processes_opening_a_fresh_database_at_once_all_succeed(db_url):  # noqa: F811
    code = ("import asyncio, sys; from checker.store import Store\n"
            "async def main():\n"
            "    s = await Store.open(sys.argv[1]); await s.close()\n"
            "asyncio.run(main()); print('ok')")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", code, db_url, env=env,
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err.decode()[-500:] for _, err in outs]
    async with await Store.open(db_url, upgrade=False) as s:
        assert await current_revision(s.engine) == head_revision()
