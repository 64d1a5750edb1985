"""Read-side queries of the report: plain rows out of the database, no SQLAlchemy types leak.

The report model (checker.report.model) is built from these rows alone; it never
touches the network (DESIGN.md, "The report reads only the database").
Queries are written for speed on 25,000 links: one query per table, positional
tuples, the history limited per link by a window function (SQLite >= 3.25 and
PostgreSQL both have ROW_NUMBER).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Text, and_, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..archive.base import Fidelity
from .paces import all_paces
from .schema import checks, links, notes, occurrences, runs, snapshots

__all__ = ["LinkRecord", "OccurrenceRecord", "SnapshotRecord", "RunRecord",
           "ReportRows", "fetch_report_rows", "engine_of"]


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """One row of ``links`` with the columns the report shows."""

    id: int
    url: str
    display_url: str
    host: str
    active: bool
    at_risk: bool
    status: str | None
    health: str
    http_status: int | None
    final_url: str | None
    title: str | None
    error: str | None
    latency_ms: int | None
    checked_at: datetime | None
    first_failing_at: datetime | None
    dead_since: datetime | None
    revived_at: datetime | None


@dataclass(frozen=True, slots=True)
class OccurrenceRecord:
    """Where a link is cited: note path and 1-based line."""

    link_id: int
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """One archived copy of a link."""

    link_id: int
    service: str
    archive_url: str | None
    captured_at: datetime
    http_status: int | None
    created_at: datetime
    fidelity: str | None = None      # local copies: "partial: text ..., pictures 3/10 (lost 7) ..."


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run with its counts (``counts`` is ``{"status": {...}, "health": {...}}``)."""

    id: int
    kind: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    links_total: int
    links_checked: int
    counts: dict[str, Any] | None
    notes_scanned: int = 0
    notes_skipped: int = 0


@dataclass(frozen=True, slots=True)
class ReportRows:
    """Everything the report model needs, read in one connection."""

    links: tuple[LinkRecord, ...]
    occurrences: tuple[OccurrenceRecord, ...]
    history: dict[int, tuple[tuple[str, datetime], ...]]   # link id -> (status, checked_at), oldest first
    snapshots: tuple[SnapshotRecord, ...]
    runs: tuple[RunRecord, ...]
    note_paths: tuple[str, ...] = ()     # every note read (not deleted), cited links or not
    paces: tuple = ()          # LearnedPace per host (checker.pace), for the hosts view


def engine_of(store: Any) -> AsyncEngine:
    """The AsyncEngine of a Store (``.engine``) or the engine itself."""
    if isinstance(store, AsyncEngine):
        return store
    engine = getattr(store, "engine", None)
    if not isinstance(engine, AsyncEngine):
        raise TypeError(f"expected a Store or an AsyncEngine, got {type(store).__name__}")
    return engine


async def fetch_report_rows(store: Any, *, active_only: bool = True, history_per_link: int = 10,
                            runs_limit: int = 30) -> ReportRows:
    """Read links, occurrences, recent checks, snapshots and runs for the report."""
    async with engine_of(store).connect() as conn:
        link_rows = await _links(conn, active_only)
        occ_rows = await _occurrences(conn, active_only)
        hist_rows = await _history(conn, {r.id for r in link_rows}, history_per_link)
        snap_rows = await _snapshots(conn, active_only)
        run_rows = await _runs(conn, runs_limit)
        note_paths = await _note_paths(conn)
        paces = tuple(await all_paces(conn))
    return ReportRows(link_rows, occ_rows, hist_rows, snap_rows, run_rows, note_paths, paces)


async def _note_paths(conn: AsyncConnection) -> tuple[str, ...]:
    result = await conn.execute(select(notes.c.path).where(notes.c.deleted_at.is_(None)).order_by(notes.c.path))
    return tuple(r[0] for r in result)


def _raw(column: Any) -> Any:
    # Skip SQLAlchemy's per-value DateTime processing on SQLite (a regex per value:
    # seconds for 250,000 history rows); _utc parses the ISO text in C instead.
    # PostgreSQL's driver still returns datetime objects, which _utc passes on.
    return type_coerce(column, Text)


def _utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        # SQLite text has no offset (see below): parse it as UTC in one C call.
        if "+" in value[10:] or value.endswith("Z"):
            value = datetime.fromisoformat(value)
        else:
            return datetime.fromisoformat(value + "+00:00")
    # SQLite keeps no offset even for DateTime(timezone=True); the store writes
    # UTC, so naive values are UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _active(query: Any, active_only: bool) -> Any:
    return query.where(links.c.active.is_(True)) if active_only else query


