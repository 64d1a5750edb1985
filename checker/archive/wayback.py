"""The Wayback Machine backend: lookups of existing captures and SPN2 keyed saves.

The only module importing waybackpy. waybackpy is synchronous (requests, sleeps), so
its availability lookup runs in a worker thread with its endpoint pointed at the
settings URL. The CDX query and the Save Page Now 2 save are done here on aiohttp:
waybackpy's CDX client hides the HTTP status (a 429 page parses as "no records",
which would wrongly record that no capture exists) and its save is the old
anonymous one, which cannot send keys.

SPN2 (https://docs.google.com/document/d/1Nsv52MvSjbLb2PCpHlat0gkzw0EvtSgpKHu4mk0MnrA):
POST save (form url=..., Accept: application/json, Authorization: LOW key:secret)
answers {"url", "job_id"}; GET save/status/<job_id> until status is success
(timestamp, original_url) or error (status_ext). Keys never appear in logs or errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import urlsplit

import aiohttp
import requests
from waybackpy import WaybackMachineAvailabilityAPI
from waybackpy.exceptions import WaybackError

from ..errors import ArchiveError
from ..settings import Settings
from .base import ArchiveJob, ArchiveResult, Outcome, SnapshotRecord
from .policy import Action
from .queue import Lane
from .stop import never_stopped

__all__ = ["WaybackBackend", "IAKeys", "same_capture_url", "parse_timestamp", "RETRYABLE_ERRORS"]

log = logging.getLogger("linkhealth.archive.wayback")

#: SPN2 status_ext values that mean "try again later" (issue 5); others: not archivable.
RETRYABLE_ERRORS = frozenset({
    "error:user-session-limit", "error:soft-time-limit-exceeded", "error:proxy-error",
    "error:browsing-timeout", "error:no-browsers-available", "error:service-unavailable",
    "error:gateway-timeout", "error:internal-server-error", "error:bad-gateway",
    "error:celery", "error:too-many-daily-captures",
})
#: Errors that say the account is busy: the whole lane waits like after a 429.
_BUSY_ERRORS = frozenset({"error:user-session-limit", "error:too-many-daily-captures"})


class IAKeys:
    """archive.org S3 keys; the repr never shows them."""

    __slots__ = ("_access", "_secret")

    def __init__(self, access: str, secret: str) -> None:
        self._access, self._secret = access, secret

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "IAKeys | None":
        """Keys from LINKHEALTH_IA_ACCESS_KEY / LINKHEALTH_IA_SECRET_KEY, or None."""
        access = environ.get("LINKHEALTH_IA_ACCESS_KEY", "").strip()
        secret = environ.get("LINKHEALTH_IA_SECRET_KEY", "").strip()
        return cls(access, secret) if access and secret else None

    def header(self) -> str:
        """The Authorization header value."""
        return f"LOW {self._access}:{self._secret}"

    def __repr__(self) -> str:
        return "IAKeys(***)"


def parse_timestamp(ts: str) -> datetime:
    """A Wayback 14-digit timestamp as an aware UTC datetime."""
    return datetime.strptime(ts[:14].ljust(14, "0"), "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)


def _wayback_ts(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y%m%d%H%M%S")


def same_capture_url(asked: str, captured: str) -> bool:
    """Whether a capture is of the URL asked for (scheme, www. and a final slash aside)."""
    def key(url: str) -> tuple[str, str, str]:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower().removeprefix("www.")
        port = f":{parts.port}" if parts.port and parts.port not in (80, 443) else ""
        return host + port, parts.path.rstrip("/") or "/", parts.query
    return key(asked) == key(captured)


class WaybackBackend:
    """Lookups (availability via waybackpy, then CDX) and SPN2 saves, through one slow lane."""

    name = "wayback"

    def __init__(self, settings: Settings, session: aiohttp.ClientSession, lane: Lane, *,
                 environ: Mapping[str, str] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 checkpoint: Callable[[], None] = never_stopped) -> None:
        self.settings = settings
        self.cfg = settings.archive
        self.session = session
        self.lane = lane
        self.keys = IAKeys.from_env(os.environ if environ is None else environ)
        self._sleep = sleep
        self._clock = clock
        self._checkpoint = checkpoint     # raises ArchiveStopped once a stop is asked

    @property
    def can_save(self) -> bool:
        """Saving needs keys, unless anonymous saving is allowed in config."""
        return self.keys is not None or self.cfg.anonymous_save

    def should_run(self, job: ArchiveJob) -> bool:
        """Lookups always; saves only with keys or anonymous_save."""
        return job.action is Action.LOOKUP or self.can_save

    async def run(self, job: ArchiveJob) -> ArchiveResult:
        """Look up, submit a save, or poll a submitted save."""
        if job.action is Action.LOOKUP:
            return await self.lookup(job)
        if job.external_id:
            return await self.poll(job)
        return await self.submit(job)

    # --- HTTP on aiohttp -------------------------------------------------------------
    def _headers(self, url: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self.settings.check.user_agent}
        if self.keys is not None:
            # Over plain http anyone on the path reads the keys: refused unless asked for
            # (archive.allow_http_keys, e.g. for a local imitation of the service).
            if urlsplit(url).scheme != "https" and not self.cfg.allow_http_keys:
                raise ArchiveError(f"wayback: refusing to send the archive.org keys over plain http "
                                   f"to {url}; use https, or set archive.allow_http_keys = true")
            headers["Authorization"] = self.keys.header()
        return headers

    async def _request(self, method: str, url: str, **kw: Any) -> tuple[int | None, Mapping[str, str], str, str | None]:
        """(status, headers, text, transport error); never raises for network faults."""
        self._checkpoint()       # no request starts after a stop (checker.archive.stop)
        timeout = aiohttp.ClientTimeout(total=self.settings.check.timeout * 3,
                                        connect=self.settings.check.connect_timeout)
        try:
            async with self.session.request(method, url, timeout=timeout, allow_redirects=False,
                                            **kw) as resp:
                text = await resp.text(errors="replace")
                return resp.status, resp.headers, text, None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return None, {}, "", f"{type(exc).__name__}: {exc}".rstrip(": ")

    def _fault(self, status: int | None, headers: Mapping[str, str], text: str, error: str | None,
               what: str) -> ArchiveResult | None:
        """The result for a failed HTTP exchange (429, 5xx, no answer, HTML), or None if fine."""
        if status == 429:
            return ArchiveResult(Outcome.RETRY, error=f"{what}: 429 Too Many Requests",
                                 retry_after=_retry_after(headers), rate_limited=True)
        if status is None:
            return ArchiveResult(Outcome.RETRY, error=f"{what}: {error}", service_down=True)
        if status >= 500:
            return ArchiveResult(Outcome.RETRY, error=f"{what}: HTTP {status}", service_down=True,
                                 retry_after=_retry_after(headers))
        if status in (401, 403):
            return ArchiveResult(Outcome.FAILED, error=f"{what}: HTTP {status} (keys refused?)")
        return None

    def _json(self, text: str, status: int, what: str) -> dict | ArchiveResult:
        try:
            data = json.loads(text)
            if isinstance(data, dict):
                return data
        except ValueError:
            pass
        # The Wayback Machine sometimes answers an HTML error page with status 200.
        kind = "an HTML page" if "<html" in text[:512].lower() else "something"
        return ArchiveResult(Outcome.RETRY, error=f"{what}: {kind} instead of JSON (HTTP {status})",
                             service_down=True)

    # --- SPN2 save ---------------------------------------------------------------------
    async def submit(self, job: ArchiveJob) -> ArchiveResult:
        """POST the save request; SUBMITTED with the job_id, or why not."""
        form = {"url": job.url, "skip_first_archive": "1"}
        if self.cfg.if_not_archived_within > 0:
            form["if_not_archived_within"] = f"{int(self.cfg.if_not_archived_within)}"
        status, headers, text, error = await self._request(
            "POST", self.cfg.save_url, data=form, headers=self._headers(self.cfg.save_url))
        fault = self._fault(status, headers, text, error, "save")
        if fault:
            return fault
        data = self._json(text, status or 0, "save")
        if isinstance(data, ArchiveResult):
            return data
        if data.get("job_id"):
            log.debug("SPN2 accepted %s as job %s", job.url, data["job_id"])
            return ArchiveResult(Outcome.SUBMITTED, external_id=str(data["job_id"]))
        return self._spn_error(data, "save")

    async def poll(self, job: ArchiveJob) -> ArchiveResult:
        """Poll save/status/<job_id> until success, error or poll_timeout (then still SUBMITTED)."""
        started = self._clock()
        url = f"{self.cfg.status_url.rstrip('/')}/{job.external_id}"
        while True:
            status, headers, text, error = await self._request("GET", url, headers=self._headers(url))
            fault = self._fault(status, headers, text, error, "save status")
            if fault is None:
                data = self._json(text, status or 0, "save status")
                fault = data if isinstance(data, ArchiveResult) else None
            if fault is not None:
                # The save itself may be fine: keep its job_id so that it is polled, not re-sent.
                return replace(fault, external_id=job.external_id)
            state = data.get("status")
            if state == "success":
                return self._success(job, data)
            if state != "pending":
                return self._spn_error(data, "save")
            if self._clock() - started >= self.cfg.poll_timeout:
                return ArchiveResult(Outcome.SUBMITTED, external_id=job.external_id,
                                     error=f"save still pending after {self.cfg.poll_timeout:.0f} s")
            await self._sleep(self.cfg.poll_interval)

    def _success(self, job: ArchiveJob, data: Mapping[str, Any]) -> ArchiveResult:
        original = str(data.get("original_url") or job.url)
        ts = str(data.get("timestamp") or "")
        if not ts.isdigit():
            return ArchiveResult(Outcome.RETRY, error="save: success without a timestamp",
                                 service_down=True)
        if not same_capture_url(job.url, original):
            # The service followed a redirect (often to a home or login page): that copy
            # does not keep what the note cited.
            return ArchiveResult(Outcome.NOT_ARCHIVABLE,
                                 error=f"save captured a different URL: {original}")
        http_status = data.get("http_status")
        return ArchiveResult(Outcome.DONE, snapshot=SnapshotRecord(
            "wayback", f"{self.cfg.web_url.rstrip('/')}/{ts}/{original}", parse_timestamp(ts),
            int(http_status) if str(http_status or "").isdigit() else None))

    def _spn_error(self, data: Mapping[str, Any], what: str) -> ArchiveResult:
        ext = str(data.get("status_ext") or "error:unknown")
        message = str(data.get("message") or "")[:300]
        error = f"{what}: {ext}" + (f" ({message})" if message else "")
        if ext in RETRYABLE_ERRORS:
            busy = ext in _BUSY_ERRORS
            return ArchiveResult(Outcome.RETRY, error=error, rate_limited=busy)
        return ArchiveResult(Outcome.NOT_ARCHIVABLE, error=error)

    # --- lookups -----------------------------------------------------------------------
    async def lookup(self, job: ArchiveJob) -> ArchiveResult:
        """The newest status-200 capture before the link started failing (or none)."""
        before = job.failing_since or datetime.now(timezone.utc)
        await self.lane.acquire(save=False)
        self._checkpoint()       # no request starts after a stop (checker.archive.stop)
        found = await asyncio.to_thread(self._availability, job.url, before)
        if isinstance(found, ArchiveResult) and found.rate_limited:
            return found
        if isinstance(found, SnapshotRecord):
            return ArchiveResult(Outcome.DONE, snapshot=found)
        first_problem = found.error if isinstance(found, ArchiveResult) else found
        await self.lane.acquire(save=False)
        cdx = await self._cdx(job.url, before)
        if isinstance(cdx, ArchiveResult):
            return cdx
        if cdx is not None:
            return ArchiveResult(Outcome.DONE, snapshot=cdx)
        return ArchiveResult(Outcome.DONE, error=f"no capture found ({first_problem})"
                             if first_problem else "no capture found")

    def _availability(self, url: str, before: datetime) -> SnapshotRecord | ArchiveResult | str | None:
        """Worker thread: waybackpy's availability API, aimed at the settings URL."""
        api = WaybackMachineAvailabilityAPI(url, user_agent=self.settings.check.user_agent, max_tries=1)
        api.endpoint = self.cfg.availability_url
        api.api_call_time_gap = 0   # our lane spaces the calls; waybackpy would sleep 5 s
        try:
            api.near(unix_timestamp=int(before.timestamp()))
        except (WaybackError, requests.RequestException, ValueError) as exc:
            status = api.response.status_code if api.response is not None else None
            if status == 429:
                return ArchiveResult(Outcome.RETRY, error="availability: 429 Too Many Requests",
                                     retry_after=_retry_after(api.response.headers), rate_limited=True)
            return f"availability: {type(exc).__name__}"
        status = api.response.status_code if api.response is not None else None
        if status == 429:
            return ArchiveResult(Outcome.RETRY, error="availability: 429 Too Many Requests",
                                 retry_after=_retry_after(api.response.headers), rate_limited=True)
        closest = ((api.json or {}).get("archived_snapshots") or {}).get("closest") or {}
        if not closest.get("available") or not closest.get("timestamp"):
            return None
        ts, original = str(closest["timestamp"]), _original_of(str(closest.get("url", "")), url)
        if str(closest.get("status")) != "200" or parse_timestamp(ts) > before:
            return "availability: closest capture is not a good one before the failure"
        if not same_capture_url(url, original):
            return f"availability: closest capture is of a different URL ({original})"
        return SnapshotRecord("wayback", f"{self.cfg.web_url.rstrip('/')}/{ts}/{original}",
                              parse_timestamp(ts), 200)

    async def _cdx(self, url: str, before: datetime) -> SnapshotRecord | ArchiveResult | None:
        """CDX: captures with status 200 up to ``before``; the newest one of the right URL."""
        params = {"url": url, "output": "json", "filter": "statuscode:200", "to": _wayback_ts(before),
                  "limit": "-25"}
        status, headers, text, error = await self._request(
            "GET", self.cfg.cdx_url, params=params, headers={"User-Agent": self.settings.check.user_agent})
        fault = self._fault(status, headers, text, error, "cdx")
        if fault:
            return fault
        if not text.strip():
            return None   # the CDX server answers an empty body when it has nothing
        try:
            rows = json.loads(text)
        except ValueError:
            return ArchiveResult(Outcome.RETRY, error=f"cdx: not JSON (HTTP {status})", service_down=True)
        if not isinstance(rows, list) or len(rows) < 2:
            return None
        head = rows[0]
        best = None
        for row in rows[1:]:
            rec = dict(zip(head, row))
            ts, original = str(rec.get("timestamp", "")), str(rec.get("original", ""))
            if (ts.isdigit() and str(rec.get("statuscode")) == "200" and same_capture_url(url, original)
                    and parse_timestamp(ts) <= before and (best is None or ts > best[0])):
                best = (ts, original)
        if best is None:
            return None
        return SnapshotRecord("wayback", f"{self.cfg.web_url.rstrip('/')}/{best[0]}/{best[1]}",
                              parse_timestamp(best[0]), 200)


def _original_of(archive_url: str, fallback: str) -> str:
    """The original URL inside ``.../web/<timestamp>/<original>``."""
    _, sep, rest = archive_url.partition("/web/")
    if not sep:
        return fallback
    _, slash, original = rest.partition("/")
    return original if slash and original else fallback


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After in seconds (RFC 9110 10.2.3: delay-seconds or an HTTP date)."""
    value = (headers or {}).get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    from email.utils import parsedate_to_datetime
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
