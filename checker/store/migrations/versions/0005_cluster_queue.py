"""Cluster mode: procrastinate's queue (PostgreSQL), the per-host pace rows and the worker rows.

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-29

procrastinate's schema is applied here, by Alembic, so that ``linkhealth db upgrade`` is the
one way a database gets its tables. It is a frozen copy of procrastinate 3.10.0's
``sql/schema.sql`` (MIT licence) in ``migrations/sql/``: a migration must not change with the
installed package. A later procrastinate release that changes its schema gets a new revision
here carrying that release's own migration files (procrastinate documents applying them with
the project's migration tool). SQLite has no procrastinate: only the two small tables are made.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
PROCRASTINATE_SQL = Path(__file__).resolve().parents[1] / "sql" / "procrastinate-3.10.0.sql"

# Every object procrastinate's schema creates lives in the current schema and is named
# procrastinate_*: dropped by pattern, functions by their full signature.
_DROP_PROCRASTINATE = """
DO $$
DECLARE r record;
BEGIN
    DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,
                         procrastinate_jobs, procrastinate_workers CASCADE;
    FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
             WHERE p.pronamespace = current_schema()::regnamespace
               AND p.proname LIKE 'procrastinate\\_%' LOOP
        EXECUTE 'DROP FUNCTION IF EXISTS ' || r.sig || ' CASCADE';
    END LOOP;
    FOR r IN SELECT t.typname FROM pg_type t
             WHERE t.typnamespace = current_schema()::regnamespace
               AND t.typname LIKE 'procrastinate\\_%' AND t.typtype IN ('e', 'c') LOOP
        EXECUTE 'DROP TYPE IF EXISTS ' || quote_ident(r.typname) || ' CASCADE';
    END LOOP;
END;
$$;
"""


def _run_script(sql: str) -> None:
    """Run a multi-statement script through the driver (asyncpg's simple query protocol)."""
    from sqlalchemy.util import await_only

    raw = op.get_bind().connection.driver_connection
    await_only(raw.execute(sql))


def upgrade() -> None:
    """Create host_clock and cluster_workers; on PostgreSQL, procrastinate's schema too."""
    op.create_table(
        "host_clock",
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("next_start_at", TS, nullable=False),
        sa.Column("last_start_at", TS),
        sa.PrimaryKeyConstraint("host", name="pk_host_clock"),
    )
    op.create_table(
        "cluster_workers",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("seen_at", TS, nullable=False),
        sa.Column("checks_total", sa.BigInteger, nullable=False),
        sa.Column("checks_per_minute", sa.Float, nullable=False),
        sa.Column("in_flight", sa.Integer, nullable=False),
        sa.Column("stopped_at", TS),
        sa.PrimaryKeyConstraint("name", name="pk_cluster_workers"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _run_script(PROCRASTINATE_SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    """Drop procrastinate's objects (PostgreSQL) and the two tables."""
    if op.get_bind().dialect.name == "postgresql":
        _run_script(_DROP_PROCRASTINATE)
    op.drop_table("cluster_workers")
    op.drop_table("host_clock")
