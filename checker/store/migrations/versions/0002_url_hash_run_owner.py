"""Links keyed by a digest of their URL; runs record the process that owns them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

- ``links.url_hash`` (SHA-256 hex of the normalized URL) carries the unique index
  instead of ``links.url``: PostgreSQL's btree refuses index rows above 2704 bytes
  ("index row size ... exceeds btree version 4 maximum 2704"), so one note citing a
  URL of a few KB stopped every scan. Existing rows are backfilled here.
- ``runs.owner`` (``host:pid``) lets a later command tell a run whose process died
  (killed with SIGKILL, a power cut) from one still running, and close it.

On SQLite the links table is rebuilt (batch mode). SQLite runs the migration with
foreign keys off (checker.store.migrate): dropping the old table with them on would
cascade-delete every check and occurrence (https://sqlite.org/lang_altertable.html#otheralter).
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _digest(url: str) -> str:
    # The same function as checker.store.schema.url_digest, frozen here: a migration
    # must not change when the code does.
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


def upgrade() -> None:
    """Add and backfill links.url_hash, move the unique index to it; add runs.owner."""
    op.add_column("links", sa.Column("url_hash", sa.String(64)))
    bind = op.get_bind()
    links = sa.table("links", sa.column("id", sa.Integer), sa.column("url", sa.Text),
                     sa.column("url_hash", sa.String(64)))
    rows = [{"b_id": id_, "b_hash": _digest(url)} for id_, url in bind.execute(sa.select(links.c.id, links.c.url))]
    if rows:
        bind.execute(links.update().where(links.c.id == sa.bindparam("b_id"))
                     .values(url_hash=sa.bindparam("b_hash")), rows)
    with op.batch_alter_table("links") as batch:
        batch.alter_column("url_hash", existing_type=sa.String(64), nullable=False)
        batch.drop_constraint("uq_links_url", type_="unique")
        batch.create_unique_constraint("uq_links_url_hash", ["url_hash"])
    op.add_column("runs", sa.Column("owner", sa.String(128)))


def downgrade() -> None:
    """Back to a unique links.url (fails, as 0001 would, if a URL is too long for it)."""
    op.drop_column("runs", "owner")
    with op.batch_alter_table("links") as batch:
        batch.drop_constraint("uq_links_url_hash", type_="unique")
        batch.create_unique_constraint("uq_links_url", ["url"])
        batch.drop_column("url_hash")
