"""The database schema (SQLAlchemy Core). Alembic migrations create and upgrade it.

Tables:
  notes          one row per markdown file ever seen (deleted_at set when gone)
  links          one row per normalized URL; its latest verdict and health (a cache
                 of the checks table, always derivable from it)
  occurrences    link x note x line x col: where each link is cited
  runs           one row per audit or daemon batch, with its counts
  checks         one row per probe: the history that health is derived from
  snapshots      archived copies (Wayback captures, local WARC records, copies' fidelity)
  archive_resources  resources written in full into local WARCs (later ones are revisits)
  archive_jobs   the archive queue: survives restarts, nothing submitted twice
  leases         named leases with expiry (one daemon per database)
  host_pace      the pace learned per host (checker.pace): the next run starts from it
  host_clock     cluster mode: each host's next allowed request start, on the database clock
  cluster_workers cluster mode: each `linkhealth worker` process and its check rate

The cluster mode's queue itself (procrastinate's tables, PostgreSQL only) is created by
migration 0005 from a frozen copy of procrastinate's schema; it is not described here.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData,
    String, Table, Text, UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

__all__ = ["UTCDateTime", "to_utc", "url_digest", "metadata", "notes", "links", "occurrences", "runs", "checks",
           "snapshots", "archive_resources", "archive_jobs", "leases", "host_pace", "host_clock", "cluster_workers"]

# Naming convention so that Alembic migrations get stable constraint names on
# both SQLite (batch mode) and PostgreSQL.
metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})



class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every dialect.

    SQLite has no time zone type: SQLAlchemy stores the wall-clock digits and
    drops ``tzinfo`` (and returns naive values), so values are converted to UTC
    before binding and marked UTC when read. A naive value is taken as UTC.
    PostgreSQL's ``timestamptz`` round-trips aware values as they are.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        """Convert to aware UTC before binding."""
        return to_utc(value) if value is not None else None

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        """Mark naive values (SQLite) as UTC; convert aware ones to UTC."""
        return to_utc(value) if value is not None else None


def to_utc(value: datetime) -> datetime:
    """The same instant as an aware UTC datetime (a naive value is taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


TS = UTCDateTime()


def url_digest(url: str) -> str:
    """The key of a link row: SHA-256 hex of its normalized URL (links.url_hash)."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


def _url_digest_default(context: Any) -> str:
    # An INSERT that names only url (a test, a script) still gets its key.
    return url_digest(context.get_current_parameters()["url"])


notes = Table(
    "notes", metadata,
    Column("id", Integer, primary_key=True),
    Column("path", Text, nullable=False, unique=True),
    Column("sha256", String(64), nullable=False),
    Column("mtime", Float, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("seen_at", TS, nullable=False),
    Column("deleted_at", TS),
)

links = Table(
    "links", metadata,
    Column("id", Integer, primary_key=True),
    Column("url", Text, nullable=False),                     # normalized URL
    # The key: SHA-256 hex of url (url_digest below). A URL of a few KB is too long
    # for a PostgreSQL btree index row (2704 bytes); its digest never is.
    Column("url_hash", String(64), nullable=False, unique=True, default=_url_digest_default),
    Column("display_url", Text, nullable=False),             # as first written
    Column("host", Text, nullable=False, index=True),
    Column("active", Boolean, nullable=False, default=True),  # cited by at least one note
    Column("at_risk", Boolean, nullable=False, default=False),
    Column("status", String(16)),                            # latest check's status
    Column("health", String(16), nullable=False, default="unknown"),
    Column("http_status", Integer),
    Column("final_url", Text),
    Column("title", Text),
    Column("error", Text),
    Column("latency_ms", Integer),
    Column("checked_at", TS),
    Column("fail_streak", Integer, nullable=False, default=0),  # failing checks since last good
    Column("first_failing_at", TS),    # start of the current failing streak
    Column("dead_since", TS),
    Column("revived_at", TS),          # last time a dead link came back
    Column("next_check_at", TS, index=True),
    Column("created_at", TS, nullable=False),
)

occurrences = Table(
    "occurrences", metadata,
    Column("id", Integer, primary_key=True),
    Column("link_id", Integer, ForeignKey("links.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("note_id", Integer, ForeignKey("notes.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("line", Integer, nullable=False),
    Column("col", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("in_code", Boolean, nullable=False, default=False),
    Column("written", Text, nullable=False),                 # the URL exactly as in the note
    UniqueConstraint("note_id", "line", "col", name="uq_occurrences_place"),
)

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),              # audit | daemon | archive
    Column("state", String(16), nullable=False),             # running | done | interrupted | failed
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS),
    Column("notes_scanned", Integer, nullable=False, default=0),
    Column("notes_skipped", Integer, nullable=False, default=0),
    Column("links_total", Integer, nullable=False, default=0),
    Column("links_checked", Integer, nullable=False, default=0),
    Column("counts", JSON),                                  # {"status": {...}, "health": {...}}
    Column("message", Text),
    Column("owner", String(128)),                            # host:pid of the process running it
)

checks = Table(
    "checks", metadata,
    Column("id", Integer, primary_key=True),
    Column("probe_id", String(36), nullable=False, unique=True),  # idempotency key of one probe
    Column("link_id", Integer, ForeignKey("links.id", ondelete="CASCADE"), nullable=False),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="SET NULL")),
    Column("checked_at", TS, nullable=False),
    Column("status", String(16), nullable=False),
    Column("cause", String(32)),
    Column("http_status", Integer),
    Column("final_url", Text),
    Column("title", Text),
    Column("error", Text),
    Column("rule", Text),
    Column("latency_ms", Integer),
    Column("elapsed_ms", Integer),
    Column("attempts", Integer, nullable=False, default=1),
    Column("method", String(8)),
    Column("redirects", JSON),                               # [{"url", "status"}, ...]
    Index("ix_checks_link_time", "link_id", "checked_at"),
)

snapshots = Table(
    "snapshots", metadata,
    Column("id", Integer, primary_key=True),
    Column("link_id", Integer, ForeignKey("links.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("service", String(16), nullable=False),           # wayback | local
    Column("archive_url", Text),                             # wayback URL, or local readable copy path
    Column("local_path", Text),                              # WARC file for local copies
    Column("warc_offset", BigInteger),
    Column("digest", String(80)),                            # payload digest (dedup of local copies)
    Column("captured_at", TS, nullable=False),
    Column("http_status", Integer),
    Column("created_at", TS, nullable=False),
    # Local copies: measured after writing (issue 11); NULL for Wayback captures.
    Column("text_chars", Integer),
    Column("live_text_chars", Integer),
    Column("pictures_kept", Integer),
    Column("pictures_found", Integer),
    Column("copy_bytes", BigInteger),
    Column("warc_bytes", BigInteger),
    Column("fidelity_note", Text),
)

archive_resources = Table(
    "archive_resources", metadata,
    Column("digest", String(80), primary_key=True),          # WARC-Payload-Digest
    Column("url", Text, nullable=False),                     # where it was first written in full
    Column("warc_date", String(32), nullable=False),
    Column("warc_path", Text, nullable=False),
    Column("created_at", TS, nullable=False),
)

archive_jobs = Table(
    "archive_jobs", metadata,
    Column("id", Integer, primary_key=True),
    Column("link_id", Integer, ForeignKey("links.id", ondelete="CASCADE"), nullable=False),
    Column("service", String(16), nullable=False),
    Column("action", String(8), nullable=False),             # save | lookup
    Column("state", String(16), nullable=False),             # pending | submitted | done | failed | not-archivable
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_try_at", TS),
    Column("external_id", Text),                             # e.g. the SPN2 job_id while submitted
    Column("last_error", Text),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_archive_jobs_state", "state", "next_try_at"),
    UniqueConstraint("link_id", "service", "action", name="uq_archive_jobs_link_service_action"),
)

leases = Table(
    "leases", metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("expires_at", TS, nullable=False),
)

host_clock = Table(
    "host_clock", metadata,
    Column("host", Text, primary_key=True),
    Column("next_start_at", TS, nullable=False),   # no request to the host starts before it
    Column("last_start_at", TS),
)

cluster_workers = Table(
    "cluster_workers", metadata,
    Column("name", String(128), primary_key=True),   # host:pid:random of one worker process
    Column("started_at", TS, nullable=False),
    Column("seen_at", TS, nullable=False),           # the database clock at its last report
    Column("checks_total", BigInteger, nullable=False, default=0),
    Column("checks_per_minute", Float, nullable=False, default=0.0),
    Column("in_flight", Integer, nullable=False, default=0),
    Column("stopped_at", TS),
)

host_pace = Table(
    "host_pace", metadata,
    Column("host", String(255), primary_key=True),
    Column("concurrency", Float, nullable=False),
    Column("interval", Float, nullable=False),
    Column("stress_concurrency", Float),
    Column("stress_rate", Float),
    Column("last_stress", Text),
    Column("last_stress_at", TS),
    Column("requests", Integer, nullable=False, default=0),
    Column("refusals", Integer, nullable=False, default=0),
    Column("updated_at", TS, nullable=False),
)
