"""The local archive: at-risk pages kept as WARC files (warcio) plus a readable HTML copy.

A capture is one gzipped WARC file (warcinfo, then request and response records of the
page and of everything it shows: pictures, stylesheets, fonts, icons, from any host,
within the page's budgets; see capture.py) under ``<archive_dir>/<host>/``, and next to
it ``<same name>.html``: the readable copy (readable.py), one self-contained file that
opens offline and makes no request (issues 5 and 11: readers must see the article even
when the Wayback Machine has nothing, as often for WeChat). The copy is measured after
writing (fidelity.py) and the figures go on the snapshot row; a copy that lost text or
pictures to errors is kept and the job retried.

A resource already stored with the same payload digest (in this WARC or an earlier
one: 13,000 WeChat articles share their account logos and stylesheets) is written as
a WARC revisit record pointing at the first copy, not again.

Files are written under a ``.part`` name, read back and checked, then renamed: a WARC
written halfway when the process died keeps its ``.part`` name, is removed by
``recover()`` once it is older than PART_MAX_AGE (a younger one may be another
process's write in progress) and is never served.

Snapshot rows get absolute paths (the archive folder is resolved when the backend is
made), so that ``archive show`` and the report find the files from any folder.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import os
import re
import time
from dataclasses import dataclass, replace
from http import HTTPStatus
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol
from urllib.parse import urlsplit

from bs4 import BeautifulSoup
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from ..errors import ArchiveError
from ..page import decode_body
from ..settings import Settings
from ..ratelimit import Limiter
from .base import ArchiveJob, ArchiveResult, Fidelity, Outcome, SnapshotRecord, StoredResource
from .capture import Budget, Capture, capture_resources
from .fidelity import measure
from .pagemeta import read_meta
from .policy import Action
from .readable import build_readable

__all__ = ["Fetched", "LocalBackend", "ResourceIndex", "payload_digest", "validate_warc", "http_fetcher", "PART_MAX_AGE"]

log = logging.getLogger("linkhealth.archive.local")

#: A ``.part`` file untouched for this long (seconds) was left by a dead writer; a younger
#: one may belong to a run still writing it (another process), so recover() leaves it.
PART_MAX_AGE = 3600.0


@dataclass(frozen=True, slots=True)
class Fetched:
    """A raw response for archiving: status line, headers, body (bounded)."""

    url: str
    final_url: str
    status: int | None
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    truncated: bool = False
    error: str | None = None
    referer: str | None = None        # the Referer sent (recorded in the WARC request record)

    def header(self, name: str) -> str:
        """A header value ('' when absent), case-insensitive."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")


#: How the backend fetches: (url, max_bytes, referer=None) -> Fetched.
Fetcher = Callable[..., Awaitable[Fetched]]


def http_fetcher(session: Any, max_redirects: int = 10) -> Fetcher:
    """A Fetcher on checker.http's session and bounded ``fetch_bytes`` (connect-to, CA, SSRF apply)."""
    from ..http import fetch_bytes

    async def fetch(url: str, max_bytes: int, referer: str | None = None) -> Fetched:
        headers = {"Referer": referer} if referer else None
        raw = await fetch_bytes(session, url, max_bytes=max_bytes + 1, max_redirects=max_redirects,
                                headers=headers)
        if raw.status is None:
            return Fetched(url, raw.final_url, None, error=raw.error or str(raw.cause), referer=referer)
        reason = HTTPStatus(raw.status).phrase if raw.status in _KNOWN_STATUSES else ""
        return Fetched(url, raw.final_url, raw.status, reason, raw.headers, raw.body[:max_bytes],
                       len(raw.body) > max_bytes, referer=referer)
    return fetch


_KNOWN_STATUSES = {s.value for s in HTTPStatus}


def payload_digest(body: bytes) -> str:
    """The WARC-Payload-Digest warcio writes: ``sha1:`` + base32 of the SHA-1."""
    return "sha1:" + base64.b32encode(hashlib.sha1(body).digest()).decode("ascii")


