"""Storage layer at the size of the real corpus: 820 notes citing 25,000 links.

Run:
    .venv/bin/python bench/bench_store.py                       # SQLite in a temp folder
    .venv/bin/python bench/bench_store.py postgresql+asyncpg://postgres@127.0.0.1:5432/test

On PostgreSQL it works in a fresh schema that it drops at the end. Prints the wall
time of: the first sync, a re-sync with nothing changed, a re-sync with 10 notes
changed, writing 25,000 checks through the batching writer, due_links and
link_states over every link.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from checker.models import (  # noqa: E402
    CheckResult, Health, HealthState, Kind, Note, Probe, Reference, Status, Target, Verdict,
)
from checker.store import Store, normalize_url  # noqa: E402
from checker.store.engine import create_engine  # noqa: E402

NOTES, PER_NOTE, HOSTS = 820, 31, 1900
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def corpus(changed: int = 0) -> tuple[list[Note], dict]:
    """Synthetic notes; the first ``changed`` notes get a new hash and one new link each."""
    notes, refs = [], {}
    for n in range(NOTES):
        path = f"notes/2015-{n:04d}-post.markdown"
        sha = ("b" if n < changed else "a") * 64
        notes.append(Note(path=path, abspath=Path(path), sha256=sha, mtime=0.0, size=10_000))
        pairs = []
        for k in range(PER_NOTE):
            i = n * PER_NOTE + k
            url = f"https://h{i % HOSTS}.example.cn/2015/{i}.html"
            pairs.append((Reference(path, k + 1, 1, url, Kind.BARE), Target(url, url, f"h{i % HOSTS}.example.cn")))
        if n < changed:
            url = f"https://new.example.cn/{n}"
            pairs.append((Reference(path, 99, 1, url, Kind.BARE), Target(url, url, "new.example.cn")))
        refs[path] = pairs
    return notes, refs


async def timed(label: str, coro):
    """Await ``coro`` and print its wall time."""
    started = time.perf_counter()
    value = await coro
    print(f"{label:<38} {time.perf_counter() - started:7.2f} s")
    return value


async def run(url: str) -> None:
    """Run every measurement against ``url``."""
    async with await Store.open(url) as store:
        notes, refs = corpus()
        stats = await timed("sync (first, 25k links)", store.sync_notes(notes, refs, now=T0))
        print("   ", stats)
        await timed("sync (nothing changed)", store.sync_notes(notes, refs, now=T0))
        notes2, refs2 = corpus(changed=10)
        await timed("sync (10 notes changed)", store.sync_notes(notes2, refs2, now=T0))
        states = await store.link_states()

        async def write_all() -> None:
            alive = HealthState(health=Health.ALIVE)
            for i, url in enumerate(states):
                target = Target(url, url, states[url].host)
                res = CheckResult(target, Probe(url=url, http_status=200, title="标题", latency_ms=40),
                                  Verdict(Status.OK, title="标题"), T0 + timedelta(milliseconds=i))
                store.record(None, res, alive, T0 + timedelta(days=7))
            await store.flush()

        await timed(f"write {len(states)} checks", write_all())
        print(f"    batches: {store._writer.batches}")
        await timed("due_links (none due)", store.due_links(T0))
        due = await timed("due_links (all due)", store.due_links(T0 + timedelta(days=8)))
        print(f"    due: {len(due)}")
        await timed("link_states (all)", store.link_states())


async def main() -> None:
    """SQLite in a temp folder, or PostgreSQL in a throw-away schema."""
    if len(sys.argv) < 2:
        with tempfile.TemporaryDirectory() as tmp:
            print("SQLite")
            await run(f"sqlite:///{tmp}/bench.db")
        return
    base = sys.argv[1]
    schema = f"lh_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(normalize_url(base).render_as_string(hide_password=False))
        print("PostgreSQL")
        await run(url.update_query_dict({"options": f"-csearch_path={schema}"})
                  .render_as_string(hide_password=False))
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


if __name__ == "__main__":
    asyncio.run(main())