async def _links(conn: AsyncConnection, active_only: bool) -> tuple[LinkRecord, ...]:
    c = links.c
    query = _active(select(
        c.id, c.url, c.display_url, c.host, c.active, c.at_risk, c.status, c.health,
        c.http_status, c.final_url, c.title, c.error, c.latency_ms, _raw(c.checked_at),
        _raw(c.first_failing_at), _raw(c.dead_since), _raw(c.revived_at),
    ), active_only).order_by(c.id)
    result = (await conn.execute(query)).all()
    out = []
    for r in result:
        out.append(LinkRecord(
            r[0], r[1], r[2], r[3], bool(r[4]), bool(r[5]), r[6], r[7] or "unknown", r[8], r[9],
            r[10], r[11], r[12], _utc(r[13]), _utc(r[14]), _utc(r[15]), _utc(r[16])))
    return tuple(out)


async def _occurrences(conn: AsyncConnection, active_only: bool) -> tuple[OccurrenceRecord, ...]:
    o = occurrences.c
    query = (select(o.link_id, notes.c.path, func.min(o.line))
             .join(notes, notes.c.id == o.note_id)
             .where(notes.c.deleted_at.is_(None)))
    if active_only:
        query = query.join(links, links.c.id == o.link_id).where(links.c.active.is_(True))
    # One row per (link, note, line): several columns on one line are one citation.
    query = query.group_by(o.link_id, notes.c.path, o.line).order_by(o.link_id, notes.c.path, o.line)
    result = await conn.execute(query)
    return tuple(OccurrenceRecord(r[0], r[1], r[2]) for r in result)


async def _history(conn: AsyncConnection, wanted: set[int],
                   per_link: int) -> dict[int, tuple[tuple[str, datetime], ...]]:
    if per_link <= 0:
        return {}
    k = checks.c
    # A plain scan in index order (ix_checks_link_time), trimmed here to the last
    # ``per_link`` checks: on SQLite a ROW_NUMBER() window over 250,000 checks took
    # 2.5 s against 0.7 s for this (bench/bench_report.py).
    # (No join with links: the wanted ids are known, and the join costs a lookup a row.)
    query = select(k.link_id, k.status, _raw(k.checked_at)).order_by(k.link_id, k.checked_at)
    result = (await conn.execute(query)).all()
    grouped: dict[int, list[tuple[str, Any]]] = {}
    for link_id, status, at in result:
        if link_id in wanted:
            grouped.setdefault(link_id, []).append((status, at))
    # Plain tuples, not one object per check: 250,000 objects cost seconds.
    return {link_id: tuple((status, _utc(at)) for status, at in points[-per_link:])
            for link_id, points in grouped.items()}


async def _snapshots(conn: AsyncConnection, active_only: bool) -> tuple[SnapshotRecord, ...]:
    s = snapshots.c
    query = select(s.link_id, s.service, s.archive_url, _raw(s.captured_at), s.http_status,
                   _raw(s.created_at), s.text_chars, s.live_text_chars, s.pictures_kept, s.pictures_found,
                   s.copy_bytes, s.warc_bytes, s.fidelity_note)
    if active_only:
        query = query.join(links, and_(links.c.id == s.link_id, links.c.active.is_(True)))
    result = await conn.execute(query.order_by(s.link_id, s.captured_at))
    return tuple(SnapshotRecord(r[0], r[1], r[2], _utc(r[3]), r[4], _utc(r[5]), _fidelity(r)) for r in result)


def _fidelity(r) -> str | None:
    if r.text_chars is None:
        return None
    return Fidelity(r.text_chars, r.live_text_chars or 0, r.pictures_kept or 0, r.pictures_found or 0,
                    r.copy_bytes or 0, r.warc_bytes or 0).summary()


async def _runs(conn: AsyncConnection, limit: int) -> tuple[RunRecord, ...]:
    r = runs.c
    query = (select(r.id, r.kind, r.state, r.started_at, r.finished_at, r.links_total,
                    r.links_checked, r.counts, r.notes_scanned, r.notes_skipped)
             # Archive runs check nothing: they would flatten the health trend.
             .where(r.kind != "archive")
             .order_by(r.started_at.desc(), r.id.desc()).limit(max(limit, 2)))
    result = await conn.execute(query)
    rows = [RunRecord(x[0], x[1], x[2], _utc(x[3]), _utc(x[4]), x[5] or 0, x[6] or 0, x[7], x[8] or 0,
                      x[9] or 0) for x in result]
    rows.reverse()  # oldest first: the trend reads left to right
    return tuple(rows)
