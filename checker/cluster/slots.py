"""Host slots: how one host's due URLs are split into jobs (pure functions, table-tested).

A host with a per-host limit of N has N slots; a URL's slot is a stable hash of its
normalized URL modulo N. One job is one slot's batch, and procrastinate's ``lock`` and
``queueing_lock`` are the host and slot: at most one job per slot runs (so at most N
requests are in flight to the host, cluster-wide) and at most one waits. Crawlers keep
politeness the same way: each host's URLs have one owner at a time (Nutch's and
StormCrawler's partitioning of the URL queue by host).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Iterable

__all__ = ["SlotJob", "slot_hash", "slot_of", "lock_key", "plan_slot_jobs", "LOCK_PREFIX"]

LOCK_PREFIX = "check:"


@dataclass(frozen=True, slots=True)
class SlotJob:
    """One host slot's work: the host, the slot, how many slots the host has, the cycle's run."""

    host: str
    slot: int
    slots: int
    run_id: int | None = None

    @property
    def lock(self) -> str:
        """procrastinate's lock and queueing lock for this slot."""
        return lock_key(self.host, self.slot)

    def kwargs(self) -> dict:
        """The job's arguments (JSON): no URL, so a URL of many kilobytes never enters the queue."""
        return {"host": self.host, "slot": self.slot, "slots": self.slots, "run_id": self.run_id}


def slot_hash(url: str) -> int:
    """The first 32 bits of the URL's MD5 (the database computes the same: store.cluster)."""
    return int(hashlib.md5(url.encode("utf-8")).hexdigest()[:8], 16)


def slot_of(url: str, slots: int) -> int:
    """The slot of ``url`` on a host with ``slots`` slots."""
    return slot_hash(url) % max(1, slots)


def lock_key(host: str, slot: int) -> str:
    """The lock of one host slot (hosts are lower-case names, so no two keys collide)."""
    return f"{LOCK_PREFIX}{host}#{slot}"


def plan_slot_jobs(due: Iterable[tuple[str, int]], slots_for: Callable[[str], int], *,
                   run_id: int | None = None, skip_locks: frozenset[str] = frozenset()) -> list[SlotJob]:
    """One job per host slot with due links, from (host, slot hash) pairs; hosts in first-due order.

    ``slots_for(host)`` is the host's per-host limit; ``skip_locks`` are slots already queued.
    """
    seen: dict[tuple[str, int], SlotJob] = {}
    for host, hashed in due:
        n = max(1, int(slots_for(host)))
        key = (host, hashed % n)
        if key in seen or lock_key(*key) in skip_locks:
            continue
        seen[key] = SlotJob(host=host, slot=key[1], slots=n, run_id=run_id)
    return list(seen.values())
