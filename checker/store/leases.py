"""Named leases with expiry: one holder at a time, taken over once it expires.

Each operation is a single statement, atomic on SQLite and PostgreSQL alike:
acquiring is an upsert that only overwrites a lease that expired or that the
same owner holds, and says by RETURNING whether it won.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import leases, to_utc
from .sqlutil import insert_for

__all__ = ["acquire", "renew", "release"]


async def acquire(conn: AsyncConnection, name: str, owner: str, ttl: float, now: datetime) -> bool:
    """Take the lease ``name`` for ``ttl`` seconds if it is free, expired or already ours."""
    now = to_utc(now)
    stmt = insert_for(conn.dialect.name, leases).values(
        name=name, owner=owner, expires_at=now + timedelta(seconds=ttl))
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={"owner": stmt.excluded.owner, "expires_at": stmt.excluded.expires_at},
        where=or_(leases.c.expires_at <= now, leases.c.owner == owner),
    ).returning(leases.c.owner)
    return (await conn.execute(stmt)).first() is not None


async def renew(conn: AsyncConnection, name: str, owner: str, ttl: float, now: datetime) -> bool:
    """Extend our lease; False when another owner holds it now (ours expired and was taken)."""
    result = await conn.execute(
        update(leases).where(and_(leases.c.name == name, leases.c.owner == owner))
        .values(expires_at=to_utc(now) + timedelta(seconds=ttl)))
    return result.rowcount == 1


async def release(conn: AsyncConnection, name: str, owner: str) -> None:
    """Give the lease up (nothing happens when another owner holds it)."""
    await conn.execute(delete(leases).where(and_(leases.c.name == name, leases.c.owner == owner)))
