"""The pipeline: the stages of DESIGN.md wired together. The CLI and the daemon call these.

scan_stage   notes on disk -> Note/Reference/Target -> store (notes, occurrences, links)
check_stage  targets (given, or due from the store) -> Prober -> classify -> health -> store
report_stage store -> report model -> HTML file
run_audit    one-off: scan, check, optionally archive, report
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Mapping, Protocol, Sequence

from .classify import blocked_by, classify
from .extract import extract
from .health import next_check_at, next_health
from .models import (
    FAILING_STATUSES, CheckResult, Health, HealthState, Probe, Reference, Status, Target,
    Verdict,
)
from .errors import InputError
from .notechanges import plan_rescan
from .notes import ScanResult, Skipped, display_path, encoding_notice, scan
from .pace import Signal
from .probe import Prober
from .rules import RuleSet, load_rules
from .schedule import Refusal, RefusalFn, default_refusal
from .settings import Settings
from .sibling import SiblingProbe
from .targets import from_stored, is_file_target, to_target

__all__ = [
    "Collection", "ScanOutcome", "CheckOutcome", "AuditOutcome", "Progress",
    "collect", "scan_stage", "rescan_stage", "check_stage", "report_stage", "run_audit", "utcnow",
]


log = logging.getLogger("linkhealth.pipeline")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class Progress(Protocol):
    """What the stages report progress to (the CLI's progress bar, or nothing)."""

    def start(self, total: int) -> None: ...
    def advance(self, result: CheckResult) -> None: ...


@dataclass(frozen=True)
class Collection:
    """Everything found in the notes: which notes, and each reference with its target."""

    notes: tuple
    skipped: tuple[Skipped, ...]
    refs: Mapping[str, Sequence[tuple[Reference, Target]]]     # note path -> references

    @functools.cached_property
    def targets(self) -> dict[str, Target]:
        """One target per normalized URL (one check per unique URL)."""
        out: dict[str, Target] = {}
        for pairs in self.refs.values():
            for _, target in pairs:
                out.setdefault(target.url, target)
        return out

    @property
    def reference_count(self) -> int:
        """How many references were found in all notes."""
        return sum(len(pairs) for pairs in self.refs.values())


@dataclass(frozen=True)
class ScanOutcome:
    """What a scan found and what it changed in the store."""

    notes_scanned: int
    notes_skipped: tuple[Skipped, ...]
    references: int
    targets: int
    sync: object = None        # the store's SyncStats
    partial: bool = False      # only the notes a watcher saw change (rescan_stage)
    encoding_notice: str | None = None   # which notes were not UTF-8 and how they were read


@dataclass
class CheckOutcome:
    """Counts of one check stage."""

    checked: int = 0
    cached: int = 0
    resumed: int = 0                    # checked already by the interrupted audit(s) resumed
    resumed_runs: tuple[int, ...] = ()
    by_status: Counter = field(default_factory=Counter)
    interrupted: bool = False
    sibling_probes: int = 0    # extra requests of the random-sibling probe (one per host at most)
    notices: list[str] = field(default_factory=list)   # one line each: hosts set aside, network down


@dataclass
class AuditOutcome:
    """The result of ``run_audit``: what the CLI needs to report and exit."""

    run_id: int
    scan: ScanOutcome
    check: CheckOutcome
    failing: list[dict]                # links whose status or health fails, with occurrences
    statuses: Counter
    healths: Counter
    archive: object = None
    interrupted: bool = False

    def exit_failing(self, fail_on: str) -> list[dict]:
        """The failing links that make the run fail under ``--fail-on``."""
        if fail_on == "never":
            return []
        if fail_on == "dead":
            return [f for f in self.failing if f["health"] == Health.DEAD.value]
        return [f for f in self.failing if f["status"] in _FAILING_WORDS]


_FAILING_WORDS = frozenset(s.value for s in FAILING_STATUSES)
_CACHEABLE = frozenset({Status.OK, Status.REDIRECT})


def collect(settings: Settings, paths: Sequence[str | Path], *,
            roots: Sequence[str | Path] | None = None) -> Collection:
    """Scan the notes and extract every reference with its target (pure, synchronous).

    ``roots`` (default ``paths``) bound where symbolic links may lead.
    """
    found: ScanResult = scan(paths, settings.notes, roots=roots)
    refs: dict[str, list[tuple[Reference, Target]]] = {}
    include_code = settings.notes.include_code
    for note in found.notes:
        text = found.text(note)
        pairs = []
        for ref in extract(text, note.path, bare_www=settings.notes.bare_www):
            if ref.in_code and not include_code:
                continue
            pairs.append((ref, to_target(ref, settings, note_path=note.abspath)))
        refs[note.path] = pairs
    return Collection(notes=found.notes, skipped=found.skipped, refs=refs)


async def scan_stage(store, settings: Settings, rules: RuleSet, *, paths: Sequence[str] | None = None,
                     now: datetime | None = None) -> ScanOutcome:
    """Rescan the notes, store notes, occurrences and links; mark at-risk links."""
    outcome, _ = await _scan(store, settings, rules, paths=paths, now=now)
    return outcome


async def rescan_stage(store, settings: Settings, rules: RuleSet, changes: Iterable[tuple[str, str | Path]],
                       *, paths: Sequence[str] | None = None, now: datetime | None = None) -> ScanOutcome:
    """Rescan only the notes that ``changes`` touch; a full scan when only that is right."""
    roots = list(paths or settings.notes.paths)
    plan = plan_rescan(changes, roots, settings.notes)
    if plan is not None:
        try:
            collection = await asyncio.to_thread(collect, settings, plan.files, roots=roots)
        except InputError:   # a note went between the change and its reading: ask the folders
            plan = None
    if plan is None:
        return await scan_stage(store, settings, rules, paths=paths, now=now)
    # The changed paths are the roots of this sync: a note under one of them that was not
    # read (deleted, or now skipped) is retired, every other note is left as it is.
    sync = await store.sync_notes(collection.notes, collection.refs,
                                  roots=[display_path(p) for p in plan.paths], now=now or utcnow())
    await store.set_at_risk({url: rules.at_risk(url) for url in collection.targets})
    return ScanOutcome(notes_scanned=len(collection.notes), notes_skipped=collection.skipped,
                       references=collection.reference_count, targets=len(collection.targets),
                       sync=sync, partial=True)


async def _scan(store, settings: Settings, rules: RuleSet, *, paths: Sequence[str] | None,
                now: datetime | None) -> tuple[ScanOutcome, Collection]:
    roots = list(paths or settings.notes.paths)
    collection = await asyncio.to_thread(collect, settings, roots)
    now = now or utcnow()
    sync = await store.sync_notes(collection.notes, collection.refs, roots=[display_path(Path(r)) for r in roots], now=now)
    targets = collection.targets
    await store.set_at_risk({url: rules.at_risk(url) for url in targets})
    outcome = ScanOutcome(notes_scanned=len(collection.notes), notes_skipped=collection.skipped,
                          references=collection.reference_count, targets=len(targets), sync=sync,
                          encoding_notice=encoding_notice(collection.notes))
    return outcome, collection


async def check_stage(store, settings: Settings, rules: RuleSet, *, run_id: int | None,
                      targets: Iterable[Target] | None = None, limit: int | None = None,
                      progress: Progress | None = None, stop: asyncio.Event | None = None,
                      now_fn: Callable[[], datetime] = utcnow,
                      outcome: CheckOutcome | None = None, limiter=None,
                      probe_ids: Mapping[str, str] | None = None, session=None,
                      states: Mapping | None = None) -> CheckOutcome:
    """Check targets (or the links due in the store), record checks and health.

    ``outcome``, when given, is filled as checks finish (the caller keeps the counts
    even when the stage is interrupted). The cluster runner passes its ``limiter`` (paced
    on the database), ``probe_ids`` (one per URL and cycle, so that a retried job stores
    no second check), its worker's HTTP ``session`` and the link ``states`` it has just read;
    the embedded runner passes none.
    """
    if targets is None:
        due = await store.due_links(now_fn(), limit=limit)
        targets = [from_stored(state.url, state.display_url, state.host, settings) for state in due]
    targets = list(targets)
    if states is None:
        states = await store.link_states([t.url for t in targets])
    outcome = outcome if outcome is not None else CheckOutcome()
    todo = _plan(targets, states, settings, now_fn(), outcome)
    if progress:
        progress.start(len(todo))
    rng = random.Random()
    local = [t for t in todo if t.skip is not None or is_file_target(t)]
    fetched = [t for t in todo if t.skip is None and not is_file_target(t)]
    learned = await store.load_paces({t.host for t in fetched if t.host})
    prober = Prober(settings, host_policy=rules.host_policy, learned=learned, limiter=limiter, session=session)
    sibling = SiblingProbe(prober.fetch, rules, enabled=settings.health.sibling_probe, rng=rng)
    verdicts: dict[str, Verdict] = {}
    if progress is not None and hasattr(progress, "watch"):
        progress.watch(prober.views)

    async def sink(target: Target, probe: Probe, verdict: Verdict | None = None) -> None:
        verdict = verdict or verdicts.pop(target.url, None)
        verdict = await _verdict(sibling, target, probe, rules, verdict)
        outcome.sibling_probes = sibling.requests
        checked_at = now_fn()
        result = CheckResult(target=target, probe=probe, verdict=verdict, checked_at=checked_at)
        prev = states[target.url].health_state if target.url in states else HealthState()
        advance = functools.partial(_advance, status=verdict.status, checked_at=checked_at,
                                    settings=settings, rng=rng)
        state, due_at = advance(prev)
        # The store applies ``advance`` to the health it holds when it writes: another
        # audit (or worker) may have checked this link since ``prev`` was read.
        probe_id = (probe_ids or {}).get(target.url)    # None: the store makes one
        store.record(run_id, result, state, due_at, probe_id=probe_id, advance=advance)
        outcome.checked += 1
        outcome.by_status[verdict.status] += 1
        if progress:
            progress.advance(result)

    try:
        for target in local:
            # Not fetched: excluded or malformed (classify says which), or a file of the site
            # that exists (the scan already proved it).
            probe = Probe(url=target.url, cause=target.skip, error=target.skip_detail, attempts=0,
                          started_at=now_fn())
            file_ok = Verdict(Status.OK, at_risk=False) if target.skip is None else None
            await sink(target, probe, file_ok)
        async with prober:
            # On stop, no new probe starts and the ones in flight finish (the daemon bounds
            # that by its grace period, cancelling this stage when the period is over).
            await prober.run(fetched, sink, stop=stop, refusal=pace_refusal(rules, verdicts))
        outcome.interrupted = stop is not None and stop.is_set() and outcome.checked < len(todo)
    finally:
        outcome.notices.extend(prober.notices)
        await store.flush()
        await store.save_paces(prober.learned(wall_clock=time.time()))
    return outcome


def _advance(prev: HealthState, *, status: Status, checked_at: datetime, settings: Settings,
             rng: random.Random) -> tuple[HealthState, datetime]:
    """The health after one check from ``prev``, and when to check again."""
    state = next_health(prev, status, checked_at, settings.health)
    return state, next_check_at(state, status, checked_at, settings.health, rng)


def pace_refusal(rules: RuleSet, verdicts: dict[str, Verdict]) -> RefusalFn:
    """Which answers refuse because of our pace: 429/503, and what the site rules and the
    generic checks call a stress sign (a verification, captcha or rate-limit page:
    checker.classify.blocked_by, a finding with ``stress``). A login wall or a plain
    401/403 refuses robots whatever the pace: it is a result. Verdicts are kept for the sink."""
    def refusal(target: Target, probe: Probe) -> Refusal | None:
        plain = default_refusal(target, probe)
        if plain is not None:
            return plain
        verdict = _classify(target, probe, rules)
        verdicts[target.url] = verdict
        if verdict.status is Status.BLOCKED:
            found = blocked_by(target, probe, rules)
            if found is not None and found.stress:
                return Refusal(Signal.VERIFICATION, verdict.error or found.name)
        return None
    return refusal


def _classify(target: Target, probe: Probe, rules: RuleSet) -> Verdict:
    try:
        return classify(target, probe, rules)
    except Exception as exc:   # noqa: BLE001 - a hostile page is this link's result, not the run's end
        log.warning("classifying %s failed: %r", target.url, exc)
        return Verdict(Status.BROKEN, error=f"internal error while classifying: {type(exc).__name__}: "
                                            f"{str(exc)[:200]}")


async def _verdict(sibling: SiblingProbe, target: Target, probe: Probe, rules: RuleSet,
                   verdict: Verdict | None = None) -> Verdict:
    """Classify (unless the pace's refusal check did already); a live-looking page is then
    compared with a random sibling path of its host."""
    verdict = verdict or _classify(target, probe, rules)
    if verdict.error and verdict.error.startswith("internal error while classifying"):
        return verdict
    return await sibling.check(target, probe, verdict)


def _plan(targets: Sequence[Target], states: Mapping, settings: Settings, now: datetime,
          outcome: CheckOutcome) -> list[Target]:
    """Drop targets checked within --recheck-after. Only a success (ok, redirect) is served
    from this cache: a failure, a block or an exclusion (settings may have changed) is checked again."""
    window = settings.check.recheck_after
    if not window:
        return list(targets)
    cutoff = now - timedelta(seconds=window)
    todo = []
    for target in targets:
        state = states.get(target.url)
        fresh = state is not None and state.checked_at is not None and state.checked_at >= cutoff
        if fresh and state.status and Status(state.status) in _CACHEABLE:
            outcome.cached += 1
            continue
        todo.append(target)
    return todo


async def report_stage(store, settings: Settings, fmt: str = "html", path: Path | None = None) -> Path:
    """Regenerate the report from the database and write it atomically."""
    from .report import build_report, write_report
    model = await build_report(store, settings=settings)
    path = Path(path or settings.report_path)
    # Rendering 25,000 links takes a second or more: off the event loop, so that the
    # daemon's probes and its web server keep going meanwhile.
    await asyncio.to_thread(write_report, model, fmt, path)
    return path


#: An interrupted audit is resumed by the next audit started within this time; later, its
#: checks are history and the next audit checks everything again.
RESUME_WITHIN = timedelta(hours=24)


async def run_audit(store, settings: Settings, paths: Sequence[str], *,
                    progress: Progress | None = None, archive: bool = False,
                    archive_progress=None, resume: bool = True) -> AuditOutcome:
    """One-off audit: scan, check every cited link (or the stale ones), archive, summarise.

    ``resume``: skip the links that interrupted audits since the last finished one (within
    RESUME_WITHIN) already checked; their stored checks count as this audit's.
    """
    rules = load_rules(settings.health)
    now = utcnow()
    resumed_runs, done_urls = await store.resumable_audit(now, RESUME_WITHIN) if resume else ([], set())
    run_id = await store.start_run("audit", now)
    try:
        scan_outcome, collection = await _scan(store, settings, rules, paths=paths, now=now)
    except BaseException as exc:   # a missing path, an unreadable folder: the run failed
        stopped = isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt))
        await store.finish_run(run_id, state="interrupted" if stopped else "failed", now=utcnow(),
                               message=None if stopped else str(exc)[:500])
        raise
    targets = collection.targets
    check = CheckOutcome()        # filled as checks finish, so an interruption keeps its counts
    todo = [t for url, t in targets.items() if url not in done_urls]
    check.resumed, check.resumed_runs = len(targets) - len(todo), tuple(resumed_runs)
    state = "done"
    try:
        await check_stage(store, settings, rules, run_id=run_id, targets=todo,
                          progress=progress, outcome=check)
    except (asyncio.CancelledError, KeyboardInterrupt):
        state = "interrupted"
        raise
    finally:
        outcome = await _summarise(store, settings, run_id, scan_outcome, check, targets, collection)
        outcome.interrupted = state == "interrupted"
        await store.finish_run(run_id, state=state, now=utcnow(), notes_scanned=scan_outcome.notes_scanned,
                               notes_skipped=len(scan_outcome.notes_skipped), links_total=len(targets),
                               links_checked=check.checked,
                               counts={"status": dict(outcome.statuses), "health": dict(outcome.healths),
                                       "sibling_probes": check.sibling_probes})
    if archive:
        from .archive import plan_archive, run_archive
        await plan_archive(store, settings, utcnow())
        outcome.archive = await run_archive(store, settings, now_fn=utcnow, progress=archive_progress)
    return outcome


