"""Hosts that throttle, for benchmarks: limits the checker is not told, enforced per host.

Used by bench/bench_pace.py and bench/corpus_pace.py. Each throttle sees a request
start (``enter``) and end (``leave``) and answers with a refusal or None (serve it):

- :class:`RateWindow`: more than ``starts`` requests starting within ``window`` seconds
  sanction the client for ``sanction`` seconds; every answer meanwhile is a refusal:
  on WeChat a 302 to its verification page, elsewhere a 429 (``Retry-After`` optional);
- :class:`ConcurrencyCap`: more than ``cap`` in flight: 429, with or without Retry-After;
- :class:`SlowsUnderLoad`: no refusal, but each request in flight beyond ``knee``
  multiplies the latency by ``factor`` (a server that queues).

:class:`Ledger` records, per host, every request's start and the peak in flight, so
that a benchmark or a test can prove the per-host ceilings were never passed.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

__all__ = ["Refuse", "RateWindow", "ConcurrencyCap", "SlowsUnderLoad", "Ledger", "CAPTCHA_PATH", "LIVE", "PAGE",
           "CAPTCHA"]

CAPTCHA_PATH = "/mp/wappoc_appmsgcaptcha"
#: Pages shaped like their sites: a live WeChat article, any other page, the verification page.
LIVE = ("<html><head><title>{title}</title><script>var msg_title = '{title}';</script></head>"
        "<body><div id=\"js_article\"><div id=\"js_content\"><p>{body}</p></div></div></body></html>")
PAGE = "<html><head><title>{title}</title></head><body><p>{body}</p></body></html>"
CAPTCHA = "<html><head><title>环境异常</title></head><body><p>环境异常</p><a>去验证</a></body></html>"


@dataclass(frozen=True)
class Refuse:
    """How a throttle refuses: a status, headers, and a body."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    text: str = ""


def _refusal(verification: bool, retry_after: int | None) -> Refuse:
    if verification:
        return Refuse(302, (("Location", f"{CAPTCHA_PATH}?poc_token=bench"),))
    headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
    return Refuse(429, headers, "<title>429 Too Many Requests</title>")


@dataclass
class RateWindow:
    """More than ``starts`` starts in ``window`` s: refused for ``sanction`` s."""

    starts: int
    window: float
    sanction: float = 0.0
    verification: bool = False
    retry_after: int | None = None
    _seen: deque = field(default_factory=deque)
    _until: float = float("-inf")
    refusals: int = 0

    def enter(self, now: float) -> Refuse | None:
        """A request starts: refuse it, or let it through."""
        self._seen.append(now)
        while self._seen and self._seen[0] <= now - self.window:
            self._seen.popleft()
        if len(self._seen) > self.starts:
            self._until = max(self._until, now + self.sanction)
            self.refusals += 1
            return _refusal(self.verification, self.retry_after)
        if now < self._until:
            self.refusals += 1
            return _refusal(self.verification, self.retry_after)
        return None

    def leave(self, now: float) -> None:
        """A request ends."""

    def latency(self, base: float, in_flight: int) -> float:
        """The answer's latency."""
        return base

    def oracle(self, urls: int, latency: float, ceiling: int) -> float:
        """Seconds a client that knows the limit needs for ``urls`` requests."""
        rate = self.starts / self.window
        return max(urls - self.starts, 0) / rate + latency


@dataclass
class ConcurrencyCap:
    """More than ``cap`` requests in flight: 429 (with ``Retry-After`` when set)."""

    cap: int
    retry_after: int | None = None
    in_flight: int = 0
    refusals: int = 0

    def enter(self, now: float) -> Refuse | None:
        """A request starts: refuse it, or let it through."""
        self.in_flight += 1
        if self.in_flight > self.cap:
            self.refusals += 1
            return _refusal(False, self.retry_after)
        return None

    def leave(self, now: float) -> None:
        """A request ends."""
        self.in_flight -= 1

    def latency(self, base: float, in_flight: int) -> float:
        """The answer's latency."""
        return base

    def oracle(self, urls: int, latency: float, ceiling: int) -> float:
        """Seconds a client that knows the limit needs for ``urls`` requests."""
        return urls * latency / min(self.cap, ceiling)


@dataclass
class SlowsUnderLoad:
    """Latency x ``factor`` per request in flight beyond ``knee``."""

    knee: int
    factor: float = 3.0
    refusals: int = 0

    def enter(self, now: float) -> Refuse | None:
        """Never refuses."""
        return None

    def leave(self, now: float) -> None:
        """A request ends."""

    def latency(self, base: float, in_flight: int) -> float:
        """The answer's latency: slower with each request beyond the knee."""
        return base * self.factor ** max(0, in_flight - self.knee)

    def oracle(self, urls: int, latency: float, ceiling: int) -> float:
        """Seconds a client that knows the best concurrency needs for ``urls`` requests."""
        return urls * latency / min(self.knee, ceiling)


@dataclass
class Ledger:
    """Per host: starts (monotonic seconds), requests in flight and their peak."""

    starts: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    peak: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def enter(self, host: str) -> float:
        """Record a start; returns its time."""
        now = time.monotonic()
        self.starts[host].append(now)
        self.in_flight[host] += 1
        self.peak[host] = max(self.peak[host], self.in_flight[host])
        return now

    def leave(self, host: str) -> None:
        """Record an end."""
        self.in_flight[host] -= 1

    def min_gap(self, host: str) -> float:
        """The shortest time between two starts on ``host``."""
        s = self.starts.get(host, [])
        return min((b - a for a, b in zip(s, s[1:])), default=float("inf"))
