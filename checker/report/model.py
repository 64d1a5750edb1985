"""The report model: what the report shows, built from the database alone (no network).

``build_report`` reads rows through ``checker.store.reportquery`` and folds them into
frozen dataclasses; every renderer (html, json, markdown, csv) reads only this model.
"""

from __future__ import annotations

import dataclasses
import gc
import posixpath
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping, NamedTuple

from ..models import FAILING_STATUSES, Health, Status
from ..pace import pace_text
from ..settings import Settings
from ..store.reportquery import LinkRecord, ReportRows, SnapshotRecord, fetch_report_rows

__all__ = ["Occurrence", "HistoryPoint", "LinkRow", "Summary", "RunPoint", "Changes", "NoteRow",
           "HostRow", "ReportModel", "build_report", "model_from_rows", "STATUSES", "HEALTHS",
           "HISTORY_PER_LINK"]

STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
HEALTHS: tuple[str, ...] = tuple(h.value for h in Health)
_FAILING = frozenset(s.value for s in FAILING_STATUSES)
#: Checks kept per link for its history strip (the trend covers runs, not this).
HISTORY_PER_LINK = 10


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A note and line that cite a link."""

    file: str
    line: int


class HistoryPoint(NamedTuple):
    """One past check of a link (a named tuple: 250,000 of them must be cheap)."""

    status: str
    checked_at: datetime


@dataclass(frozen=True, slots=True)
class LinkRow:
    """One link with its latest check, health, best snapshot, history and citations."""

    id: int
    url: str                      # as written (links.display_url)
    key: str                      # normalized URL (links.url)
    host: str
    status: str | None            # None: never checked yet
    health: str
    http_status: int | None
    final_url: str | None
    title: str | None
    error: str | None
    checked_at: datetime | None
    latency_ms: int | None
    at_risk: bool
    archive_url: str | None
    archive_service: str | None
    first_failing_at: datetime | None
    dead_since: datetime | None
    revived_at: datetime | None
    history: tuple[HistoryPoint, ...]
    occurrences: tuple[Occurrence, ...]
    archive_fidelity: str | None = None     # the local copy's check: "ok: ...", "partial: ... (lost 3)"

    @property
    def failing(self) -> bool:
        """True when the latest check failed (broken, soft404, timeout, unreachable)."""
        return self.status in _FAILING


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts over the links of the report (every status and health key present)."""

    total: int
    status: Mapping[str, int]
    health: Mapping[str, int]
    failing: int
    at_risk: int
    unchecked: int
    archived: int


@dataclass(frozen=True, slots=True)
class RunPoint:
    """One run on the trend: its time and the counts it recorded."""

    id: int
    kind: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    links_total: int
    links_checked: int
    status: Mapping[str, int]
    health: Mapping[str, int]
    notes_scanned: int = 0
    notes_skipped: int = 0


@dataclass(frozen=True, slots=True)
class Changes:
    """What the latest run changed; ``since`` is None when there is no previous run."""

    since: datetime | None
    newly_broken: tuple[LinkRow, ...]
    revived: tuple[LinkRow, ...]
    newly_archived: tuple[LinkRow, ...]


@dataclass(frozen=True, slots=True)
class NoteRow:
    """A note with how many of its links fail."""

    path: str
    links: int
    failing: int
    dead: int
    at_risk: int


@dataclass(frozen=True, slots=True)
class HostRow:
    """A host with how many of its links fail."""

    host: str
    links: int
    failing: int
    dead: int
    blocked: int
    at_risk: bool
    pace: str = ""       # the pace learned for the host (checker.pace.pace_text), if any


