"""Concurrent checks of one link all count: the health fold is applied to the health
stored when a check is written, not to what the checking process read earlier.

Two audits at once on one database used to store 900 checks of 300 failing links
but a fail_streak of 2 (each audit overwrote the other's streak), which delays a
confirmed death by days. SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import functools
import random
from datetime import timedelta
from pathlib import Path

from checker.models import HealthState, Status
from checker.pipeline import _advance, run_audit
from checker.settings import Settings
from checker.store import Store

from test_store import T0, db_url, note, pair, result  # noqa: F401  (db_url: SQLite and PostgreSQL)

URLS = [f"https://gone.example.cn/{i}" for i in range(40)]


def advance_from(settings: Settings, status: Status, at):
    return functools.partial(_advance, status=status, checked_at=at, settings=settings, rng=random.Random(1))


async def test_two_writers_with_a_stale_view_both_count(db_url):  # noqa: F811
    settings = Settings()
    first, second = await Store.open(db_url), await Store.open(db_url)
    try:
        await first.sync_notes([note("n.md")], {"n.md": [pair("n.md", i + 1, u) for i, u in enumerate(URLS)]},
                               now=T0)
        # Both processes read the links before either wrote: each thinks the streak is 0.
        for n, store in enumerate((first, second)):
            at = T0 + timedelta(minutes=n)
            for url in URLS:
                advance = advance_from(settings, Status.BROKEN, at)
                state, due = advance(HealthState())
                store.record(None, result(url, Status.BROKEN, at=at, http_status=404), state, due,
                             advance=advance)
        await asyncio.gather(first.flush(), second.flush())
        states = await first.link_states(URLS)
    finally:
        await first.close()
        await second.close()
    assert {s.health_state.fail_streak for s in states.values()} == {2}
    # The streak starts at whichever check was written first (the two writers race).
    assert {s.health_state.first_failing_at for s in states.values()} <= {T0, T0 + timedelta(minutes=1)}


async def test_three_audits_two_at_once_count_three_failures(db_url, web, web_settings, tmp_path):  # noqa: F811
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("\n\n".join(f"https://example.com/404?n={i}" for i in range(30)) + "\n",
                                encoding="utf-8")
    settings = web_settings(retries=0).with_overrides({"db": db_url, "data_dir": str(tmp_path / "data")})

    async def audit() -> None:
        async with await Store.open(db_url) as store:
            await run_audit(store, settings, [str(notes)])

    await audit()
    await asyncio.gather(audit(), audit())
    async with await Store.open(db_url) as store:
        states = await store.link_states()
    assert len(states) == 30
    assert {s.health_state.fail_streak for s in states.values()} == {3}


def test_a_deadlock_or_serialization_failure_is_sent_again():
    """Two writers locking links (the batch, a scan's links.active update) may deadlock on
    PostgreSQL: the loser's whole batch rolled back and is retried, not the writer's end."""
    from sqlalchemy.exc import DBAPIError

    from checker.store.writer import _retryable

    class PgError(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__(sqlstate)
            self.sqlstate = sqlstate

    assert _retryable(DBAPIError("UPDATE links", {}, PgError("40P01")))
    assert _retryable(DBAPIError("UPDATE links", {}, PgError("40001")))
    assert not _retryable(DBAPIError("UPDATE links", {}, PgError("23505")))   # a unique violation: a bug
