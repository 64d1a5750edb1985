"""Local copies' fidelity on snapshots; the resources of local WARCs (for revisit records).

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-29

Issue 11: a local copy is measured after writing (text and pictures kept, bytes), and a
resource already stored in a local WARC is written as a revisit record by later captures.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
FIDELITY = (("text_chars", sa.Integer), ("live_text_chars", sa.Integer), ("pictures_kept", sa.Integer),
            ("pictures_found", sa.Integer), ("copy_bytes", sa.BigInteger), ("warc_bytes", sa.BigInteger),
            ("fidelity_note", sa.Text))


def upgrade() -> None:
    """Add the fidelity columns and the archive_resources table."""
    with op.batch_alter_table("snapshots") as batch:
        for name, kind in FIDELITY:
            batch.add_column(sa.Column(name, kind))
    op.create_table(
        "archive_resources",
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("warc_date", sa.String(32), nullable=False),
        sa.Column("warc_path", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_archive_resources"),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("archive_resources")
    with op.batch_alter_table("snapshots") as batch:
        for name, _ in reversed(FIDELITY):
            batch.drop_column(name)
