"""Cluster-mode queries (PostgreSQL): due work by host slot, per-host pace rows, worker rows.

Only store/ imports SQLAlchemy; procrastinate's own tables are read here with plain SQL (the
queue depth), never written: procrastinate writes them. Every time in this module is the
database's clock (``now()`` / ``clock_timestamp()``), never a worker's: workers on machines
whose clocks disagree still agree on what is due and on each host's next allowed start.

A URL's slot is the first 32 bits of its MD5 modulo the host's per-host limit, computed the
same way here in SQL and in :func:`checker.cluster.slots.slot_of` in Python.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, AsyncIterator

from sqlalchemy import nulls_first, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import links
from ..errors import StoreError
from .sqlutil import reason
from .types import LinkState, link_state_from_row

__all__ = ["SLOT_HASH_SQL", "due_hashes", "due_in_slot", "db_now", "reserve_start", "defer_host",
           "report_worker", "queue_depth", "workers", "queued_locks", "has_queue"]

#: The 32-bit slot hash of links.url in SQL (equal to int(md5(url).hexdigest()[:8], 16)).
SLOT_HASH_SQL = "('x' || substr(md5(url), 1, 8))::bit(32)::bigint"
_DUE = "active AND (checked_at IS NULL OR next_check_at <= now())"


@asynccontextmanager
async def _single(store: Any) -> AsyncIterator[AsyncConnection]:
    """A connection for one statement, in autocommit: one round trip, no BEGIN/COMMIT.

    A worker books a start for every request: on a busy machine each extra round trip to
    PostgreSQL costs about a millisecond of a loaded event loop (bench/cluster_bench.py).
    """
    try:
        async with store.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot use database {store.url}: {reason(exc)}") from exc


async def due_hashes(store: Any, limit: int) -> list[tuple[str, int]]:
    """(host, slot hash) of up to ``limit`` due links, oldest-due first (the producer's input)."""
    query = text(f"SELECT host, {SLOT_HASH_SQL} AS h FROM links WHERE {_DUE} "
                 "ORDER BY next_check_at NULLS FIRST, id LIMIT :limit")
    async with _single(store) as conn:
        return [(host, int(h)) for host, h in await conn.execute(query, {"limit": limit})]


async def due_in_slot(store: Any, host: str, slot: int, slots: int, limit: int) -> list[LinkState]:
    """Due links of one host slot, by the database's clock, oldest-due first."""
    query = (select(links).where(links.c.host == host, text(_DUE),
                                 text(f"{SLOT_HASH_SQL} % :slots = :slot"))
             .order_by(nulls_first(links.c.next_check_at.asc()), links.c.id).limit(limit)
             .params(slots=slots, slot=slot))
    async with _single(store) as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [link_state_from_row(row) for row in rows]


async def db_now(store: Any) -> datetime:
    """The database server's current time (aware)."""
    async with _single(store) as conn:
        return (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()


async def reserve_start(store: Any, host: str, interval: float) -> float:
    """Book the host's next request start ``interval`` after the previous one; seconds to wait.

    One upsert: the row lock orders concurrent bookings on one host, from any worker, and the
    wait is a duration on the database's clock, so a worker's own clock never enters it.
    """
    query = text(
        "INSERT INTO host_clock AS p (host, next_start_at, last_start_at) "
        "VALUES (:host, clock_timestamp() + make_interval(secs => :interval), clock_timestamp()) "
        "ON CONFLICT (host) DO UPDATE SET "
        "  last_start_at = GREATEST(p.next_start_at, clock_timestamp()), "
        "  next_start_at = GREATEST(p.next_start_at, clock_timestamp()) + make_interval(secs => :interval) "
        "RETURNING EXTRACT(EPOCH FROM (last_start_at - clock_timestamp()))")
    async with _single(store) as conn:
        wait = (await conn.execute(query, {"host": host, "interval": float(interval)})).scalar_one()
    return max(0.0, float(wait))


async def defer_host(store: Any, host: str, seconds: float) -> None:
    """No request to ``host`` starts within ``seconds`` from now, on any worker (Retry-After)."""
    query = text(
        "INSERT INTO host_clock AS p (host, next_start_at) "
        "VALUES (:host, clock_timestamp() + make_interval(secs => :s)) "
        "ON CONFLICT (host) DO UPDATE SET next_start_at = "
        "  GREATEST(p.next_start_at, clock_timestamp() + make_interval(secs => :s))")
    async with _single(store) as conn:
        await conn.execute(query, {"host": host, "s": float(seconds)})


async def report_worker(store: Any, name: str, *, checks_total: int, per_minute: float,
                        in_flight: int, stopped: bool = False) -> None:
    """Upsert one worker's row: its counters, seen now (database clock)."""
    query = text(
        "INSERT INTO cluster_workers AS w (name, started_at, seen_at, checks_total, "
        "  checks_per_minute, in_flight, stopped_at) "
        "VALUES (:name, now(), now(), :total, :rate, :in_flight, CASE WHEN :stopped THEN now() END) "
        "ON CONFLICT (name) DO UPDATE SET seen_at = now(), checks_total = :total, "
        "  checks_per_minute = :rate, in_flight = :in_flight, "
        "  stopped_at = CASE WHEN :stopped THEN now() END")
    async with _single(store) as conn:
        await conn.execute(query, {"name": name, "total": checks_total, "rate": per_minute,
                                   "in_flight": in_flight, "stopped": stopped})


async def has_queue(store: Any) -> bool:
    """True when procrastinate's tables exist (PostgreSQL at revision 0005 or later)."""
    if getattr(store, "dialect", None) != "postgresql":
        return False
    async with store._read() as conn:
        found = await conn.execute(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL"))
        return bool(found.scalar_one())


async def queue_depth(store: Any) -> dict[tuple[str, str], int]:
    """(queue, status) -> jobs, for the jobs waiting or running."""
    query = text("SELECT queue_name, status::text, count(*) FROM procrastinate_jobs "
                 "WHERE status IN ('todo', 'doing') GROUP BY queue_name, status")
    async with store._read() as conn:
        return {(q, s): int(n) for q, s, n in await conn.execute(query)}


async def queued_locks(store: Any, prefix: str) -> set[str]:
    """The queueing locks of waiting jobs that start with ``prefix``."""
    query = text("SELECT queueing_lock FROM procrastinate_jobs WHERE status = 'todo' "
                 "AND queueing_lock LIKE :p")
    async with store._read() as conn:
        return {row[0] for row in await conn.execute(query, {"p": prefix.replace("%", r"\%") + "%"})}


async def workers(store: Any, alive_within: float) -> list[dict[str, Any]]:
    """Worker rows seen within ``alive_within`` seconds and not stopped, busiest first."""
    query = text(
        "SELECT name, started_at, seen_at, checks_total, checks_per_minute, in_flight, "
        "  EXTRACT(EPOCH FROM (now() - seen_at)) AS age FROM cluster_workers "
        "WHERE stopped_at IS NULL AND seen_at > now() - make_interval(secs => :alive) "
        "ORDER BY checks_per_minute DESC, name")
    async with store._read() as conn:
        return [dict(row) for row in (await conn.execute(query, {"alive": float(alive_within)})).mappings()]
