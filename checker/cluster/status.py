"""Cluster status: live workers, queue depth and checks per minute per worker.

Read from the database only (procrastinate's jobs table and ``cluster_workers``), so the
daemon's /metrics, the report and ``linkhealth status`` on any machine show the same
figures. Nothing here imports procrastinate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..store import cluster as q

__all__ = ["ClusterStatus", "cluster_status", "status_lines", "metric_families"]


@dataclass(frozen=True)
class ClusterStatus:
    """Workers seen recently and the queue's waiting and running jobs."""

    enabled: bool                                   # the database has the queue (PostgreSQL, 0005)
    workers: tuple[dict[str, Any], ...] = ()
    depth: dict[tuple[str, str], int] = field(default_factory=dict)   # (queue, todo|doing) -> jobs

    @property
    def checks_per_minute(self) -> float:
        """The cluster's check rate: the sum over live workers."""
        return sum(float(w["checks_per_minute"]) for w in self.workers)


async def cluster_status(store: Any, alive_within: float = 60.0) -> ClusterStatus:
    """The cluster's state now; ``enabled`` is False on a database without the queue."""
    if not await q.has_queue(store):
        return ClusterStatus(enabled=False)
    return ClusterStatus(enabled=True, workers=tuple(await q.workers(store, alive_within)),
                         depth=await q.queue_depth(store))


def status_lines(status: ClusterStatus) -> list[str]:
    """The cluster part of ``linkhealth status``, as plain lines."""
    if not status.enabled:
        return ["workers: none (embedded mode: this database has no queue; cluster mode needs "
                "PostgreSQL and `linkhealth db upgrade`)"]
    queues = sorted({queue for queue, _ in status.depth})
    depth = ", ".join(f"{queue} {status.depth.get((queue, 'todo'), 0)} waiting / "
                      f"{status.depth.get((queue, 'doing'), 0)} running" for queue in queues) or "empty"
    lines = [f"queue: {depth}",
             f"workers: {len(status.workers)} live, {status.checks_per_minute:.1f} checks/min in all"]
    for w in status.workers:
        lines.append(f"  {w['name']}  {float(w['checks_per_minute']):.1f} checks/min  "
                     f"{int(w['checks_total'])} checks  {int(w['in_flight'])} jobs running  "
                     f"seen {float(w['age']):.0f}s ago")
    return lines


def metric_families(status: ClusterStatus) -> list[tuple[str, str, str, list[tuple[dict, float]]]]:
    """Prometheus families (name, type, help, samples) for /metrics; none in embedded mode."""
    if not status.enabled:
        return []
    return [
        ("linkhealth_cluster_workers", "gauge", "Workers that reported within the last minute.",
         [({}, len(status.workers))]),
        ("linkhealth_cluster_queue_jobs", "gauge", "Queued jobs by queue and state (todo waiting, doing running).",
         [({"queue": queue, "state": state}, n) for (queue, state), n in sorted(status.depth.items())]),
        ("linkhealth_cluster_worker_checks_per_minute", "gauge", "Checks per minute over the last minute, by worker.",
         [({"worker": w["name"]}, float(w["checks_per_minute"])) for w in status.workers]),
        ("linkhealth_cluster_worker_checks", "gauge", "Checks done by each live worker since it started.",
         [({"worker": w["name"]}, int(w["checks_total"])) for w in status.workers]),
    ]
