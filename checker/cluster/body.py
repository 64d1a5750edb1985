"""The task body of the cluster: check one host slot's due links, with the pipeline's check stage.

The same :func:`checker.pipeline.check_stage` as the embedded mode does the probing,
classifying and recording; only three things differ, all passed in:

- the limiter: :class:`~checker.cluster.pace.DbPacedLimiter` (each start booked on the
  host's row, database clock) instead of the in-process one;
- the clock: :class:`~checker.cluster.pace.DbClock`, so checked_at and next_check_at are
  the database's time whatever this machine's clock says;
- the probe ids: one per URL and cycle (:func:`cycle_probe_id`), so a check stored twice
  for the same cycle (a job retried after its worker died) is stored once.

What is due is read at run time, in rounds of ``cluster.batch_size``, until the slot has
nothing due: a retried job therefore redoes only what its dead worker had not stored, and a
job for links deleted or deactivated meanwhile finds nothing and says so.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..logs import log_event
from ..pipeline import CheckOutcome, Progress, check_stage
from ..rules import RuleSet
from ..settings import Settings
from ..store import cluster as q
from ..targets import from_stored
from .pace import DbClock, DbPacedLimiter, PaceSource
from .slots import SlotJob

__all__ = ["SlotOutcome", "run_slot", "cycle_probe_id"]

log = logging.getLogger("linkhealth.cluster")

#: Namespace of the cycle probe ids (uuid5): any fixed UUID.
_CYCLE_NS = uuid.UUID("6c696e6b-6865-616c-7468-2d6379636c65")
MAX_ROUNDS = 10_000     # a bound, never reached: a slot's links stop being due once checked


def cycle_probe_id(url: str, previous_check: datetime | None) -> str:
    """The idempotency key of the check of ``url`` that follows its check at ``previous_check``."""
    when = previous_check.isoformat() if previous_check is not None else "never"
    return str(uuid.uuid5(_CYCLE_NS, f"{url}\n{when}"))


@dataclass
class SlotOutcome:
    """What one slot job did."""

    check: CheckOutcome = field(default_factory=CheckOutcome)
    rounds: int = 0
    skipped_repeat: int = 0      # links still due after their check this job (not checked again)


async def run_slot(store: Any, settings: Settings, rules: RuleSet, pace: PaceSource, job: SlotJob,
                   *, progress: Progress | None = None, stop: asyncio.Event | None = None,
                   session: Any = None, clock: DbClock | None = None) -> SlotOutcome:
    """Check the due links of ``job``'s host slot until none is left (or ``stop`` is set).

    ``clock`` is the worker's DbClock (read from the database once), else one per job.
    """
    out = SlotOutcome()
    # The pace learned for the host (by any worker, or an embedded audit) is where it starts.
    limiter = DbPacedLimiter(store, pace, settings.check, host_policy=rules.host_policy,
                             learned=await store.load_paces({job.host}))
    done: set[str] = set()
    while out.rounds < MAX_ROUNDS and not (stop is not None and stop.is_set()):
        due = await q.due_in_slot(store, job.host, job.slot, job.slots, settings.cluster.batch_size)
        fresh = [state for state in due if state.url not in done]
        out.skipped_repeat += len(due) - len(fresh)
        if not fresh:
            break
        out.rounds += 1
        limiter.new_round()
        clock = clock or await DbClock.start(store)
        targets = [from_stored(s.url, s.display_url, s.host, settings) for s in fresh]
        ids = {s.url: cycle_probe_id(s.url, s.checked_at) for s in fresh}
        done.update(ids)
        await check_stage(store, settings, rules, run_id=job.run_id, targets=targets, progress=progress,
                          stop=stop, now_fn=clock.now, outcome=out.check, limiter=limiter, probe_ids=ids,
                          session=session, states={s.url: s for s in fresh})
        if len(due) < settings.cluster.batch_size:
            break       # the slot had fewer due links than a batch: all of them are done
    if out.rounds == 0:
        # Two producers, a retried job whose work was stored, or links deleted or no longer
        # cited since the job was queued: nothing to do is a normal end.
        log_event(log, "slot.nothing_due", host=job.host, slot=job.slot,
                  reason="its links were checked, deleted or deactivated since the job was queued")
    if out.skipped_repeat:
        log_event(log, "slot.still_due", host=job.host, slot=job.slot, links=out.skipped_repeat,
                  reason="checked by this job but still due (stored check refused?); left for the next cycle",
                  level=logging.WARNING)
    return out
