"""Read queries of the daemon's HTTP API and metrics (only store/ imports SQLAlchemy).

Rows come out as plain dicts of JSON-ready values (datetimes as ISO 8601 UTC), so
the web layer never sees a SQLAlchemy type. Every query is one statement, cheap on
25,000 links (group-bys over ``links``, a LIMIT/OFFSET page, counts).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from .schema import archive_jobs, checks, links, snapshots

__all__ = [
    "engine_of", "ping", "list_links", "link_counts", "due_count", "archive_counts",
    "stored_check_count", "interrupt_stale_runs", "duplicate_probe_ids", "LINK_FIELDS",
]

#: Columns of ``links`` returned by the API, in order.
LINK_FIELDS = ("id", "url", "display_url", "host", "active", "at_risk", "status", "health",
               "http_status", "final_url", "title", "error", "latency_ms", "checked_at",
               "next_check_at", "fail_streak", "first_failing_at", "dead_since", "revived_at")


def engine_of(store_or_engine: Any) -> AsyncEngine:
    """The AsyncEngine of a Store (``.engine``) or the engine itself."""
    return getattr(store_or_engine, "engine", store_or_engine)


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        # SQLite hands back naive datetimes: they were written as UTC.
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return value


def _row(row: Any) -> dict[str, Any]:
    return {key: _iso(value) for key, value in row._mapping.items()}


async def ping(store: Any) -> bool:
    """True when the database answers a trivial query."""
    async with engine_of(store).connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


def _link_filter(status: str | None, health: str | None, q: str | None, active: bool | None) -> list:
    where = []
    if status:
        # "unchecked" is how the API and the metrics name a link with no check yet (NULL).
        words = status.split(",")
        known = [w for w in words if w != "unchecked"]
        either = [links.c.status.in_(known)] if known else []
        where.append(or_(links.c.status.is_(None), *either) if "unchecked" in words else either[0])
    if health:
        where.append(links.c.health.in_(health.split(",")) if "," in health else links.c.health == health)
    if active is not None:
        where.append(links.c.active == active)
    if q:
        # LIKE with escaped wildcards: the query is text to find, not a pattern.
        needle = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(or_(func.lower(links.c.url).like(needle, escape="\\"),
                         func.lower(links.c.display_url).like(needle, escape="\\"),
                         func.lower(func.coalesce(links.c.title, "")).like(needle, escape="\\")))
    return where


async def list_links(store: Any, *, status: str | None = None, health: str | None = None,
                     q: str | None = None, active: bool | None = True, limit: int = 100,
                     offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, one page of links) filtered by status, health and a substring ``q``."""
    where = and_(True, *_link_filter(status, health, q, active))
    cols = [links.c[name] for name in LINK_FIELDS]
    async with engine_of(store).connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(links).where(where))).scalar_one()
        rows = await conn.execute(select(*cols).where(where).order_by(links.c.id).limit(limit).offset(offset))
        return int(total), [_row(r) for r in rows]


async def link_counts(store: Any, *, active_only: bool = True) -> dict[str, dict[str, int]]:
    """Counts of links by status (``unchecked`` for none yet) and by health."""
    where = links.c.active.is_(True) if active_only else and_(True)
    async with engine_of(store).connect() as conn:
        by_status = await conn.execute(select(links.c.status, func.count()).where(where).group_by(links.c.status))
        by_health = await conn.execute(select(links.c.health, func.count()).where(where).group_by(links.c.health))
        return {"status": {(s or "unchecked"): int(n) for s, n in by_status},
                "health": {(h or "unknown"): int(n) for h, n in by_health}}


async def due_count(store: Any, now: datetime) -> int:
    """How many active links are due (never checked, or next_check_at passed)."""
    # The same test as Store.due_links: never checked, or next_check_at passed.
    due = and_(links.c.active.is_(True), or_(links.c.checked_at.is_(None), links.c.next_check_at <= now))
    async with engine_of(store).connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(links).where(due))).scalar_one())


async def archive_counts(store: Any) -> dict[str, Any]:
    """Archive jobs by (service, action, state) and snapshots by service."""
    async with engine_of(store).connect() as conn:
        jobs = await conn.execute(
            select(archive_jobs.c.service, archive_jobs.c.action, archive_jobs.c.state, func.count())
            .group_by(archive_jobs.c.service, archive_jobs.c.action, archive_jobs.c.state))
        snaps = await conn.execute(select(snapshots.c.service, func.count()).group_by(snapshots.c.service))
        return {"jobs": [(s, a, st, int(n)) for s, a, st, n in jobs],
                "snapshots": {s: int(n) for s, n in snaps}}


async def stored_check_count(store: Any) -> int:
    """How many Check rows the database holds."""
    async with engine_of(store).connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(checks))).scalar_one())


async def duplicate_probe_ids(store: Any) -> int:
    """How many probe ids appear on more than one Check row (always 0: the column is unique)."""
    dup = select(checks.c.probe_id).group_by(checks.c.probe_id).having(func.count() > 1).subquery()
    async with engine_of(store).connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(dup))).scalar_one())


async def interrupt_stale_runs(store: Any, kind: str, now: datetime) -> int:
    """Mark runs of ``kind`` left ``running`` by a killed process as interrupted.

    The one write here: only the lease holder calls it, so no live daemon owns them.
    """
    # With the counts their stored checks give (they used to keep links_checked = 0).
    return await store.close_stale_runs(now, kind=kind, any_owner=True)
