"""Politeness that listens: the pace of one host, learned from its answers (a pure policy).

:class:`HostPace` decides how many requests may be in flight on one host and how far
apart they start. It is a pure object: no I/O, no sleeping, the clock injected. The
embedded runner (checker.probe) and the cluster runner ask it the same three things::

    delay = pace.wait(in_flight)      # None: the host's window is full; else seconds to wait
    pace.started(in_flight)           # a request starts now
    pause = pace.observe(signal, latency, retry_after=None)   # its outcome; > 0: pause the host

The two anchors, as the issue asks:

- TCP congestion control (AIMD, RFC 5681 §3.1): the window grows by about one request
  per window of good answers and is halved on a sign of stress; one cut per window
  (answers to requests sent before the last cut do not cut again).
- Scrapy's AutoThrottle (docs.scrapy.org, "AutoThrottle extension"): error answers never
  speed a host up, and the delay follows what the host shows. Here the rate (1/interval)
  is halved on stress from the rate we were *measured* sending at, and climbs back fast
  to 75% of the rate that caused the stress, then only very slowly (TCP CUBIC's shape,
  RFC 9438 §4: concave towards the last known limit, cautious beyond it).

The configured per-host limit and interval are a promise: the window never exceeds
``ceiling`` and starts are never closer than ``min_interval``. The state worth keeping
across runs is :meth:`HostPace.learned` (a :class:`LearnedPace` row, stored by store/).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

__all__ = ["Signal", "PaceLimits", "LearnedPace", "HostPace", "pace_text"]

Clock = Callable[[], float]

#: After a stress, the rate climbs by this factor per good answer up to FAST_UNTIL of the
#: rate that caused it (about 14 answers to double) ...
FAST_GAIN = 1.05
#: Before any stress the rate doubles in about 7 answers (the rate's slow start).
START_GAIN = 1.1
FAST_UNTIL = 0.75
#: ... and beyond that by this factor (+2% per 100 answers): a host that
#: punishes with a 30 s captcha is not probed again within a run of a few minutes.
PROBE_GAIN = 1.0002
#: The window: +1/window per good answer (one per round trip), 1/16 of that when past
#: the window that last caused stress.
PROBE_SLOWNESS = 16.0
#: A latency jump: the recent latency (a moving average, weight FAST_WEIGHT) this many
#: times the host's unloaded latency, and at least JUMP_MARGIN seconds more, cuts the
#: window by JUMP_CUT (no pause). The unloaded latency is the lowest the average has
#: been, creeping up by BASE_CREEP per answer (a host may really become slower).
#: Averages, not single answers: one slow page among fast ones is that page, not load.
FAST_WEIGHT = 0.3
BASE_CREEP = 0.005
JUMP_PERSIST = 3        # answers in a row above the bound
JUMP_FACTOR = 2.5
JUMP_MARGIN = 0.1
JUMP_CUT = 0.7
JUMP_MIN_SAMPLES = 5
#: The pause after stress without Retry-After: base seconds, doubled per consecutive
#: stress (exponential backoff). A verification page costs more than a 429: the host
#: usually keeps a client on it for a while (30 s and more on WeChat).
PAUSE_BASE = 1.0
PAUSE_BASE_VERIFICATION = 5.0
RATE_WINDOW = 5.0
#: Recent cuts whose pace is kept, to be restored if they prove spurious.
UNDO_DEPTH = 16
#: A limit binds a start when the window was full with it, or when it came no later than
#: BOUND_SHARE of an interval (at least BOUND_SLACK s: a sleep oversleeps) after the interval
#: allowed it. Only answers to requests sent while a limit bound may raise that limit.
BOUND_SLACK = 0.05
BOUND_SHARE = 0.25


class Signal(enum.Enum):
    """What one answer says about the host's load."""

    OK = "ok"                      # an answer (a 404 too): the host copes
    STRESS = "stress"              # 429, 503, a rate-limit page or JSON code, a reset
    VERIFICATION = "verification"  # a captcha / verification page: the hardest stress sign
    TIMEOUT = "timeout"            # no answer in time


