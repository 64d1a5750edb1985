"""The run's scheduling: a queue per host, refused work re-queued, hosts that cannot answer settled.

:class:`HostRuns` drives one run of the probe engine (checker.probe calls it from
``Prober.run``). Each host has a lane: a queue of URLs and a few workers (its ceiling).
A worker takes a URL, waits for the host's turn (checker.ratelimit / checker.pace),
makes one attempt, and then:

- a refusal caused by our pace (429, 503, a verification or rate-limit page: the
  ``refusal`` function says which) is not a result: the host's pace is cut and paused,
  and the URL goes back to the end of its host's queue, while the host's budget for the
  run lasts (``check.host_retry_budget``). A host that stays hostile (the budget spent,
  or ``check.host_set_aside_after`` pauses in a row without one good answer) is set aside with one
  notice; its URLs never answered are left unrecorded for the next run or daemon cycle;
- a reset or 5xx worth retrying goes to the end of its host's queue with its backoff as
  a not-before time: no slot is held through the backoff; a timeout likewise, but after
  TIMEOUT_RETRY_AFTER of its host's other URLs;
- a host whose name does not resolve, or that refuses connections, is settled after
  SETTLE_AFTER such failures and no answer: its other URLs are recorded from that (not
  tried one by one). When nearly every host fails so, the network looks down: one
  notice, and from then on one failure settles a host.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from .models import Cause, Probe, Target
from .pace import Signal
from .retry import parse_retry_after, retry_delay, should_retry

if TYPE_CHECKING:   # pragma: no cover
    from .probe import Prober

__all__ = ["Refusal", "RefusalFn", "HostRuns", "LaneView", "default_refusal", "describe_hosts"]

log = logging.getLogger("linkhealth.probe")

Sink = Callable[[Target, Probe], Awaitable[None]]

# Consecutive refusals, each after a pause and without a good answer between, after
# which a host is set aside for the run: check.host_set_aside_after, 7 by default (the
# pauses double: after a verification page 5 + 10 + 20 + 40 + 80 + 120 s of waiting,
# after a 429 1 + 2 + ... + 32 s).
#: Refusals of one URL after which its last answer is recorded (a URL that alone answers
#: 503 while its host answers well is that URL's result, not the host's pace).
REFUSALS_PER_URL = 4
#: A refused URL is tried again after this many of its host's other URLs (plus the host's
#: window). Refused again when no other refusal was taken as stress since its last refusal,
#: and its host has answered this many requests well since the last such refusal, it is
#: refused for its own sake (a broken page answering 503, an article behind its own verification): that refusal
#: neither cuts nor pauses the host, and once the URL is recorded, the cut its first refusal
#: caused is undone (checker.pace.HostPace.spurious). Without this, 1% of WeChat URLs that
#: always answer the verification page cut the host's rate 4 times each: 0.57 requests a
#: second on the corpus simulation of bench/corpus_report.py.
OWN_AFTER_GOOD = 3
#: DNS failures / refused connections, with no answer from the host, that settle a host.
SETTLE_AFTER = 3
#: The network looks down when at least this many hosts were settled and at most
#: NETWORK_ANSWERED of the hosts tried answered.
NETWORK_MIN_HOSTS = 10
NETWORK_ANSWERED = 0.05
#: How a URL that hangs counts against its host: it holds one of the host's slots (the
#: configured per-host limit is a promise about connections), but only as long as it
#: must. A first attempt on a host that answers in ~160 ms gets HANG_FACTOR x its usual
#: latency (at least HANG_MIN s, at most the configured timeout); a URL that timed out is
#: tried once more, at the end of its host's queue, with the configured timeout. On the
#: corpus simulation (2% of URLs hang) this turns 3 x 20 s of a slot per hanging URL into
#: 5 + 20 s (bench/corpus_pace.py).
HANG_FACTOR = 20.0
HANG_MIN = 5.0
#: A URL that timed out is tried again after this many of its host's other URLs (last when
#: fewer are left), not at the end of the queue: a hang's retry holds a slot for the whole
#: timeout, and among the host's other work it takes a slot that the host's rate leaves idle.
#: At the end, every hang's retry of a rate-bound host queued behind the rest: on the corpus
#: simulation, 273 hanging WeChat URLs x 20 s / 10 slots after the host's last page.
TIMEOUT_RETRY_AFTER = 10
_TIMEOUTS = frozenset({Cause.CONNECT_TIMEOUT, Cause.READ_TIMEOUT})
_SETTLING = frozenset({Cause.DNS, Cause.REFUSED})


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer that refuses because of our pace: how hard, and what it was."""

    signal: Signal
    reason: str


