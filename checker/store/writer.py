"""The single check writer: one task, fed by a list, commits checks in batches.

Each batch (up to ``batch_size`` rows, or whatever arrived within ``interval``
seconds of its first row) is ONE transaction: the Check rows and the updates of
their links. A crash therefore loses at most the batch in flight and never
leaves half of one. ``checks.probe_id`` is unique and inserted with
``ON CONFLICT DO NOTHING``, so a batch sent again adds nothing twice; the link
row is only updated for checks actually inserted.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import StoreError
from ..models import CheckResult, HealthState, Target
from .engine import IMMEDIATE
from .schema import checks, links, url_digest
from .sqlutil import PreparedMany, chunks, insert_for, link_ids_by_url, reason
from .types import HEALTH_COLUMNS, health_state_from_row

__all__ = ["CheckWriter", "PendingCheck", "WRITE_INTERVAL", "LIVE_WRITE_INTERVAL"]

#: Seconds a batch waits for more checks after its first one (unless it fills first). Each
#: batch costs about 20 round trips to the database driver's thread, each of which wakes
#: the event loop: at 0.5 s, a paced audit of the notes corpus (28 checks a second)
#: committed twice a second, 14 checks at a time. On a 6,000-URL slice of the simulation of
#: bench/corpus_pace.py, two runs side by side: 11.1 s of CPU and 18,400 wake-ups of the
#: main thread at 0.5 s, 10.2 s and 12,000 at 5 s. A process killed outright loses at most
#: this long of checks; they are checked again when the next audit resumes.
WRITE_INTERVAL = 5.0
#: The interval of a process that serves what it checks while it checks (the daemon's web
#: report and API): a check shows there within half a second.
LIVE_WRITE_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class PendingCheck:
    """One check waiting in the writer's queue: its row, not the page it came from (a
    batch of checks holding their bodies could hold 200 x 256 KiB)."""

    target: Target
    row: dict[str, Any]          # the checks row but its link_id (looked up when written)
    state: HealthState
    next_check_at: datetime | None
    # When given: the link's health after this check, from its health as stored at the
    # moment of writing (and when to check again). ``state`` and ``next_check_at`` are
    # then only what the caller expected: another process may have checked the link
    # since the caller read it, and its checks must count too.
    advance: Callable[[HealthState], tuple[HealthState, datetime | None]] | None = None

    @property
    def probe_id(self) -> str:
        return self.row["probe_id"]

    @classmethod
    def of(cls, run_id: int | None, result: CheckResult, state: HealthState, next_check_at: datetime | None,
           probe_id: str, advance: Callable[[HealthState], tuple[HealthState, datetime | None]] | None = None
           ) -> "PendingCheck":
        """The pending check of ``result``, its row made now."""
        return cls(result.target, _check_row(run_id, result, probe_id), state, next_check_at, advance)


class CheckWriter:
    """Batches checks from a queue into transactions; ``flush`` waits for the commit."""

    def __init__(self, engine: AsyncEngine, *, where: str, batch_size: int = 200,
                 interval: float = WRITE_INTERVAL, retries: int = 5) -> None:
        self._engine = engine
        self._where = where
        self._batch_size = batch_size
        self._interval = interval
        self._retries = retries
        # The batch being filled and the flushes waiting for it. A check is one append:
        # the writer wakes once per batch (its first check), not once per check (a
        # queue.get task, asyncio.wait and a timer for every check).
        self._pending: list[PendingCheck] = []
        self._queued = 0                  # checks ever queued (taken: all but the pending)
        self._waiters: list[tuple[int, asyncio.Future]] = []   # (checks queued before it, flush)
        self._stopping = False
        self._arrived = asyncio.Event()   # the batch has its first check (or a flush, or stop)
        self._full = asyncio.Event()      # write now: full, flushed, or stopping
        self._task: asyncio.Task | None = None
        self._error: StoreError | None = None
        self._error_told = False  # a caller has seen the fault: close() need not raise it again
        self.batches = 0          # committed transactions (for tests and metrics)
        self.written = 0          # Check rows inserted

    def start(self) -> None:
        """Start the writer task on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="linkhealth-store-writer")

    def put(self, item: PendingCheck) -> None:
        """Queue one check (never blocks; raises StoreError once the writer has failed)."""
        self._raise_if_failed()
        if self._task is None or self._task.done() or self._stopping:
            raise StoreError(f"the check writer of {self._where} is closed")
        self._pending.append(item)
        self._queued += 1
        self._arrived.set()
        if len(self._pending) >= self._batch_size:
            self._full.set()

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        self._raise_if_failed()
        if self._task is None or self._task.done():
            return
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiters.append((self._queued, done))
        self._arrived.set()
        self._full.set()
        await done

    async def close(self) -> None:
        """Flush, then stop the writer task."""
        if self._task is None:
            return
        try:
            if not self._task.done():
                self._stopping = True
                self._arrived.set()
                self._full.set()
                await asyncio.shield(self._task)
        finally:
            self._task = None
        if not self._error_told:
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            self._error_told = True
            raise self._error

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            if not self._full.is_set():
                # Whatever arrives within the interval of the batch's first check joins it.
                try:
                    await asyncio.wait_for(self._full.wait(), self._interval)
                except asyncio.TimeoutError:
                    pass
            stopping = self._stopping
            batch, self._pending = self._pending[:self._batch_size], self._pending[self._batch_size:]
            # A flush is answered with the batch that holds the last check queued before it.
            taken = self._queued - len(self._pending)
            waiters = [done for seq, done in self._waiters if seq <= taken]
            self._waiters = [(seq, done) for seq, done in self._waiters if seq > taken]
            if not self._pending and not self._waiters:
                self._arrived.clear()
                self._full.clear()
            elif len(self._pending) < self._batch_size and not self._waiters and not stopping:
                self._full.clear()       # a remainder below a batch: it waits its interval
            if not await self._commit(batch, waiters):
                return
            if stopping and not self._pending:
                return

    async def _commit(self, batch: list[PendingCheck], waiters: list[asyncio.Future]) -> bool:
        try:
            if batch:
                await self._write_with_retries(batch)
        except BaseException as exc:  # noqa: BLE001 - any fault ends the writer; callers see it
            self._error = exc if isinstance(exc, StoreError) else StoreError(
                f"cannot write checks to {self._where}: {reason(exc)}")
            self._error.__cause__ = exc
            for waiter in waiters + self._drain_waiters():
                if not waiter.done():
                    waiter.set_exception(self._error)
                    self._error_told = True
            if isinstance(exc, asyncio.CancelledError):
                raise
            return False
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        return True

    def _drain_waiters(self) -> list[asyncio.Future]:
        waiters, self._waiters = [done for _, done in self._waiters], []
        return waiters

    async def _write_with_retries(self, batch: list[PendingCheck]) -> None:
        delay = 0.2
        for attempt in range(self._retries):
            try:
                async with self._engine.connect() as conn:
                    if conn.dialect.name == "sqlite":
                        await conn.execution_options(**{IMMEDIATE: True})
                    async with conn.begin():
                        self.written += await write_batch(conn, batch)
                self.batches += 1
                return
            except (OperationalError, DBAPIError) as exc:
                # Locked database, lost connection, serialisation failure: the whole
                # batch rolled back, so sending it again is safe (probe_id is unique).
                if attempt + 1 >= self._retries or not _retryable(exc):
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


