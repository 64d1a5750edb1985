"""The pace learned per host (host_pace rows <-> checker.pace.LearnedPace)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..pace import LearnedPace
from .schema import host_pace
from .sqlutil import chunks, insert_for

__all__ = ["load", "save", "all_paces"]

_FIELDS = ("concurrency", "interval", "stress_concurrency", "stress_rate", "last_stress",
           "requests", "refusals")


def _when(unix: float | None) -> datetime | None:
    return datetime.fromtimestamp(unix, timezone.utc) if unix is not None else None


def _unix(when: datetime | None) -> float | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _pace(row) -> LearnedPace:
    return LearnedPace(host=row.host, concurrency=row.concurrency, interval=row.interval,
                       stress_concurrency=row.stress_concurrency, stress_rate=row.stress_rate,
                       last_stress=row.last_stress, last_stress_at=_unix(row.last_stress_at),
                       requests=row.requests, refusals=row.refusals, updated_at=_unix(row.updated_at))


async def load(conn: AsyncConnection, hosts: Iterable[str]) -> dict[str, LearnedPace]:
    """The stored pace of each of ``hosts`` that has one."""
    out: dict[str, LearnedPace] = {}
    for part in chunks(sorted(set(hosts)), 500):
        for row in await conn.execute(select(host_pace).where(host_pace.c.host.in_(part))):
            out[row.host] = _pace(row)
    return out


async def all_paces(conn: AsyncConnection, limit: int | None = None) -> list[LearnedPace]:
    """Stored paces, most recently stressed first, then by requests."""
    stmt = select(host_pace).order_by(host_pace.c.last_stress_at.desc().nulls_last(),
                                      host_pace.c.requests.desc(), host_pace.c.host)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_pace(row) for row in await conn.execute(stmt)]


async def save(conn: AsyncConnection, paces: Iterable[LearnedPace]) -> int:
    """Upsert each pace (a host's last stress is kept when this run saw none); returns the count."""
    rows = []
    for p in paces:
        row = {name: getattr(p, name) for name in _FIELDS}
        row.update(host=p.host, last_stress_at=_when(p.last_stress_at),
                   updated_at=_when(p.updated_at) or datetime.now(timezone.utc))
        rows.append(row)
    # Two statements, each sent with many rows (one statement per host was 0.6 s of CPU
    # for the corpus's 1,900 hosts): a calm run does not forget the last stress.
    for calm in (False, True):
        group = [row for row in rows if (row["last_stress_at"] is None) == calm]
        if not group:
            continue
        stmt = insert_for(conn.dialect.name, host_pace)
        update = {k: stmt.excluded[k] for k in group[0] if k != "host"}
        if calm:
            for k in ("last_stress", "last_stress_at", "stress_rate", "stress_concurrency"):
                update.pop(k)
        stmt = stmt.on_conflict_do_update(index_elements=["host"], set_=update)
        for part in chunks(group, 500):
            await conn.execute(stmt, part)
    return len(rows)