@dataclass(frozen=True, slots=True)
class PaceLimits:
    """The configured ceiling (a promise) and where to start."""

    ceiling: int                       # per-host concurrency: never exceeded
    min_interval: float = 0.0          # seconds between starts: never undercut
    start_concurrency: float | None = None   # None: 1, then slow start
    start_interval: float | None = None      # None: min_interval
    pause_max: float = 300.0


@dataclass(frozen=True, slots=True)
class LearnedPace:
    """A host's pace as learned: stored in the database and used as the next start."""

    host: str
    concurrency: float
    interval: float
    stress_concurrency: float | None = None   # the window that last caused stress
    stress_rate: float | None = None          # the rate (starts/s) that last caused stress
    last_stress: str | None = None            # what it was ("HTTP 429", "verification page")
    last_stress_at: float | None = None       # unix time
    requests: int = 0                         # in the run that learned it
    refusals: int = 0
    updated_at: float | None = None           # unix time


class HostPace:
    """AIMD window and AutoThrottle-like interval of one host; see the module docstring."""

    def __init__(self, limits: PaceLimits, *, clock: Clock,
                 learned: LearnedPace | None = None) -> None:
        self.limits = limits
        self._clock = clock
        ceiling = max(1, limits.ceiling)
        # Without a rule or history a host starts at one request and grows by one per good
        # answer (TCP's slow start): a host that slows down under load is seen early.
        start_c = limits.start_concurrency if limits.start_concurrency is not None else 1
        start_i = limits.start_interval if limits.start_interval is not None else limits.min_interval
        self.stress_concurrency: float | None = None
        self.stress_rate: float | None = None
        if learned is not None:
            start_c, start_i = learned.concurrency, learned.interval
            self.stress_concurrency, self.stress_rate = learned.stress_concurrency, learned.stress_rate
        self.window = min(float(ceiling), max(1.0, start_c))
        self.interval = max(limits.min_interval, start_i)
        self.paused_until = float("-inf")
        self.streak = 0                    # consecutive stress answers (sets the pause)
        self.last_stress: str | None = None
        self.last_stress_at: float | None = None
        self.requests = self.refusals = 0
        self.stressed = 0                  # refusals taken as stress (not a URL's own)
        self.cuts = 0                      # cuts so far (a refusal's cut is undone by number)
        self.good_since_stress = 0         # good answers since the last refusal taken as stress
        # The pace before each recent cut, by number, and the cuts found spurious.
        self._before: list[tuple[int, tuple[float, float, float | None, float | None]]] = []
        self._spurious: set[int] = set()
        self._next = float("-inf")
        self._cut_at = float("-inf")
        self._window_full_at = self._interval_bound_at = float("-inf")
        self._starts: deque[float] = deque()
        self._fast: float | None = None
        self._slow: float | None = None
        self._samples = 0
        self._above = 0

    # -- asking ---------------------------------------------------------------------------

    @property
    def concurrency(self) -> int:
        """Requests that may be in flight now (1 .. the ceiling)."""
        return max(1, min(self.limits.ceiling, int(self.window)))

    @property
    def rate(self) -> float:
        """The allowed start rate (starts per second; inf when only the window limits)."""
        return 1 / self.interval if self.interval > 0 else math.inf

    def usual_latency(self, min_answers: int = 8) -> float | None:
        """The host's unloaded latency (seconds), once it has answered ``min_answers`` times."""
        return self._slow if self._samples >= min_answers else None

    def wait(self, in_flight: int) -> float | None:
        """None when the window is full; else seconds until one more request may start."""
        if in_flight >= self.concurrency:
            return None
        now = self._clock()
        return max(0.0, self.paused_until - now, self._next - now)

    def started(self, in_flight: int) -> None:
        """Book a start now (``in_flight``: the host's requests already in flight)."""
        now = self._clock()
        # Which limit held this start back (RFC 7661's "validated" window): only a limit
        # that binds grows. A host whose queue runs dry, or that waits on its pause, answers
        # well at a pace never tried; counting those answers would grow the window past
        # anything tested, and the learned pace would start the next run there.
        if in_flight + 1 >= self.concurrency:
            self._window_full_at = now
        if self._next + max(BOUND_SLACK, BOUND_SHARE * self.interval) >= now:
            self._interval_bound_at = now
        self._next = max(now, self._next) + self.interval
        self._starts.append(now)
        while self._starts and self._starts[0] < now - RATE_WINDOW:
            self._starts.popleft()
        self.requests += 1

    def measured_rate(self) -> float:
        """Starts per second over the last few seconds (what we really sent)."""
        if not self._starts:
            return 0.0
        now = self._clock()
        span = max(1.0, min(RATE_WINDOW, now - self._starts[0]))
        return sum(1 for t in self._starts if t >= now - RATE_WINDOW) / span

    # -- learning -------------------------------------------------------------------------

    def observe(self, signal: Signal, latency: float, *, retry_after: float | None = None,
                reason: str | None = None) -> float:
        """Learn from one answer (``latency`` seconds after its start); return the pause (s)."""
        now = self._clock()
        sent_at = now - latency
        if signal is Signal.OK:
            self._good(latency, sent_at)
            return 0.0
        if signal is Signal.TIMEOUT:
            # A hang is the URL's own problem, not the host's load: measured on the corpus
            # simulation, cutting after 3 timeouts in a row left the last hanging URLs of
            # mp.weixin.qq.com retried one at a time (13 in 3.7 minutes). Overload shows as
            # refusals or a latency jump of the answers that do come.
            return 0.0
        return self._stress(signal, sent_at, now, retry_after, reason)

    def _good(self, latency: float, sent_at: float) -> None:
        if sent_at >= self._cut_at:
            self.streak = 0
        self.good_since_stress += 1
        if self._jumped(latency) and sent_at >= self._cut_at:
            self._cut(JUMP_CUT, self._clock(), cut_rate=False, refusal=False)
            return
        if self.window < self.limits.ceiling and self._window_full_at >= sent_at - BOUND_SLACK:
            if self.stress_concurrency is None:
                step = 1.0      # slow start (RFC 5681 §3.1): +1 per good answer until stress
            elif self.window + 1 >= self.stress_concurrency:
                step = 1 / (self.window * PROBE_SLOWNESS)
            else:
                step = 1 / self.window
            self.window = min(float(self.limits.ceiling), self.window + step)
        if self.interval > self.limits.min_interval and self._interval_bound_at >= sent_at - BOUND_SLACK:
            rate = self.rate
            fast = self.stress_rate is None or rate < FAST_UNTIL * self.stress_rate
            rate *= START_GAIN if self.stress_rate is None else FAST_GAIN if fast else PROBE_GAIN
            self.interval = max(self.limits.min_interval, 1 / rate)

    def _jumped(self, latency: float) -> bool:
        self._samples += 1
        if self._fast is None or self._slow is None:
            self._fast = self._slow = latency
            return False
        self._fast += (latency - self._fast) * FAST_WEIGHT
        self._slow = min(self._fast, self._slow + (self._fast - self._slow) * BASE_CREEP)
        if (self._samples > JUMP_MIN_SAMPLES and self._fast > JUMP_FACTOR * self._slow
                and self._fast - self._slow > JUMP_MARGIN):
            self._above += 1
        else:
            self._above = 0
        if self._above >= JUMP_PERSIST:
            self._fast, self._above = self._slow, 0      # one jump, one cut
            return True
        return False

    def _stress(self, signal: Signal, sent_at: float, now: float, retry_after: float | None,
                reason: str | None) -> float:
        self.refusals += 1
        self.stressed += 1
        self.good_since_stress = 0
        self.last_stress = reason or signal.value
        self.last_stress_at = now
        if sent_at >= self._cut_at:
            # Sent at the current pace: pause longer than last time; cut the pace once per
            # episode (answers during a host's sanction say nothing about the new pace).
            self.streak += 1
            if self.streak == 1:
                # The rate is cut when it was what bounded us (an interval in force), or
                # when the window cannot shrink further; else only the window (AIMD).
                rate_bound = self.interval > self.limits.min_interval or self.window <= 1.0
                self._cut(0.5, now, cut_rate=rate_bound)
            base = PAUSE_BASE_VERIFICATION if signal is Signal.VERIFICATION else PAUSE_BASE
            pause = base * 2 ** (self.streak - 1)
        else:
            pause = 0.0   # an answer to a request sent before the cut: already handled
        pause = min(pause, self.limits.pause_max)
        if retry_after is not None:   # the host said how long (the caller caps it: retry_after_cap)
            pause = max(pause, retry_after)
        self.paused_until = max(self.paused_until, now + pause)
        self._cut_at = max(self._cut_at, self.paused_until)
        return max(0.0, self.paused_until - now)

    def _cut(self, factor: float, now: float, *, cut_rate: bool, refusal: bool = True) -> None:
        self.cuts += 1
        if refusal:   # a latency jump is measured, never spurious: not undoable, not in the way
            self._before.append((self.cuts, (self.window, self.interval, self.stress_concurrency, self.stress_rate)))
            del self._before[:-UNDO_DEPTH]
        self.stress_concurrency = self.window
        self.window = max(1.0, self.window * factor)
        if cut_rate:
            # What we really sent, unless the host was paused within the measuring window:
            # then the pause is in it, and halving it would halve the pause, not our rate.
            measured = self.measured_rate() if self.paused_until < now - RATE_WINDOW else 0.0
            rate = min(self.rate, measured) if measured > 0 else self.rate
            if math.isfinite(rate) and rate > 0:
                self.stress_rate = rate
                # Never longer apart than the longest pause (check.host_pause_max): a wider
                # interval would be a pause in disguise, beyond what the settings promise.
                longest = max(self.limits.min_interval, self.limits.pause_max)
                self.interval = min(longest, max(self.limits.min_interval, 1 / (rate * factor)))
        self._cut_at = now

    def own_refusal(self) -> None:
        """A refusal judged its URL's own (see checker.schedule): counted; no cut, no pause."""
        self.refusals += 1

    def spurious(self, cut: int) -> bool:
        """Cut number ``cut`` was spurious: the refusal that caused it proved to be its URL's
        own (refused again and again while the host answered the rest). TCP's answer to a
        spurious congestion signal, the Eifel response (RFC 4015): restore the pace the signal
        took (not the time). Cuts are undone newest first, so a spurious cut with a real one
        after it waits; False when ``cut`` is not among the recent ones."""
        if cut not in (n for n, _ in self._before):
            return False
        self._spurious.add(cut)
        while self._before and self._before[-1][0] in self._spurious:
            n, (window, interval, self.stress_concurrency, self.stress_rate) = self._before.pop()
            self._spurious.discard(n)
            self.window = max(self.window, window)
            self.interval = min(self.interval, interval)
            self.streak = 0
        return True

    def learned(self, host: str, *, wall_clock: float | None = None) -> LearnedPace:
        """The pace worth starting from next time (``wall_clock``: unix time for the row)."""
        stress_at = None
        if self.last_stress_at is not None and wall_clock is not None:
            stress_at = wall_clock - (self._clock() - self.last_stress_at)
        return LearnedPace(host=host, concurrency=round(self.window, 3), interval=round(self.interval, 4),
                           stress_concurrency=self.stress_concurrency, stress_rate=self.stress_rate,
                           last_stress=self.last_stress, last_stress_at=stress_at,
                           requests=self.requests, refusals=self.refusals, updated_at=wall_clock)


def pace_text(pace: LearnedPace) -> str:
    """One line for people: "2 at a time, 1.7/s; last stress: HTTP 429 (2026-11-29 13:05 UTC)"."""
    window = max(1, int(pace.concurrency))
    rate = f"{1 / pace.interval:.3g}/s" if pace.interval > 0 else "no interval"
    text = f"{window} at a time, {rate}"
    if pace.last_stress:
        text += f"; last stress: {pace.last_stress}"
        if pace.last_stress_at is not None:
            when = datetime.fromtimestamp(pace.last_stress_at, timezone.utc)
            text += f" ({when:%Y-%m-%d %H:%M} UTC)"
    return text