#: PostgreSQL SQLSTATEs after which the whole transaction can simply be sent again:
#: deadlock_detected (a scan updating links.active while this batch locks them) and
#: serialization_failure (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})


def _retryable(exc: DBAPIError) -> bool:
    return (isinstance(exc, OperationalError) or exc.connection_invalidated
            or getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES)


async def write_batch(conn: AsyncConnection, batch: list[PendingCheck]) -> int:
    """Insert the checks of ``batch`` and update their links, in the caller's transaction."""
    dialect = conn.dialect.name
    link_ids = await _link_ids(conn, dialect, batch)
    fresh: dict[str, PendingCheck] = {}
    for item in batch:
        fresh.setdefault(item.probe_id, item)
    items = list(fresh.values())
    for item in items:
        item.row["link_id"] = link_ids[item.target.url]    # the same on a batch sent again
    # Probes already stored (a batch sent again) are skipped by the unique index,
    # and RETURNING says which rows went in: only their links are updated. (Asking
    # first with SELECT .. IN is slower: a freshly filled table is not analyzed yet
    # and PostgreSQL scans it whole.)
    current = await _stored_health(conn, [item.row["link_id"] for item in items if item.advance is not None])
    insert = _INSERT_CHECKS["postgresql" if dialect == "postgresql" else "sqlite"]
    inserted = set((await conn.execute(insert, [item.row for item in items])).scalars())
    updates = []
    for item in items:
        if item.probe_id not in inserted:
            continue
        state, due = item.state, item.next_check_at
        if item.advance is not None:
            # Folded in order over the batch: two checks of one link in a batch both count.
            link_id = item.row["link_id"]
            state, due = item.advance(current[link_id])
            current[link_id] = state
        updates.append(_link_update(item.row, state, due))
    if updates:
        await _LINK_UPDATE.execute(conn, updates)
    return len(inserted)


# Built once per dialect, not per batch.
_INSERT_CHECKS = {dialect: insert_for(dialect, checks).on_conflict_do_nothing(index_elements=["probe_id"])
                  .returning(checks.c.probe_id) for dialect in ("sqlite", "postgresql")}