def validate_warc(path: Path) -> bool:
    """True when every record of a WARC file reads to its end with matching digests."""
    try:
        with open(path, "rb") as fh:
            responses = 0
            for record in ArchiveIterator(fh):
                data = record.content_stream().read()
                declared = record.rec_headers.get_header("WARC-Payload-Digest")
                if record.rec_type == "response":
                    responses += 1
                    if declared and declared != payload_digest(data):
                        return False
            return responses > 0
    except Exception:   # noqa: BLE001 - any parse failure means "not a usable WARC"
        return False


class ResourceIndex(Protocol):
    """Where the resources of earlier captures are (for revisit records across WARC files)."""

    async def find(self, digests: list[str]) -> dict[str, StoredResource]:
        """Stored resources by payload digest."""

    async def remember(self, entries: list[StoredResource]) -> None:
        """Record resources just written in full."""


class LocalBackend:
    """Saves pages into the local WARC archive; cannot look anything up."""

    name = "local"

    def __init__(self, settings: Settings, fetch: Fetcher, *,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 known_digest: Callable[[int, str], Awaitable[SnapshotRecord | None]] | None = None,
                 resource_index: ResourceIndex | None = None, limiter: Limiter | None = None) -> None:
        self.settings = settings
        self.cfg = settings.archive
        # Absolute: the paths stored in snapshots must not depend on the working directory.
        self.root = Path(os.path.abspath(settings.archive_dir))
        self.fetch = fetch
        self._now = now
        self._known_digest = known_digest
        self._resource_index = resource_index
        # Pages and their resources are fetched under the same per-host limits as checks.
        self.limiter = limiter or Limiter(settings.check)

    def should_run(self, job: ArchiveJob) -> bool:
        """Only saves: there is nothing to look up in an archive we write ourselves."""
        return job.action is Action.SAVE

    def prepare(self) -> list[Path]:
        """Create the folder (ArchiveError if impossible) and remove halfway-written files."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise ArchiveError(f"local archive folder {self.root} is not writable: "
                               f"{exc.strerror or exc}; jobs stay queued") from exc
        return self.recover()

    def recover(self, max_age: float = PART_MAX_AGE, now: float | None = None) -> list[Path]:
        """Delete ``.part`` files left by a process that died while writing.

        Only files not modified for ``max_age`` seconds: a fresh one may be written right
        now by another process (a concurrent run), and deleting it would break that save.
        """
        cutoff = (time.time() if now is None else now) - max_age
        removed = []
        for part in self.root.rglob("*.part"):
            try:
                if part.stat().st_mtime > cutoff:
                    continue
                part.unlink()
            except FileNotFoundError:   # renamed or removed by its writer meanwhile
                continue
            removed.append(part)
            log.warning("removed halfway-written archive file %s", part)
        return removed

    async def run(self, job: ArchiveJob) -> ArchiveResult:
        """Fetch the page and what it shows; write the WARC and the readable copy; measure it."""
        async with self.limiter.slot(urlsplit(job.url).hostname or ""):
            page = await self.fetch(job.url, self.cfg.local_max_bytes)
        if page.status is None:
            return ArchiveResult(Outcome.RETRY, error=f"local: {page.error}")
        if not 200 <= page.status < 300:
            # Keeping an error page would hide that the content is gone.
            return ArchiveResult(Outcome.RETRY, error=f"local: HTTP {page.status}")
        digest = payload_digest(page.body)
        same = await self._same_copy(job, digest)
        if same is not None:
            return ArchiveResult(Outcome.DONE, snapshot=same)
        is_html = "html" in page.header("Content-Type").lower()
        # Decoded once, as a browser decodes it; parsed here for the capture and the measure,
        # and again by build_readable, which rewrites its own tree.
        text = _text(page) if is_html else None
        soup = BeautifulSoup(text, "lxml") if text is not None else None
        cap = (await capture_resources(soup, page, self.fetch, Budget.from_settings(self.settings, len(page.body)),
                                       self.limiter) if is_html else Capture())
        captured = self._now()
        resources = cap.ordered()
        known = await self._known_resources(resources)
        try:
            warc, offset, stored = await asyncio.to_thread(self._write_warc, page, resources, captured, known)
            readable, fidelity = (await asyncio.to_thread(self._write_readable, warc, page, text, soup, cap, captured)
                                  if is_html else (None, None))
        except OSError as exc:
            raise ArchiveError(f"cannot write to the local archive {self.root}: "
                               f"{exc.strerror or exc}; jobs stay queued") from exc
        if self._resource_index is not None and stored:
            await self._resource_index.remember(stored)
        snapshot = SnapshotRecord("local", str(readable) if readable else None, captured, page.status, str(warc),
                                  offset, digest, fidelity)
        if fidelity is not None and fidelity.verdict != "ok" and not cap.budget_hit:
            # Text or pictures lost to errors (a host down, a 5xx): keep this copy, try again.
            return ArchiveResult(Outcome.RETRY, snapshot=snapshot, error=f"local copy {fidelity.summary()}")
        return ArchiveResult(Outcome.DONE, snapshot=snapshot)

    async def _same_copy(self, job: ArchiveJob, digest: str) -> SnapshotRecord | None:
        """The existing good copy of the same bytes (dedup by payload digest), or None."""
        if self._known_digest is None:
            return None
        same = await self._known_digest(job.link_id, digest)
        if same is None or not same.local_path or not Path(same.local_path).exists():
            return None
        if same.fidelity is not None and same.fidelity.verdict != "ok":
            return None      # that copy failed its check: capture again
        # (Rows from before paths were stored absolute are made absolute here.)
        return SnapshotRecord("local", _absolute(same.archive_url), self._now(), same.http_status or 200,
                              _absolute(same.local_path), same.warc_offset, digest, same.fidelity)

    async def _known_resources(self, resources: list[Fetched]) -> dict[str, StoredResource]:
        """Resources of earlier captures with the same payload, whose WARC is still there."""
        if self._resource_index is None or not resources:
            return {}
        found = await self._resource_index.find(sorted({payload_digest(r.body) for r in resources}))
        return {d: r for d, r in found.items() if Path(r.warc_path).is_file()}

    def _paths(self, url: str, captured: datetime) -> tuple[Path, str]:
        host = re.sub(r"[^A-Za-z0-9.-]", "_", urlsplit(url).hostname or "unknown") or "unknown"
        stem = f"{captured.strftime('%Y%m%d%H%M%S')}-{hashlib.sha1(url.encode()).hexdigest()[:12]}"
        return self.root / host, stem

    def _write_warc(self, page: Fetched, resources: list[Fetched], captured: datetime,
                    known: dict[str, StoredResource]) -> tuple[Path, int, list[StoredResource]]:
        """Write the WARC; resources already stored (here or in an earlier WARC) as revisits."""
        folder, stem = self._paths(page.url, captured)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{stem}.warc.gz"
        part = final.with_name(final.name + ".part")
        date = captured.strftime("%Y-%m-%dT%H:%M:%SZ")
        stored: list[StoredResource] = []
        with open(part, "wb") as fh:
            writer = WARCWriter(fh, gzip=True)
            writer.write_record(writer.create_warcinfo_record(final.name, {
                "software": "linkhealth", "format": "WARC File Format 1.1", "isPartOf": page.url}))
            offset = self._write_exchange(writer, fh, page, date)
            seen: dict[str, tuple[str, str]] = {payload_digest(page.body): (page.final_url, date)}
            for res in resources:
                digest = payload_digest(res.body)
                earlier = seen.get(digest) or ((known[digest].url, known[digest].warc_date) if digest in known else None)
                if earlier is not None:
                    # The same bytes stored before (this page, or an earlier capture: a shared
                    # logo or stylesheet): a revisit record, not a second copy (WARC 1.1 §6.7.2).
                    self._write_revisit(writer, res, digest, earlier, date)
                    continue
                seen[digest] = (res.final_url, date)
                self._write_exchange(writer, fh, res, date)
                stored.append(StoredResource(digest, res.final_url, date, str(final)))
            fh.flush()
            os.fsync(fh.fileno())
        if not validate_warc(part):
            part.unlink(missing_ok=True)
            raise OSError(f"the WARC written for {page.url} did not read back")
        os.replace(part, final)
        return final, offset, stored

    @staticmethod
    def _write_revisit(writer: WARCWriter, res: Fetched, digest: str, earlier: tuple[str, str], date: str) -> None:
        request = writer.create_warc_record(
            res.final_url, "request", payload=io.BytesIO(b""), http_headers=_request_headers(res),
            warc_headers_dict={"WARC-Date": date})
        writer.write_record(writer.create_revisit_record(
            res.final_url, digest, earlier[0], earlier[1], http_headers=_http_headers(res),
            warc_headers_dict={"WARC-Date": date}))
        writer.write_record(request)

    @staticmethod
    def _write_exchange(writer: WARCWriter, fh, res: Fetched, date: str) -> int:
        """Request + response records of one fetch; the response record's offset."""
        request = writer.create_warc_record(
            res.final_url, "request", payload=io.BytesIO(b""), http_headers=_request_headers(res),
            warc_headers_dict={"WARC-Date": date})
        offset = fh.tell()
        response = writer.create_warc_record(
            res.final_url, "response", payload=io.BytesIO(res.body), length=len(res.body),
            http_headers=_http_headers(res), warc_headers_dict={"WARC-Date": date})
        writer.write_record(response)
        writer.write_record(request)
        return offset

    def _write_readable(self, warc: Path, page: Fetched, text: str, soup, cap: Capture,
                        captured: datetime) -> tuple[Path, Fidelity]:
        """Write the self-contained copy beside the WARC; measure it as written."""
        meta = read_meta(soup, text)
        copy = build_readable(page, text, cap.fetched, meta, captured)
        target = warc.with_name(warc.name.removesuffix(".warc.gz") + ".html")
        part = target.with_name(target.name + ".part")
        part.write_text(copy.html, encoding="utf-8")
        os.replace(part, target)
        written = target.read_text(encoding="utf-8")
        notes = [f"{len(cap.budget_hit)} resources over the page's budget"] if cap.budget_hit else []
        if copy.missing:
            notes.append("missing: " + ", ".join(f"{u} ({cap.failed.get(u, 'not fetched')})" for u in copy.missing[:3])
                         + (f" and {len(copy.missing) - 3} more" if len(copy.missing) > 3 else ""))
        fidelity = replace(measure(soup, written, warc.stat().st_size), note="; ".join(notes))
        return target, fidelity


def _absolute(path: str | None) -> str | None:
    return os.path.abspath(path) if path else path


def _request_headers(res: Fetched) -> StatusAndHeaders:
    target = urlsplit(res.final_url)
    path = (target.path or "/") + (f"?{target.query}" if target.query else "")
    headers = [("Host", target.netloc)] + ([("Referer", res.referer)] if res.referer else [])
    return StatusAndHeaders(f"GET {path} HTTP/1.1", headers, is_http_request=True)


def _http_headers(res: Fetched) -> StatusAndHeaders:
    # The body is stored decoded (aiohttp decompresses), so its encoding and length headers
    # must describe the stored bytes, not the wire: replay tools trust them.
    skip = {"content-encoding", "transfer-encoding", "content-length"}
    headers = [(k, v) for k, v in res.headers if k.lower() not in skip]
    headers.append(("Content-Length", str(len(res.body))))
    return StatusAndHeaders(f"{res.status} {res.reason or 'OK'}", headers, protocol="HTTP/1.1")


def _text(page: Fetched) -> str:
    """The page's text as a browser decodes it (checker.page: WHATWG, BOM then the label),
    not Beautiful Soup's own guess, which honours labels such as utf-7."""
    return decode_body(page.body, page.header("Content-Type") or None)