@dataclass(frozen=True, slots=True)
class ReportModel:
    """Everything a report shows."""

    title: str
    generated_at: datetime
    last_checked_at: datetime | None
    summary: Summary
    links: tuple[LinkRow, ...]
    runs: tuple[RunPoint, ...]
    changes: Changes
    notes: tuple[NoteRow, ...]
    hosts: tuple[HostRow, ...]
    notes_root: str | None = None      # the folder all (absolute) note paths share, if any
    cluster: Any = None        # checker.cluster.status.ClusterStatus: workers and queue depth

    @property
    def empty(self) -> bool:
        """True when there is nothing to report yet."""
        return not self.links


async def build_report(store: Any, *, now: datetime | None = None,
                       settings: Settings | None = None) -> ReportModel:
    """Build the report model from the database of ``store`` (a Store or an AsyncEngine)."""
    settings = settings or Settings()
    with _gc_paused():
        rows = await fetch_report_rows(store, history_per_link=HISTORY_PER_LINK,
                                       runs_limit=settings.report.history_runs)
        model = model_from_rows(rows, now=now, title=settings.report.title)
    from ..cluster.status import cluster_status   # reads the database only; no procrastinate
    status = await cluster_status(store)
    return dataclasses.replace(model, cluster=status) if status.enabled else model


@contextmanager
def _gc_paused() -> Iterator[None]:
    # The build allocates ~1 million small tuples that all stay alive: CPython's
    # generational collector then runs full passes over them again and again
    # (measured: half the build time for 25,000 links, bench/bench_report.py).
    # Nothing here makes reference cycles; the collector is restored afterwards.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def model_from_rows(rows: ReportRows, *, now: datetime | None = None,
                    title: str = "linkhealth report") -> ReportModel:
    """Fold database rows into a ReportModel (pure: no I/O)."""
    generated_at = now or datetime.now(timezone.utc)
    occ: dict[int, list[Occurrence]] = defaultdict(list)
    for o in rows.occurrences:
        occ[o.link_id].append(Occurrence(o.file, o.line))
    hist = rows.history
    best = _best_snapshots(rows.snapshots)
    link_rows = tuple(_link_row(r, tuple(map(HistoryPoint._make, hist.get(r.id, ()))), best.get(r.id),
                                occ.get(r.id, ()))
                      for r in rows.links)
    run_points = tuple(_run_point(r) for r in rows.runs if r.counts)
    checked = [r.checked_at for r in link_rows if r.checked_at]
    return ReportModel(
        title=title, generated_at=generated_at, last_checked_at=max(checked) if checked else None,
        summary=_summary(link_rows), links=link_rows, runs=run_points,
        changes=_changes(rows, link_rows), notes=_notes(link_rows, rows.note_paths),
        hosts=_hosts(link_rows, {p.host: pace_text(p) for p in rows.paces}),
        notes_root=notes_root(rows.note_paths))


def notes_root(paths: Iterable[str]) -> str | None:
    """The folder every note path lies under, when they are absolute (paths outside the
    working directory are stored absolute): the report shows paths relative to it."""
    paths = list(paths)
    if not paths or not all(p.startswith("/") for p in paths):
        return None
    root = posixpath.commonpath([posixpath.dirname(p) for p in paths])
    return root if root != "/" else None


def _snapshot_rank(s: SnapshotRecord) -> tuple[int, datetime]:
    # The best copy to send a reader to: a Wayback capture that answered 2xx (a
    # public, citable copy), else our own local copy, else any other capture.
    if s.service == "wayback" and s.http_status is not None and 200 <= s.http_status < 300:
        tier = 3
    elif s.service == "local":
        tier = 2
    else:
        tier = 1
    return tier, s.captured_at


def _best_snapshots(snaps: Iterable[SnapshotRecord]) -> dict[int, SnapshotRecord]:
    best: dict[int, SnapshotRecord] = {}
    for s in snaps:
        if not s.archive_url:
            continue
        cur = best.get(s.link_id)
        if cur is None or _snapshot_rank(s) >= _snapshot_rank(cur):
            best[s.link_id] = s
    return best