async def _link_ids(conn: AsyncConnection, dialect: str, batch: list[PendingCheck]) -> dict[str, int]:
    ids = await link_ids_by_url(conn, [item.target.url for item in batch])
    missing = [item.target for item in batch if item.target.url not in ids]
    if missing:
        # A check of a URL no scan stored (a direct call): create the link, inactive,
        # since no note cites it (links.active means "cited by a note").
        now = datetime.now(timezone.utc)
        values = {t.url: {"url": t.url, "url_hash": url_digest(t.url), "display_url": t.display_url or t.url,
                          "host": t.host or "", "active": False, "at_risk": False, "health": "unknown",
                          "fail_streak": 0, "created_at": now} for t in missing}
        await conn.execute(insert_for(dialect, links).on_conflict_do_nothing(index_elements=["url_hash"]),
                           list(values.values()))
        ids.update(await link_ids_by_url(conn, values))
    return ids


async def _stored_health(conn: AsyncConnection, link_ids: list[int]) -> dict[int, HealthState]:
    """The health of these links as committed now, locked until this transaction ends.

    This is the compare-and-set of the health fold: two audits checking one link at
    once each read it here in turn, so neither overwrites the other's failing check.
    SQLite: the writer's transaction holds the write lock (BEGIN IMMEDIATE) already.
    PostgreSQL: ``FOR NO KEY UPDATE`` in id order (no deadlock between two writers;
    it does not block the foreign-key checks of inserted check rows).
    """
    query = _STORED_HEALTH_LOCKED if conn.dialect.name == "postgresql" else _STORED_HEALTH
    out: dict[int, HealthState] = {}
    known: dict[tuple, HealthState] = {}    # most links share a few states (frozen: shared freely)
    for part in chunks(sorted(set(link_ids))):
        for id_, *health in await conn.execute(query, {"ids": part}):
            key = tuple(health)
            state = known.get(key)
            if state is None:
                state = known[key] = health_state_from_row(*key)
            out[id_] = state
    return out


# Only the columns of the health fold, not whole rows (nor a LinkState per link). Built
# once, not per batch; the expanding IN takes any list (one compiled form in the cache).
_STORED_HEALTH = (select(links.c.id, *(links.c[name] for name in HEALTH_COLUMNS))
                  .where(links.c.id.in_(bindparam("ids", expanding=True))).order_by(links.c.id))
_STORED_HEALTH_LOCKED = _STORED_HEALTH.with_for_update(key_share=True)


def _check_row(run_id: int | None, result: CheckResult, probe_id: str) -> dict[str, Any]:
    """The checks row of ``result``, but for its ``link_id``."""
    probe, verdict = result.probe, result.verdict
    return {
        "probe_id": probe_id, "run_id": run_id,
        "checked_at": result.checked_at, "status": str(verdict.status),
        "cause": str(probe.cause) if probe.cause is not None else None,
        "http_status": probe.http_status,
        "final_url": storable(verdict.final_url or probe.final_url),
        "title": storable(verdict.title if verdict.title is not None else probe.title),
        "error": storable(verdict.error if verdict.error is not None else probe.error),
        "rule": verdict.rule, "latency_ms": probe.latency_ms, "elapsed_ms": probe.elapsed_ms,
        "attempts": probe.attempts, "method": probe.method,
        "redirects": [{"url": storable(hop.url), "status": hop.status} for hop in probe.redirects],
    }


def storable(text: str | None) -> str | None:
    """Text from a remote server made storable: lone surrogates (from a JS escape or a
    non-UTF-8 Location header) cannot be encoded as UTF-8, and PostgreSQL rejects NUL."""
    if text is None:
        return None
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


_LINK_FIELDS = ("status", "http_status", "final_url", "title", "error", "latency_ms", "checked_at",
                "health", "fail_streak", "first_failing_at", "dead_since", "revived_at",
                "next_check_at")

# Bind names differ from column names: SQLAlchemy reserves the column names of
# an UPDATE's SET clause for its own parameters.
_LINK_UPDATE = PreparedMany(
    update(links).where(links.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in _LINK_FIELDS}),
    ["b_id", *(f"b_{name}" for name in _LINK_FIELDS)])


def _link_update(row: dict[str, Any], state: HealthState, next_check_at: datetime | None) -> tuple:
    """The values of one link's update, in the order of _LINK_UPDATE's names."""
    return (row["link_id"], row["status"], row["http_status"], row["final_url"], row["title"], row["error"],
            row["latency_ms"], row["checked_at"], str(state.health), state.fail_streak,
            state.first_failing_at, state.dead_since, state.revived_at, next_check_at)


def new_probe_id() -> str:
    """A fresh idempotency key for one probe: a random (version 4) UUID.

    From the random module, which the OS seeds and which is seeded again in a forked
    child: uuid.uuid4() reads os.urandom, a system call for every check."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))
