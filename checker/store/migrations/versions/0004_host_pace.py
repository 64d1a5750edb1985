"""The pace learned per host (checker.pace): host_pace.

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create host_pace."""
    op.create_table(
        "host_pace",
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("concurrency", sa.Float, nullable=False),
        sa.Column("interval", sa.Float, nullable=False),
        sa.Column("stress_concurrency", sa.Float),
        sa.Column("stress_rate", sa.Float),
        sa.Column("last_stress", sa.Text),
        sa.Column("last_stress_at", TS),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("refusals", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("host", name="pk_host_pace"),
    )


def downgrade() -> None:
    """Drop host_pace."""
    op.drop_table("host_pace")