def _link_row(r: LinkRecord, history: tuple[HistoryPoint, ...], snap: SnapshotRecord | None,
              occ: Iterable[Occurrence]) -> LinkRow:
    return LinkRow(
        id=r.id, url=r.display_url, key=r.url, host=r.host, status=r.status, health=r.health,
        http_status=r.http_status, final_url=r.final_url, title=r.title, error=r.error,
        checked_at=r.checked_at, latency_ms=r.latency_ms, at_risk=r.at_risk,
        archive_url=snap.archive_url if snap else None, archive_service=snap.service if snap else None,
        first_failing_at=r.first_failing_at, dead_since=r.dead_since, revived_at=r.revived_at,
        history=history, occurrences=tuple(occ), archive_fidelity=snap.fidelity if snap else None)


def _summary(rows: tuple[LinkRow, ...]) -> Summary:
    status = dict.fromkeys(STATUSES, 0)
    health = dict.fromkeys(HEALTHS, 0)
    unchecked = failing = at_risk = archived = 0
    for r in rows:
        if r.status is None:
            unchecked += 1
        else:
            status[r.status] = status.get(r.status, 0) + 1
        health[r.health] = health.get(r.health, 0) + 1
        failing += r.failing
        at_risk += r.at_risk
        archived += r.archive_url is not None
    return Summary(len(rows), status, health, failing, at_risk, unchecked, archived)


def _run_point(r: Any) -> RunPoint:
    counts = r.counts or {}
    status = {k: int(v) for k, v in (counts.get("status") or {}).items()}
    health = {k: int(v) for k, v in (counts.get("health") or {}).items()}
    return RunPoint(r.id, r.kind, r.state, r.started_at, r.finished_at, r.links_total,
                    r.links_checked, status, health, r.notes_scanned, r.notes_skipped)


def _changes(rows: ReportRows, links_: tuple[LinkRow, ...]) -> Changes:
    # "Since the previous run" = what happened from the start of the latest run on.
    # With a single run there is nothing to compare with: every failure would be "new".
    if len(rows.runs) < 2:
        return Changes(None, (), (), ())
    since = rows.runs[-1].started_at
    archived_ids = {s.link_id for s in rows.snapshots if s.created_at >= since and s.archive_url}
    newly_broken = tuple(r for r in links_ if r.failing and r.first_failing_at
                         and r.first_failing_at >= since)
    revived = tuple(r for r in links_ if r.revived_at and r.revived_at >= since)
    newly_archived = tuple(r for r in links_ if r.id in archived_ids)
    return Changes(since, newly_broken, revived, newly_archived)


def _notes(links_: tuple[LinkRow, ...], paths: Iterable[str] = ()) -> tuple[NoteRow, ...]:
    # Every note read is listed, a note citing no link with zeros: the count then
    # matches the notes the audit says it read.
    per: dict[str, set[int]] = {p: set() for p in paths}
    by_id = {r.id: r for r in links_}
    for r in links_:
        for o in r.occurrences:
            per.setdefault(o.file, set()).add(r.id)
    out = []
    for path, ids in per.items():
        rs = [by_id[i] for i in ids]
        out.append(NoteRow(path, len(rs), sum(r.failing for r in rs),
                           sum(r.health == "dead" for r in rs), sum(r.at_risk for r in rs)))
    out.sort(key=lambda n: (-n.failing, -n.dead, n.path))
    return tuple(out)


def _hosts(links_: tuple[LinkRow, ...], paces: dict[str, str] | None = None) -> tuple[HostRow, ...]:
    per: dict[str, list[LinkRow]] = defaultdict(list)
    paces = paces or {}
    for r in links_:
        per[r.host].append(r)
    out = [HostRow(host, len(rs), sum(r.failing for r in rs), sum(r.health == "dead" for r in rs),
                   sum(r.status == "blocked" for r in rs), any(r.at_risk for r in rs), paces.get(host, ""))
           for host, rs in per.items()]
    out.sort(key=lambda h: (-h.failing, -h.dead, -h.links, h.host))
    return tuple(out)