RefusalFn = Callable[[Target, Probe], Refusal | None]


def default_refusal(target: Target, probe: Probe) -> Refusal | None:
    """429 and 503 refuse (RFC 6585 §4, RFC 9110 §15.6.4); site rules add pages (checker.pipeline)."""
    if probe.http_status in (429, 503):
        return Refusal(Signal.STRESS, f"HTTP {probe.http_status}")
    return None


@dataclass
class _Item:
    target: Target
    attempts: int = 0
    refused: int = 0
    not_before: float = -math.inf
    last: Probe | None = None
    t0: float | None = None
    started_at: datetime | None = None
    cut: int | None = None      # the host's cut that this URL's first refusal caused
    seen: int = -1              # the host's refusals taken as stress, after this URL's last refusal
    own: bool = False           # its refusals are its own (OWN_AFTER_GOOD)


@dataclass
class _Lane:
    host: str
    queue: deque[_Item]
    total: int
    done: int = 0
    busy: int = 0
    refusals: int = 0
    answered: int = 0
    unreachable: int = 0
    failure: Probe | None = None       # the last DNS failure / refused connection
    settled: Probe | None = None       # what the host's other URLs are recorded with
    closed: str | None = None          # why the lane stopped early (settled / set aside)
    started: float | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


@dataclass(frozen=True, slots=True)
class LaneView:
    """One host's progress, for the progress display: what is left, its pace and ETA."""

    host: str
    left: int
    in_flight: int
    concurrency: int
    rate: float          # allowed starts per second (inf: the window alone limits)
    paused_for: float    # seconds until the host's pause ends (0: not paused)
    eta: float | None    # seconds until its queue is done, at its pace so far


def describe_hosts(views: list[LaneView], limit: int = 3) -> str:
    """Where the time goes, for the progress display: the busiest hosts, pace, what is left, ETA."""
    parts = []
    for v in views[:limit]:
        rate = f"{v.rate:.3g}/s" if v.rate != math.inf else "no interval"
        text = f"{v.host} {v.left:,} left, {v.concurrency} at a time, {rate}"
        if v.paused_for > 0:
            text += f", paused {v.paused_for:.0f}s"
        if v.eta is not None:
            text += f", ~{_duration(v.eta)}"
        parts.append(text)
    return " | ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


