"""The check writer's CPU: 25,000 checks recorded as an audit records them, then flushed.

Run:
    .venv/bin/python bench/bench_writer.py                  # SQLite in a temp folder, 3 repetitions
    .venv/bin/python bench/bench_writer.py postgresql+asyncpg://postgres@127.0.0.1:5432/test --reps 5
    .venv/bin/python bench/bench_writer.py --profile writer.prof    # cProfile of the last repetition

Each repetition records every check with its health fold (``advance``, as
checker.pipeline does) on a store synced with bench_store's corpus, then flushes, and
prints the process CPU, the main thread's CPU (SQLite's own work runs in its driver's
thread) and the wall time. Every repetition starts from an empty checks table and inserts
new probe ids. On PostgreSQL it works in a fresh schema that it drops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import random
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench_store import T0, corpus  # noqa: E402
from checker.health import next_check_at, next_health  # noqa: E402
from checker.models import CheckResult, HealthState, Probe, Status, Target, Verdict  # noqa: E402
from checker.settings import Settings  # noqa: E402
from checker.store import Store, normalize_url  # noqa: E402
from checker.store.engine import create_engine  # noqa: E402


def _advance(prev, *, status, checked_at, settings, rng):
    state = next_health(prev, status, checked_at, settings.health)
    return state, next_check_at(state, status, checked_at, settings.health, rng)


async def run(url: str, reps: int, profile: str | None) -> None:
    settings, rng = Settings(), random.Random(1)
    async with await Store.open(url) as store:
        notes, refs = corpus()
        await store.sync_notes(notes, refs, now=T0)
        states = await store.link_states()
        results = []
        for i, link in enumerate(states):
            status = Status.OK if i % 10 else Status.BROKEN
            results.append(CheckResult(Target(link, link, states[link].host),
                                       Probe(url=link, http_status=200 if status is Status.OK else 404,
                                             title="标题", latency_ms=40),
                                       Verdict(status, title="标题"), T0 + timedelta(milliseconds=i)))
        cpus, mains = [], []
        for rep in range(reps):
            async with store.engine.begin() as conn:
                await conn.execute(text("DELETE FROM checks"))
            items = []
            for res in results:
                advance = functools.partial(_advance, status=res.verdict.status,
                                            checked_at=res.checked_at + timedelta(days=rep), settings=settings, rng=rng)
                state, due = advance(HealthState())
                items.append((res, state, due, str(uuid.uuid4()), advance))
            prof = cProfile.Profile() if profile and rep == reps - 1 else None
            c0, t0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
            if prof:
                prof.enable()
            for res, state, due, probe_id, advance in items:
                store.record(None, res, state, due, probe_id=probe_id, advance=advance)
            await store.flush()
            if prof:
                prof.disable()
                prof.dump_stats(profile)
            c1, t1, w1 = time.process_time(), time.thread_time(), time.perf_counter()
            print(f"rep {rep}: {len(results)} checks  cpu {c1 - c0:6.2f} s  main-thread cpu {t1 - t0:6.2f} s  "
                  f"wall {w1 - w0:6.2f} s", flush=True)
            cpus.append(c1 - c0)
            mains.append(t1 - t0)
        cpus.sort()
        mains.sort()
        print(f"cpu min {cpus[0]:.2f} s, median {cpus[len(cpus) // 2]:.2f} s; "
              f"main thread min {mains[0]:.2f} s, median {mains[len(mains) // 2]:.2f} s")


async def main(args: argparse.Namespace) -> None:
    if args.url is None:
        with tempfile.TemporaryDirectory() as tmp:
            await run(f"sqlite:///{tmp}/writer.db", args.reps, args.profile)
        return
    schema = f"lh_bench_writer_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(normalize_url(args.url).render_as_string(hide_password=False))
        await run(url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False),
                  args.reps, args.profile)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default=None, help="a PostgreSQL URL (default: SQLite in a temp folder)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--profile", default=None, help="write a cProfile of the last repetition here")
    asyncio.run(main(parser.parse_args()))