async def _summarise(store, settings: Settings, run_id: int, scan_outcome: ScanOutcome,
                     check: CheckOutcome, targets: Mapping[str, Target],
                     collection: Collection) -> AuditOutcome:
    """Counts by status and health over this audit's links, and the failing ones."""
    states = await store.link_states(list(targets))
    statuses: Counter = Counter()
    healths: Counter = Counter()
    where: dict[str, list[dict]] = {}
    for note, pairs in collection.refs.items():
        for ref, target in pairs:
            place = {"file": ref.file, "line": ref.line}
            cited = where.setdefault(target.url, [])
            if place not in cited[-1:]:      # a line citing a URL twice is one citation
                cited.append(place)
    failing = []
    for url, state in states.items():
        statuses[state.status or "unchecked"] += 1
        healths[str(state.health_state.health)] += 1
        if (state.status in _FAILING_WORDS) or state.health_state.health == Health.DEAD:
            failing.append({"url": state.display_url, "status": state.status, "health":
                            str(state.health_state.health), "error": getattr(state, "error", None),
                            "http_status": getattr(state, "http_status", None),
                            "occurrences": where.get(url, [])})
    failing.sort(key=lambda f: (f["occurrences"][0]["file"], f["occurrences"][0]["line"])
                 if f["occurrences"] else ("", 0))
    return AuditOutcome(run_id=run_id, scan=scan_outcome, check=check, failing=failing,
                        statuses=statuses, healths=healths)
