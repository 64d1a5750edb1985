"""Runs left behind: an audit killed with SIGKILL (or a power cut) never finishes its run
row. A later command closes it as ``interrupted`` with the counts its stored checks give,
and the next audit can resume it (skip the links it already checked).

A run records its owner (``host:pid``). It is stale when its owner is a process of this
host that no longer exists; a run owned by another host is left to that host (or, for
the daemon's runs, to the next holder of the daemon lease).
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import checks, links, runs
from .sqlutil import chunks

__all__ = ["this_owner", "owner_gone", "stale_run_ids", "close_runs", "resumable_audit"]

STALE_MESSAGE = "the process ended without finishing (closed by a later command)"


def this_owner() -> str:
    """The owner written on the runs this process starts: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_gone(owner: str | None) -> bool:
    """Whether the process that owns a run is known to have ended (only this host can tell)."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)        # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:         # it exists, as another user
        return False
    return False


async def stale_run_ids(conn: AsyncConnection, *, kind: str | None = None, any_owner: bool = False) -> list[int]:
    """Runs still marked running whose owner is gone (``any_owner``: every running one of ``kind``)."""
    query = select(runs.c.id, runs.c.owner).where(runs.c.state == "running")
    if kind is not None:
        query = query.where(runs.c.kind == kind)
    return [id_ for id_, owner in await conn.execute(query) if any_owner or owner_gone(owner)]


async def close_runs(conn: AsyncConnection, run_ids: Iterable[int], now: datetime,
                     message: str = STALE_MESSAGE) -> int:
    """Mark runs interrupted, with links_checked and counts from their stored checks."""
    closed = 0
    for run_id in run_ids:
        statuses = Counter({status: int(n) for status, n in await conn.execute(
            select(checks.c.status, func.count()).where(checks.c.run_id == run_id).group_by(checks.c.status))})
        healths = Counter({health: int(n) for health, n in await conn.execute(
            select(links.c.health, func.count(func.distinct(links.c.id)))
            .join(checks, checks.c.link_id == links.c.id).where(checks.c.run_id == run_id)
            .group_by(links.c.health))})
        checked = int((await conn.execute(select(func.count(func.distinct(checks.c.link_id)))
                                          .where(checks.c.run_id == run_id))).scalar_one())
        result = await conn.execute(update(runs).where(and_(runs.c.id == run_id, runs.c.state == "running"))
                                    .values(state="interrupted", finished_at=now, links_checked=checked,
                                            counts={"status": dict(statuses), "health": dict(healths)},
                                            message=message))
        closed += result.rowcount or 0
    return closed


async def resumable_audit(conn: AsyncConnection, now: datetime, within: timedelta) -> tuple[list[int], set[str]]:
    """The interrupted audits since the last finished one (started within ``within``), and
    the URLs they checked: what the next audit need not check again."""
    last_done = (await conn.execute(select(func.max(runs.c.id)).where(
        and_(runs.c.kind == "audit", runs.c.state == "done")))).scalar_one()
    query = select(runs.c.id).where(and_(runs.c.kind == "audit", runs.c.state == "interrupted",
                                         runs.c.started_at >= now - within))
    if last_done is not None:
        query = query.where(runs.c.id > last_done)
    run_ids = sorted((await conn.execute(query)).scalars())
    urls: set[str] = set()
    for part in chunks(run_ids):
        urls.update((await conn.execute(select(links.c.url).distinct()
                                        .join(checks, checks.c.link_id == links.c.id)
                                        .where(checks.c.run_id.in_(part)))).scalars())
    return run_ids, urls
