"""Initial schema: notes, links, occurrences, runs, checks, snapshots, archive_jobs, leases.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

A frozen copy of checker/store/schema.py as first released: later changes to
schema.py get their own revision, never an edit here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table of the first schema."""
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("mtime", sa.Float, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("seen_at", TS, nullable=False),
        sa.Column("deleted_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_notes"),
        sa.UniqueConstraint("path", name="uq_notes_path"),
    )
    op.create_table(
        "links",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("display_url", sa.Text, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("at_risk", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16)),
        sa.Column("health", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("final_url", sa.Text),
        sa.Column("title", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("latency_ms", sa.Integer),
        sa.Column("checked_at", TS),
        sa.Column("fail_streak", sa.Integer, nullable=False),
        sa.Column("first_failing_at", TS),
        sa.Column("dead_since", TS),
        sa.Column("revived_at", TS),
        sa.Column("next_check_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_links"),
        sa.UniqueConstraint("url", name="uq_links_url"),
    )
    op.create_index("ix_links_host", "links", ["host"])
    op.create_index("ix_links_next_check_at", "links", ["next_check_at"])
    op.create_table(
        "occurrences",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("link_id", sa.Integer, nullable=False),
        sa.Column("note_id", sa.Integer, nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("col", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("in_code", sa.Boolean, nullable=False),
        sa.Column("written", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_occurrences"),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], ondelete="CASCADE",
                                name="fk_occurrences_link_id_links"),
        sa.ForeignKeyConstraint(["note_id"], ["notes.id"], ondelete="CASCADE",
                                name="fk_occurrences_note_id_notes"),
        sa.UniqueConstraint("note_id", "line", "col", name="uq_occurrences_place"),
    )
    op.create_index("ix_occurrences_link_id", "occurrences", ["link_id"])
    op.create_index("ix_occurrences_note_id", "occurrences", ["note_id"])
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("notes_scanned", sa.Integer, nullable=False),
        sa.Column("notes_skipped", sa.Integer, nullable=False),
        sa.Column("links_total", sa.Integer, nullable=False),
        sa.Column("links_checked", sa.Integer, nullable=False),
        sa.Column("counts", sa.JSON),
        sa.Column("message", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_table(
        "checks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("probe_id", sa.String(36), nullable=False),
        sa.Column("link_id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer),
        sa.Column("checked_at", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cause", sa.String(32)),
        sa.Column("http_status", sa.Integer),
        sa.Column("final_url", sa.Text),
        sa.Column("title", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("rule", sa.Text),
        sa.Column("latency_ms", sa.Integer),
        sa.Column("elapsed_ms", sa.Integer),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("method", sa.String(8)),
        sa.Column("redirects", sa.JSON),
        sa.PrimaryKeyConstraint("id", name="pk_checks"),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], ondelete="CASCADE",
                                name="fk_checks_link_id_links"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="SET NULL",
                                name="fk_checks_run_id_runs"),
        sa.UniqueConstraint("probe_id", name="uq_checks_probe_id"),
    )
    op.create_index("ix_checks_link_time", "checks", ["link_id", "checked_at"])
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("link_id", sa.Integer, nullable=False),
        sa.Column("service", sa.String(16), nullable=False),
        sa.Column("archive_url", sa.Text),
        sa.Column("local_path", sa.Text),
        sa.Column("warc_offset", sa.BigInteger),
        sa.Column("digest", sa.String(80)),
        sa.Column("captured_at", TS, nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_snapshots"),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], ondelete="CASCADE",
                                name="fk_snapshots_link_id_links"),
    )
    op.create_index("ix_snapshots_link_id", "snapshots", ["link_id"])
    op.create_table(
        "archive_jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("link_id", sa.Integer, nullable=False),
        sa.Column("service", sa.String(16), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_try_at", TS),
        sa.Column("external_id", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_archive_jobs"),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], ondelete="CASCADE",
                                name="fk_archive_jobs_link_id_links"),
        sa.UniqueConstraint("link_id", "service", "action", name="uq_archive_jobs_link_service_action"),
    )
    op.create_index("ix_archive_jobs_state", "archive_jobs", ["state", "next_try_at"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    """Drop every table (children first)."""
    for table in ("leases", "archive_jobs", "snapshots", "checks", "runs", "occurrences",
                  "links", "notes"):
        op.drop_table(table)
