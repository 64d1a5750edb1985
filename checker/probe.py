"""The probe engine: fetch every target once, politely, and record what was seen.

:class:`Prober` owns one ClientSession per run (connection reuse, DNS cache) and one
:class:`~checker.ratelimit.Limiter` (each host's learned pace). :meth:`Prober.run`
schedules by host (checker.schedule): a queue per host, hosts started largest first,
refused and retried URLs back at the end of their host's queue. The largest host
(WeChat in the real notes: over half the URLs) therefore starts at once and stays
busy while small hosts fill the other slots.

:func:`transport_status` maps the HTTP/transport facts of a Probe to a DESIGN
status; checker.classify layers site rules on top of it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from .errors import LinkhealthError
from .http import classify_exception, create_session, read_limited
from .models import Cause, Hop, HostPolicy, Probe, Status, Target
from .pace import LearnedPace, Signal
from .page import decode_body, extract_title, is_html, is_json
from .ratelimit import Limiter
from .retry import parse_retry_after, retry_delay, should_retry
from .schedule import HostRuns, LaneView, RefusalFn, default_refusal
from .settings import Settings

__all__ = ["Prober", "transport_status", "RECORDED_HEADERS"]

#: Response headers kept in Probe.headers (the classifier and the report use them).
RECORDED_HEADERS = ("location", "content-type", "content-length", "retry-after", "server",
                    "cf-mitigated")
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})   # RFC 9110 §15.4.2 and §15.4.9
Sink = Callable[[Target, Probe], Awaitable[None]]


@dataclass
class _Attempt:
    """Mutable notes of one attempt (a redirect chain); frozen into a Probe at the end."""

    url: str
    method: str
    status: int | None = None
    final_url: str | None = None
    hops: list[Hop] = field(default_factory=list)
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None
    raw: bytes | None = None
    truncated: bool = False
    cause: Cause | None = None
    error: str | None = None


log = logging.getLogger("linkhealth.probe")


class Prober:
    """Fetches targets with retries, limits and bounded reads; see the module docstring."""

    def __init__(self, settings: Settings, *,
                 host_policy: Callable[[str], HostPolicy | None] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 rand: Callable[[], float] = random.random,
                 learned: dict[str, LearnedPace] | None = None,
                 limiter: Limiter | None = None,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.settings = settings
        self._check = settings.check
        self._host_policy = host_policy
        self.sleep = sleep
        self.clock = clock
        self.rand = rand
        self._session: aiohttp.ClientSession | None = None
        # A given limiter (a cluster worker's: the same pace, each start also booked on the
        # database) replaces the in-process one.
        self.limiter = limiter or Limiter(self._check, host_policy=host_policy, learned=learned,
                                          sleep=sleep, clock=clock)
        # A given session (a cluster worker's, shared by its jobs) is used, and not closed, here.
        self._given_session = session
        self._runs: HostRuns | None = None
        self._rule_headers: dict[str, dict[str, str]] = {}    # host -> its site rule's headers
        self.notices: list[str] = []

    async def __aenter__(self) -> "Prober":
        self._session = self._given_session or create_session(self.settings)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None and self._session is not self._given_session:
            await self._session.close()
        self._session = None

    # -- one URL -------------------------------------------------------------------------

    async def fetch(self, target: Target) -> Probe:
        """Fetch one target with retries, honouring the host's limits; never raises for I/O."""
        assert self._session is not None and self.limiter is not None, "use 'async with Prober(...)'"
        started_at = datetime.now(timezone.utc)
        t0 = self.clock()
        host = _host_key(target)
        attempts = 0
        try:
            while True:
                attempts += 1
                async with self.limiter.slot(host):
                    t_attempt = self.clock()
                    result = await self._attempt(target.url)
                    latency = self.clock() - t_attempt
                # Computed before deciding to retry: a Retry-After pauses the whole host
                # even when this URL is not retried (its last attempt, or --retries 0).
                delay = await self._delay(host, attempts, result, latency)
                if attempts > self._check.retries or not should_retry(result.status, result.cause):
                    break
                await self.sleep(delay)
            elapsed = self.clock() - t0
            return self._probe(result, attempts, latency, elapsed, started_at)
        except LinkhealthError:
            # A fault of the run, not this URL's outcome: the cluster's limiter could not
            # reach the database to book the request (checker.cluster.pace).
            raise
        except Exception as exc:   # noqa: BLE001 - one hostile page must not end the run
            log.warning("probe of %s failed unexpectedly: %r", target.url, exc)
            return Probe(url=target.url, cause=Cause.OTHER, attempts=attempts, started_at=started_at,
                         error=f"internal error while checking: {type(exc).__name__}: {str(exc)[:200]}",
                         elapsed_ms=int((self.clock() - t0) * 1000))

    async def attempt(self, target: Target, timeout: float | None = None,
                      wanted: Callable[[], bool] | None = None) -> tuple[Probe, float] | None:
        """One attempt at the host's turn (no retry, no pace update): the probe and its latency.

        ``timeout`` (default: the configured one) bounds this attempt. ``wanted`` is asked
        once the turn has come: False means the attempt is no longer needed (None returned)."""
        assert self._session is not None, "use 'async with Prober(...)'"
        started_at = datetime.now(timezone.utc)
        try:
            async with self.limiter.slot(_host_key(target)):
                if wanted is not None and not wanted():
                    return None
                t0 = self.clock()
                result = await self._attempt(target.url, timeout)
                latency = self.clock() - t0
        except Exception as exc:   # noqa: BLE001 - one hostile page must not end the run
            log.warning("probe of %s failed unexpectedly: %r", target.url, exc)
            return Probe(url=target.url, cause=Cause.OTHER, attempts=1, started_at=started_at,
                         error=f"internal error while checking: {type(exc).__name__}: {str(exc)[:200]}"), 0.0
        return self._probe(result, 1, latency, latency, started_at), latency

    async def _delay(self, host: str, attempt: int, result: _Attempt, latency: float) -> float:
        retry_after = None
        if result.status in (429, 503):
            retry_after = parse_retry_after(_header(result.headers, "retry-after"))
            if retry_after is not None:
                retry_after = min(retry_after, self._check.retry_after_cap)
            # The whole host asked for a pause, not only this URL.
            await self.limiter.observe(host, Signal.STRESS, latency, retry_after=retry_after,
                                        reason=f"HTTP {result.status}")
        return retry_delay(attempt, retry_after, base=self._check.backoff_base,
                           cap=self._check.backoff_max,
                           retry_after_cap=self._check.retry_after_cap, rand=self.rand)

    async def _attempt(self, url: str, timeout: float | None = None) -> _Attempt:
        method = "HEAD" if self._wants_head(url) else "GET"
        result = await self._bounded_chain(url, method, timeout)
        if method == "HEAD" and _head_refused(result.status):
            # Some servers refuse HEAD (405/501) or answer it wrongly (403/404 while
            # GET works); RFC 9110 §9.3.2 says HEAD should mirror GET, so GET decides.
            result = await self._bounded_chain(url, "GET", timeout)
        return result

    def _wants_head(self, url: str) -> bool:
        path = urlsplit(url).path.lower()
        return path.endswith(tuple(self._check.head_extensions))

    async def _bounded_chain(self, url: str, method: str, timeout: float | None = None) -> _Attempt:
        result = _Attempt(url=url, method=method, final_url=url)
        try:
            async with asyncio.timeout(timeout or self._check.timeout):
                await self._chain(result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every transport fault becomes a Cause, by contract
            result.cause, result.error = classify_exception(exc)
        return result

    async def _chain(self, result: _Attempt) -> None:
        assert self._session is not None
        current = URL(result.url)
        seen = {str(current)}
        for _ in range(self._check.max_redirects + 1):
            async with self._session.request(result.method, current, allow_redirects=False,
                                             headers=self._request_headers(current)) as resp:
                result.status = resp.status
                result.final_url = str(resp.url)
                result.headers = _recorded(resp)
                result.content_type = resp.headers.get("Content-Type")
                location = resp.headers.get("Location")
                if resp.status in _REDIRECT_CODES and location:
                    result.hops.append(Hop(str(resp.url), resp.status))
                    nxt = resp.url.join(URL(location))
                    if nxt.scheme not in ("http", "https"):
                        result.cause = Cause.INVALID_URL
                        result.error = f"redirect to a non-HTTP URL: {location[:200]}"
                        return
                    if str(nxt) in seen:
                        result.cause = Cause.TOO_MANY_REDIRECTS
                        result.error = f"redirect loop: {resp.url} -> {nxt}"
                        return
                    seen.add(str(nxt))
                    current = nxt
                    continue
                if result.method == "GET" and (is_html(result.content_type) or is_json(result.content_type)):
                    # JSON too: some sites answer robots with a JSON error and status 200
                    # (Zhihu's {"error": {"code": 40362 ...}}), which the site rules read.
                    limit = self._check.max_body_bytes
                    raw = await read_limited(resp, limit + 1)
                    result.truncated = len(raw) > limit
                    result.raw = raw[:limit]
                return
        result.cause = Cause.TOO_MANY_REDIRECTS
        result.error = f"more than {self._check.max_redirects} redirects"

    def _request_headers(self, url: URL) -> dict[str, str] | None:
        """The site rule's headers for the URL's host (HostPolicy.headers, looked up once
        per host), and ``Connection: close`` when the host has nothing left in the run's queue: the
        connection would only sit idle in the pool until its keep-alive ends. On asyncio's
        loop each idle TLS connection holds a zero-filled 256 KiB read buffer: on the corpus
        simulation (1,900 hosts, most with one or two links) some 700 sat idle at once,
        +280 MB of RSS. (Keeping it for the random-sibling fetch that may follow saved a
        third of the TLS handshakes on a 6,000-URL slice of that simulation, no CPU
        measurably, and cost 13 MB of peak RSS: not done.)"""
        host = (url.host or "").lower()
        headers = self._rule_headers.get(host)
        if headers is None:
            policy = self._host_policy(host) if self._host_policy else None
            headers = self._rule_headers[host] = dict(policy.headers) if policy and policy.headers else {}
        if self._runs is not None and not self._runs.queued(host):
            return {**headers, "Connection": "close"}
        return headers or None

    def _probe(self, r: _Attempt, attempts: int, latency: float, elapsed: float,
               started_at: datetime) -> Probe:
        body = title = None
        if r.raw is not None:
            body = decode_body(r.raw, r.content_type, truncated=r.truncated)
            title = extract_title(body) if is_html(r.content_type) else None
        if r.cause is None and r.status is not None and r.status >= 400:
            r.cause, r.error = Cause.HTTP_STATUS, f"HTTP {r.status}"
        return Probe(url=r.url, method=r.method, http_status=r.status, final_url=r.final_url,
                     redirects=tuple(r.hops), headers=r.headers, content_type=r.content_type,
                     title=title, body=body, body_truncated=r.truncated, cause=r.cause,
                     error=r.error, latency_ms=int(latency * 1000),
                     elapsed_ms=int(elapsed * 1000), attempts=attempts, started_at=started_at)

    # -- many URLs -----------------------------------------------------------------------

    async def run(self, targets: Iterable[Target], sink: Sink, *,
                  stop: asyncio.Event | None = None, refusal: RefusalFn | None = None) -> None:
        """Fetch every target (skipped ones excluded), calling ``sink`` as each finishes.

        A queue per host (checker.schedule); hosts start largest first; at most
        ``check.concurrency`` requests in flight, each host within its pace and ceilings.
        ``refusal`` says which answers refuse because of our pace (default: 429, 503).
        Once ``stop`` is set no new fetch starts, and run() returns when the fetches in
        flight have finished (a graceful stop). Cancelling run() cancels in-flight work;
        no sink call happens after run() returns.
        """
        assert self._session is not None, "use 'async with Prober(...)'"
        runs = self._runs = HostRuns(self, sink, refusal=refusal or default_refusal, stop=stop)
        try:
            await runs.run(t for t in targets if t.skip is None)
        finally:
            self.notices.extend(runs.notices)

    def views(self) -> list[LaneView]:
        """The hosts with work left, busiest first (for the progress display)."""
        return self._runs.views() if self._runs is not None else []

    def learned(self, *, wall_clock: float) -> list[LearnedPace]:
        """The pace learned for every host this prober talked to (to store for next time)."""
        return [self.limiter.learned(host, wall_clock=wall_clock)
                for host, state in self.limiter.hosts.items() if state.pace.requests]


def _host_key(target: Target) -> str:
    return (target.host or urlsplit(target.url).hostname or "").lower()


def _head_refused(status: int | None) -> bool:
    # Any error answer to HEAD is settled by a GET: some servers break on HEAD alone (405,
    # 501, 404, even 500). 429 and 503 are rate limits or overload: the retry logic handles them.
    return status is not None and status >= 400 and status not in (429, 503)


def _recorded(resp: aiohttp.ClientResponse) -> tuple[tuple[str, str], ...]:
    return tuple((name, resp.headers[name]) for name in RECORDED_HEADERS if name in resp.headers)


def _header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


_TIMEOUTS = frozenset({Cause.CONNECT_TIMEOUT, Cause.READ_TIMEOUT})
_UNREACHABLE = frozenset({Cause.DNS, Cause.REFUSED, Cause.TLS, Cause.DISCONNECTED})
_EXCLUDED = frozenset({Cause.PRIVATE_ADDRESS, Cause.EXCLUDED_SCHEME, Cause.EXCLUDED_PATTERN})
_BROKEN = frozenset({Cause.TOO_MANY_REDIRECTS, Cause.INVALID_URL, Cause.MISSING_FILE,
                     Cause.HEADERS_TOO_LARGE, Cause.OTHER})


def transport_status(probe: Probe) -> Status | None:
    """The DESIGN status that the HTTP/transport facts alone imply (None: no facts)."""
    cause = probe.cause
    if cause in _EXCLUDED:
        return Status.EXCLUDED
    if cause in _TIMEOUTS:
        return Status.TIMEOUT
    if cause in _UNREACHABLE:
        return Status.UNREACHABLE
    if cause in _BROKEN:
        return Status.BROKEN
    status = probe.http_status
    if status is None:
        return None
    if status in (401, 403, 429):
        return Status.BLOCKED   # anti-bot walls and rate limits: unknown, not dead
    if status >= 400:
        return Status.BROKEN
    if not 200 <= status < 300:
        # A 3xx that could not be followed (no Location: 300 Multiple Choices, a bare
        # 302) or a 1xx as the final answer: no page was reached.
        return Status.BROKEN
    moved = any(hop.status in _PERMANENT for hop in probe.redirects)
    if moved and probe.final_url and probe.final_url != probe.url:
        return Status.REDIRECT
    return Status.OK