class HostRuns:
    """One run over many targets; see the module docstring."""

    def __init__(self, prober: "Prober", sink: Sink, *, refusal: RefusalFn | None = None,
                 stop: asyncio.Event | None = None) -> None:
        self._prober = prober
        self._check = prober.settings.check
        self._limiter = prober.limiter
        self._clock = prober.clock
        self._sleep = prober.sleep
        self._sink = sink
        self._refusal = refusal or default_refusal
        self._stop = stop
        self.lanes: dict[str, _Lane] = {}
        self.notices: list[str] = []
        self.network_down = False
        self._failed: list[BaseException] = []

    async def run(self, targets: Iterable[Target]) -> None:
        """Check every target; returns when all are recorded, set aside, or the run stops."""
        for target in targets:
            host = _host_key(target)
            lane = self.lanes.get(host)
            if lane is None:
                lane = self.lanes[host] = _Lane(host, deque(), 0)
            lane.queue.append(_Item(target))
            lane.total += 1
        tasks: list[asyncio.Task[None]] = []
        try:
            # Largest hosts first: their workers queue first for the global slots.
            for lane in sorted(self.lanes.values(), key=lambda lane: lane.total, reverse=True):
                workers = min(self._limiter.limits(lane.host).per_host, lane.total)
                tasks.extend(asyncio.create_task(self._worker(lane)) for _ in range(workers))
            await asyncio.gather(*tasks)
            self._set_aside_notices()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def queued(self, host: str) -> bool:
        """Whether ``host`` has URLs waiting in this run (its connection is worth keeping)."""
        lane = self.lanes.get(host)
        return lane is not None and bool(lane.queue) and not lane.closed

    def views(self) -> list[LaneView]:
        """Every host with work left, busiest (most left) first."""
        now = self._clock()
        out = []
        for lane in self.lanes.values():
            left = lane.total - lane.done
            if left <= 0 or lane.closed:
                continue
            state = self._limiter.host(lane.host)
            eta = None
            if lane.done and lane.started is not None and now > lane.started:
                eta = left / (lane.done / (now - lane.started))
            out.append(LaneView(lane.host, left, state.in_flight, state.pace.concurrency, state.pace.rate,
                                max(0.0, state.pace.paused_until - now), eta))
        out.sort(key=lambda v: (-v.left, v.host))
        return out

    # -- one worker ------------------------------------------------------------------------

    def _halted(self) -> bool:
        return bool(self._failed) or (self._stop is not None and self._stop.is_set())

    async def _worker(self, lane: _Lane) -> None:
        try:
            while True:
                item = await self._next(lane)
                if item is None:
                    return
                lane.busy += 1
                try:
                    await self._one(lane, item)
                finally:
                    lane.busy -= 1
                    async with lane.changed:
                        lane.changed.notify_all()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._failed.append(exc)
            raise

    async def _next(self, lane: _Lane) -> _Item | None:
        while True:
            if lane.closed or self._halted():
                return None
            if lane.queue:
                return lane.queue.popleft()
            if lane.busy == 0:
                return None
            async with lane.changed:      # an item in flight may come back (re-queued)
                if not lane.queue and lane.busy and not lane.closed:
                    await lane.changed.wait()

    async def _one(self, lane: _Lane, item: _Item) -> None:
        wait = item.not_before - self._clock()
        if wait > 0:
            await self._sleep(wait)       # a retry's backoff: no host slot is held
        if lane.closed:
            await self._leave(lane, item)
            return
        if item.t0 is None:
            item.t0, item.started_at = self._clock(), datetime.now(timezone.utc)
        if lane.started is None:
            lane.started = self._clock()
        # The lane may close (settled, set aside) or the run stop while this waits for its turn.
        done = await self._prober.attempt(item.target, self._timeout(lane, item),
                                          wanted=lambda: not lane.closed and not self._halted())
        if done is None:
            await self._leave(lane, item)
            return
        probe, latency = done
        item.attempts += 1
        probe = replace(probe, attempts=item.attempts, started_at=item.started_at,
                        elapsed_ms=int((self._clock() - item.t0) * 1000))
        refusal = self._refusal(item.target, probe)
        if refusal is not None:
            await self._refused(lane, item, probe, latency, refusal)
            return
        await self._answered(lane, item, probe, latency)

    def _timeout(self, lane: _Lane, item: _Item) -> float | None:
        usual = self._limiter.host(lane.host).pace.usual_latency()
        if item.attempts or usual is None:
            return None                    # the configured timeout
        return min(self._check.timeout, max(HANG_MIN, HANG_FACTOR * usual))

    async def _refused(self, lane: _Lane, item: _Item, probe: Probe, latency: float,
                       refusal: Refusal) -> None:
        retry_after = parse_retry_after(probe.header("retry-after"))
        if retry_after is not None:
            retry_after = min(retry_after, self._check.retry_after_cap)
        pace = self._limiter.host(lane.host).pace
        item.own = item.own or (item.seen == pace.stressed and pace.good_since_stress >= OWN_AFTER_GOOD)
        if item.own:
            pace.own_refusal()
        else:
            cuts = pace.cuts
            await self._limiter.observe(lane.host, refusal.signal, latency, retry_after=retry_after,
                                        reason=refusal.reason)
            if pace.cuts != cuts and item.cut is None:
                item.cut = pace.cuts
        item.seen = pace.stressed
        lane.refusals += 1
        item.refused += 1
        item.last = probe
        if lane.refusals > self._check.host_retry_budget or pace.streak >= self._check.host_set_aside_after:
            await self._set_aside(lane, refusal.reason)
        if lane.closed or item.refused >= REFUSALS_PER_URL:
            if item.own and item.cut is not None:
                await self._limiter.spurious(lane.host, item.cut)
            await self._record(lane, item, probe)
            return
        # Checked again after the host's pause, once a few others have been answered at the
        # new pace: soon enough to tell its own refusal from its host's (OWN_AFTER_GOOD).
        lane.queue.insert(min(len(lane.queue), OWN_AFTER_GOOD + pace.concurrency), item)

    async def _answered(self, lane: _Lane, item: _Item, probe: Probe, latency: float) -> None:
        cause = probe.cause
        if cause in _SETTLING:
            lane.unreachable += 1           # no answer: the pace learns nothing from it
            lane.failure = probe
            if not self.network_down and self._network_looks_down():
                await self._network_down()
            settle = SETTLE_AFTER if not self.network_down else 1
            if lane.answered == 0 and lane.unreachable >= settle and not lane.closed:
                await self._record(lane, item, probe)
                await self._settle(lane, probe)
                return
        else:
            signal = {Cause.CONNECT_TIMEOUT: Signal.TIMEOUT, Cause.READ_TIMEOUT: Signal.TIMEOUT,
                      Cause.DISCONNECTED: Signal.STRESS}.get(cause, Signal.OK)   # type: ignore[arg-type]
            await self._limiter.observe(lane.host, signal, latency,
                                        reason="connection reset" if signal is Signal.STRESS else None)
            if probe.http_status is not None:
                lane.answered += 1
        retries = min(self._check.retries, 1) if cause in _TIMEOUTS else self._check.retries
        if item.attempts <= retries and should_retry(probe.http_status, cause) and not lane.closed:
            # At the end of its host's queue, after its backoff: the slot goes to other URLs.
            item.not_before = self._clock() + retry_delay(
                item.attempts, None, base=self._check.backoff_base, cap=self._check.backoff_max,
                retry_after_cap=self._check.retry_after_cap, rand=self._prober.rand)
            item.last = probe
            if cause in _TIMEOUTS:
                lane.queue.insert(min(len(lane.queue), TIMEOUT_RETRY_AFTER), item)
            else:
                lane.queue.append(item)
            return
        await self._record(lane, item, probe)

    async def _record(self, lane: _Lane, item: _Item, probe: Probe) -> None:
        if probe.url != item.target.url:
            probe = replace(probe, url=item.target.url)
        lane.done += 1
        await self._sink(item.target, probe)

    async def _leave(self, lane: _Lane, item: _Item) -> None:
        """A URL of a lane closed meanwhile: its last answer if it had one, the host's failure
        if the host was settled, else left unrecorded (for the next run)."""
        if item.last is not None:
            await self._record(lane, item, item.last)
        elif lane.settled is not None:
            await self._record(lane, item, lane.settled)

    # -- closing a lane ----------------------------------------------------------------------

    async def _set_aside(self, lane: _Lane, reason: str) -> None:
        if lane.closed:
            return
        lane.closed = reason
        while lane.queue:       # what was refused so far stays refused: recorded (blocked)
            await self._leave(lane, lane.queue.popleft())

    def _set_aside_notices(self) -> None:
        for lane in self.lanes.values():
            if lane.closed and not lane.closed.startswith("settled"):
                left = lane.total - lane.done
                self._notice(f"{lane.host}: paused after repeated refusals ({lane.closed}); "
                             f"{left:,} link{'s' * (left != 1)} left for the next run")

    async def _settle(self, lane: _Lane, probe: Probe) -> None:
        lane.closed = f"settled: {probe.cause}"
        tries = lane.unreachable
        detail = f"{probe.error or probe.cause} (not tried: {lane.host} failed {tries} time{'s' * (tries != 1)})"
        lane.settled = Probe(url="", cause=probe.cause, error=detail, attempts=0,
                             started_at=datetime.now(timezone.utc), elapsed_ms=0)
        while lane.queue:
            await self._leave(lane, lane.queue.popleft())

    async def _network_down(self) -> None:
        """Say it once; settle every host that failed so and never answered."""
        self.network_down = True
        self._notice(f"the network looks down: {self._failed_hosts()} hosts could not be reached "
                     f"(DNS failure or connection refused) and none answered; from now on a host "
                     f"is recorded unreachable after its first failure")
        for lane in list(self.lanes.values()):
            if lane.failure is not None and not lane.answered and not lane.closed:
                await self._settle(lane, lane.failure)

    def _failed_hosts(self) -> int:
        return sum(1 for lane in self.lanes.values() if lane.unreachable and not lane.answered)

    def _network_looks_down(self) -> bool:
        failed = self._failed_hosts()
        answered = sum(1 for lane in self.lanes.values() if lane.answered)
        return failed >= NETWORK_MIN_HOSTS and answered <= NETWORK_ANSWERED * (failed + answered)

    def _notice(self, text: str) -> None:
        # The CLI prints the notices itself; the daemon's logs (info and up) carry them.
        self.notices.append(text)
        log.info("%s", text)


def _host_key(target: Target) -> str:
    return (target.host or urlsplit(target.url).hostname or "").lower()
