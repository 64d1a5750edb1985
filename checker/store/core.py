"""The Store: linkhealth's one door to the database (SQLite or PostgreSQL, async).

Reads open a connection, read, and let go. Writes other than checks are one
transaction each (``BEGIN IMMEDIATE`` on SQLite, so that a writer waits for the
lock instead of failing). Checks go through the single batching writer
(:mod:`checker.store.writer`): :meth:`Store.record` only enqueues.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Callable, Iterable, Mapping, Sequence

from sqlalchemy import and_, bindparam, desc, nulls_first, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import StoreError
from ..models import CheckResult, HealthState, Note, Reference, Target
from ..pace import LearnedPace
from . import leases as _leases
from . import runs as _runs
from . import paces as _paces
from .engine import IMMEDIATE, create_engine, mask_url
from .migrate import HEAD, current_revision, upgrade_engine
from .schema import checks, links, runs, to_utc, url_digest
from .sqlutil import chunks, reason
from .sync import sync_notes as _sync_notes
from .types import LinkState, SyncStats, link_state_from_row
from .writer import WRITE_INTERVAL, CheckWriter, PendingCheck, new_probe_id

__all__ = ["Store"]


class Store:
    """Async access to linkhealth's database; open with :meth:`Store.open`."""

    def __init__(self, engine: AsyncEngine, url: str, *, batch_size: int = 200,
                 batch_interval: float = WRITE_INTERVAL) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
        self.url = mask_url(url)          # password masked: safe for messages and logs
        self._writer = CheckWriter(engine, where=self.url, batch_size=batch_size,
                                   interval=batch_interval)
        self._writer.start()

    @classmethod
    async def open(cls, url: str, *, upgrade: bool = True, batch_size: int = 200,
                   batch_interval: float = WRITE_INTERVAL) -> "Store":
        """Open the database at ``url``; migrate it to head first unless ``upgrade=False``."""
        engine = create_engine(url)
        try:
            if upgrade:
                await upgrade_engine(engine)
            else:
                current, head = await current_revision(engine), HEAD
                if current != head:
                    raise StoreError(f"schema is at revision {current or 'none'}, not {head}: "
                                     "run `linkhealth db upgrade`")
        except Exception as exc:
            await engine.dispose()
            why = str(exc) if isinstance(exc, StoreError) else reason(exc)
            raise StoreError(f"cannot open database {mask_url(url)}: {why}") from exc
        return cls(engine, url, batch_size=batch_size, batch_interval=batch_interval)

    async def close(self) -> None:
        """Flush the writer and release the connections."""
        try:
            await self._writer.close()
        finally:
            await self.engine.dispose()

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def begin(self):
        """A write transaction for other store modules (``async with store.begin() as conn``).

        Prefer it to ``engine.begin()`` for writes: on SQLite it takes the write lock
        first (``BEGIN IMMEDIATE``), so a read-then-write transaction waits for the
        check writer instead of failing with "database is locked".
        """
        return self._write()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction; database faults become StoreError."""
        try:
            async with self.engine.connect() as conn:
                if self.dialect == "sqlite":
                    await conn.execution_options(**{IMMEDIATE: True})
                async with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write to database {self.url}: {reason(exc)}") from exc

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading; database faults become StoreError."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read database {self.url}: {reason(exc)}") from exc

    # -- notes and occurrences -------------------------------------------------

    async def note_hashes(self) -> dict[str, str]:
        """Path -> sha256 of every live (not deleted) note."""
        from .schema import notes
        async with self._read() as conn:
            rows = await conn.execute(select(notes.c.path, notes.c.sha256)
                                      .where(notes.c.deleted_at.is_(None)))
            return {path: sha for path, sha in rows}

    async def sync_notes(self, notes: Sequence[Note],
                         refs: Mapping[str, Sequence[tuple[Reference, Target]]],
                         *, roots: Sequence[str] | None = None, now: datetime) -> SyncStats:
        """Store one scan: upsert notes, replace occurrences, retire vanished notes, (de)activate links."""
        async with self._write() as conn:
            return await _sync_notes(conn, notes, refs, roots=roots, now=to_utc(now))

    async def set_at_risk(self, flags: Mapping[str, bool]) -> None:
        """Set links.at_risk by URL (URLs not stored are ignored)."""
        if not flags:
            return
        stmt = (update(links).where(links.c.url_hash == bindparam("b_hash"))
                .values(at_risk=bindparam("b_at_risk")))
        async with self._write() as conn:
            # Every scan passes every URL; only the flags that differ are written.
            current = {key: bool(flag) for key, flag in
                       await conn.execute(select(links.c.url_hash, links.c.at_risk))}
            wanted = {url_digest(url): bool(flag) for url, flag in flags.items()}
            rows = [{"b_hash": key, "b_at_risk": flag} for key, flag in wanted.items()
                    if key in current and current[key] != flag]
            for part in chunks(rows, 5000):
                await conn.execute(stmt, part)

    # -- planning ----------------------------------------------------------------

    async def link_states(self, urls: Iterable[str] | None = None) -> dict[str, LinkState]:
        """URL -> LinkState for the given URLs (those stored) or for every link."""
        async with self._read() as conn:
            if urls is None:
                rows = (await conn.execute(select(links))).mappings().all()
                return {row["url"]: link_state_from_row(row) for row in rows}
            out: dict[str, LinkState] = {}
            for part in chunks(dict.fromkeys(urls)):
                keys = [url_digest(url) for url in part]
                rows = (await conn.execute(select(links).where(links.c.url_hash.in_(keys)))).mappings()
                out.update({row["url"]: link_state_from_row(row) for row in rows})
            return out

    async def due_links(self, now: datetime, *, limit: int | None = None,
                        checked_before: datetime | None = None) -> list[LinkState]:
        """Active links due for a check, oldest-due first.

        Due means never checked, or ``next_check_at <= now``. With ``checked_before``
        (``--recheck-after``), due means never checked or last checked before it,
        whatever ``next_check_at`` says.
        """
        if checked_before is None:
            due = or_(links.c.checked_at.is_(None), links.c.next_check_at <= to_utc(now))
            order = [nulls_first(links.c.next_check_at.asc()), links.c.id]
        else:
            due = or_(links.c.checked_at.is_(None), links.c.checked_at < to_utc(checked_before))
            order = [nulls_first(links.c.checked_at.asc()), links.c.id]
        query = select(links).where(and_(links.c.active.is_(True), due)).order_by(*order)
        if limit is not None:
            query = query.limit(limit)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
            return [link_state_from_row(row) for row in rows]

    # -- runs --------------------------------------------------------------------

    async def start_run(self, kind: str, now: datetime) -> int:
        """Record the start of a run (audit, daemon batch, archive); returns its id."""
        async with self._write() as conn:
            result = await conn.execute(runs.insert().values(
                kind=kind, state="running", started_at=now, notes_scanned=0, notes_skipped=0,
                links_total=0, links_checked=0, owner=_runs.this_owner()).returning(runs.c.id))
            return int(result.scalar_one())

    async def close_stale_runs(self, now: datetime, *, kind: str | None = None,
                               any_owner: bool = False) -> int:
        """Close runs left ``running`` by a process that is gone, with their real counts.

        ``any_owner`` closes every running run of ``kind`` (the daemon, holding its
        lease, knows no other daemon runs). Returns how many were closed.
        """
        async with self._write() as conn:
            stale = await _runs.stale_run_ids(conn, kind=kind, any_owner=any_owner)
            return await _runs.close_runs(conn, stale, now) if stale else 0

    async def resumable_audit(self, now: datetime, within: timedelta) -> tuple[list[int], set[str]]:
        """Interrupted audits since the last finished one, and the URLs they checked."""
        async with self._read() as conn:
            return await _runs.resumable_audit(conn, to_utc(now), within)

    async def finish_run(self, run_id: int, *, state: str, now: datetime, notes_scanned: int = 0,
                         notes_skipped: int = 0, links_total: int = 0, links_checked: int = 0,
                         counts: dict | None = None, message: str | None = None) -> None:
        """Record how a run ended, with its counts."""
        async with self._write() as conn:
            await conn.execute(update(runs).where(runs.c.id == run_id).values(
                state=state, finished_at=now, notes_scanned=notes_scanned,
                notes_skipped=notes_skipped, links_total=links_total, links_checked=links_checked,
                counts=counts, message=message))

    async def runs(self, limit: int = 50) -> list[dict]:
        """The latest runs, newest first, as plain dicts."""
        async with self._read() as conn:
            rows = await conn.execute(select(runs).order_by(desc(runs.c.id)).limit(limit))
            return [dict(row) for row in rows.mappings()]

    # -- checks --------------------------------------------------------------------

    def record(self, run_id: int | None, result: CheckResult, state: HealthState,
               next_check_at: datetime | None, probe_id: str | None = None,
               advance: Callable[[HealthState], tuple[HealthState, datetime | None]] | None = None) -> None:
        """Queue one check for the writer (returns at once; see :meth:`flush`).

        With ``advance``, the link's new health is ``advance(health as stored when the
        check is written)``, so that concurrent checks of one link all count.
        """
        self._writer.put(PendingCheck.of(run_id, result, state, next_check_at,
                                         probe_id or new_probe_id(), advance))

    async def flush(self) -> None:
        """Wait until every check recorded so far is committed."""
        await self._writer.flush()

    async def history(self, link_id: int, limit: int = 50) -> list[dict]:
        """The latest checks of one link, newest first, as plain dicts."""
        query = (select(checks).where(checks.c.link_id == link_id)
                 .order_by(desc(checks.c.checked_at), desc(checks.c.id)).limit(limit))
        async with self._read() as conn:
            return [dict(row) for row in (await conn.execute(query)).mappings()]

    # -- leases ----------------------------------------------------------------------

    async def acquire_lease(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        """Take the named lease for ``ttl`` seconds if free, expired or ours; True when held."""
        async with self._write() as conn:
            return await _leases.acquire(conn, name, owner, ttl, now)

    async def renew_lease(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        """Extend our lease by ``ttl`` from ``now``; False when we no longer hold it."""
        async with self._write() as conn:
            return await _leases.renew(conn, name, owner, ttl, now)

    async def release_lease(self, name: str, owner: str) -> None:
        """Give up our lease (a no-op when someone else holds it)."""
        async with self._write() as conn:
            await _leases.release(conn, name, owner)

    # -- learned pace per host ---------------------------------------------------------

    async def load_paces(self, hosts: Iterable[str]) -> dict[str, LearnedPace]:
        """The pace learned for each of ``hosts`` in earlier runs (checker.pace)."""
        async with self._read() as conn:
            return await _paces.load(conn, hosts)

    async def save_paces(self, paces: Iterable[LearnedPace]) -> int:
        """Store the pace learned this run for each host; returns how many rows were written."""
        paces = list(paces)
        if not paces:
            return 0
        async with self._write() as conn:
            return await _paces.save(conn, paces)

    async def learned_paces(self, limit: int | None = None) -> list[LearnedPace]:
        """Stored paces, most recently stressed hosts first (report, `linkhealth status`)."""
        async with self._read() as conn:
            return await _paces.all_paces(conn, limit)
