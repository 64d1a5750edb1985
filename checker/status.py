"""`linkhealth status`: what the database says about recent runs and each host's learned pace.

Small on purpose and read-only: the cluster part (queue depth, workers) adds its own
section (see DESIGN.md); :func:`pace_section` is the politeness part (issue 13).
"""

from __future__ import annotations

from typing import Any

from .pace import LearnedPace, pace_text

__all__ = ["status_lines", "runs_section", "pace_section"]


def runs_section(runs: list[dict], limit: int = 5) -> list[str]:
    """The last runs, newest first: kind, state, when, links checked."""
    lines = ["Recent runs:"]
    for run in runs[:limit]:
        when = run.get("started_at")
        stamp = f"{when:%Y-%m-%d %H:%M} UTC" if when is not None else "?"
        lines.append(f"  #{run.get('id')} {run.get('kind')} {run.get('state')} {stamp}: "
                     f"{run.get('links_checked') or 0:,} of {run.get('links_total') or 0:,} links checked")
    if len(lines) == 1:
        lines.append("  none yet")
    return lines


def pace_section(paces: list[LearnedPace], limit: int = 15) -> list[str]:
    """Hosts that pushed back (most recent first), then the busiest, with their learned pace."""
    lines = ["Learned pace per host (hosts that pushed back first):"]
    for pace in paces[:limit]:
        lines.append(f"  {pace.host}: {pace_text(pace)}")
    if len(lines) == 1:
        lines.append("  none yet (learned as links are checked)")
    elif len(paces) > limit:
        lines.append(f"  ... and {len(paces) - limit:,} more hosts")
    return lines


async def status_lines(store: Any, *, alive_within: float = 60.0) -> list[str]:
    """Every section of `linkhealth status`, as lines of text: runs, learned pace, cluster."""
    from .cluster.status import cluster_status, status_lines as cluster_lines

    runs = await store.runs(limit=5)
    paces = await store.learned_paces()
    cluster = cluster_lines(await cluster_status(store, alive_within))
    return runs_section(runs) + [""] + pace_section(paces) + [""] + cluster
