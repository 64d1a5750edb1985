"""The archive stage: policy -> queue -> backends (wayback, local WARC) -> snapshots.

Public entry points (lazy, so that ``checker.store.archivequeue`` can import the
plain types here without a cycle): ``plan_archive``, ``run_archive``,
``show_snapshots``, ``best_snapshot`` and their summaries.
"""

from __future__ import annotations

from typing import Any

__all__ = ["plan_archive", "run_archive", "show_snapshots", "best_snapshot", "save_services",
           "PlanSummary", "ArchiveSummary", "SnapshotInfo"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import runner
        return getattr(runner, name)
    raise AttributeError(name)
