"""The local archive: at-risk pages kept as WARC files (warcio) plus a readable HTML copy.

A capture is one gzipped WARC file (warcinfo, request and response of the page, and
the page's own images and stylesheets, bounded) under ``<archive_dir>/<host>/``, and
next to it ``<same name>.html``: the page with scripts removed and its images and
stylesheets inlined as data: URIs, so that it opens offline (issue 5: readers must see
the article even when the Wayback Machine has nothing, as often for WeChat).

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
from dataclasses import dataclass
from http import HTTPStatus
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from ..errors import ArchiveError
from ..page import decode_body
from ..settings import Settings
from .base import ArchiveJob, ArchiveResult, Outcome, SnapshotRecord
from .policy import Action

__all__ = ["Fetched", "LocalBackend", "payload_digest", "validate_warc", "http_fetcher", "PART_MAX_AGE"]

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

    def header(self, name: str) -> str:
        """A header value ('' when absent), case-insensitive."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")


#: How the backend fetches: (url, max_bytes) -> Fetched. The lead can swap in checker.http.
Fetcher = Callable[[str, int], Awaitable[Fetched]]


def http_fetcher(session: Any, max_redirects: int = 10) -> Fetcher:
    """A Fetcher on checker.http's session and bounded ``fetch_bytes`` (connect-to, CA, SSRF apply)."""
    from ..http import fetch_bytes

    async def fetch(url: str, max_bytes: int) -> Fetched:
        raw = await fetch_bytes(session, url, max_bytes=max_bytes + 1, max_redirects=max_redirects)
        if raw.status is None:
            return Fetched(url, raw.final_url, None, error=raw.error or str(raw.cause))
        reason = HTTPStatus(raw.status).phrase if raw.status in _KNOWN_STATUSES else ""
        return Fetched(url, raw.final_url, raw.status, reason, raw.headers, raw.body[:max_bytes],
                       len(raw.body) > max_bytes)
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


class LocalBackend:
    """Saves pages into the local WARC archive; cannot look anything up."""

    name = "local"

    def __init__(self, settings: Settings, fetch: Fetcher, *,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 known_digest: Callable[[int, str], Awaitable[SnapshotRecord | None]] | None = None) -> None:
        self.settings = settings
        self.cfg = settings.archive
        # Absolute: the paths stored in snapshots must not depend on the working directory.
        self.root = Path(os.path.abspath(settings.archive_dir))
        self.fetch = fetch
        self._now = now
        self._known_digest = known_digest

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
        """Fetch the page and its resources; write WARC + readable copy."""
        page = await self.fetch(job.url, self.cfg.local_max_bytes)
        if page.status is None:
            return ArchiveResult(Outcome.RETRY, error=f"local: {page.error}")
        if not 200 <= page.status < 300:
            # Keeping an error page would hide that the content is gone.
            return ArchiveResult(Outcome.RETRY, error=f"local: HTTP {page.status}")
        digest = payload_digest(page.body)
        if self._known_digest is not None:
            same = await self._known_digest(job.link_id, digest)
            if same is not None and same.local_path and Path(same.local_path).exists():
                # Dedup by payload digest: the page has not changed, keep the one copy.
                # (Rows from before paths were stored absolute are made absolute here.)
                return ArchiveResult(Outcome.DONE, snapshot=SnapshotRecord(
                    "local", _absolute(same.archive_url), self._now(), page.status,
                    _absolute(same.local_path), same.warc_offset, digest))
        is_html = "html" in page.header("Content-Type").lower()
        resources = await self._resources(page) if is_html else []
        captured = self._now()
        try:
            warc, offset = await asyncio.to_thread(self._write_warc, page, resources, captured)
            readable = (await asyncio.to_thread(self._write_readable, warc, page, resources, captured)
                        if is_html else None)
        except OSError as exc:
            raise ArchiveError(f"cannot write to the local archive {self.root}: "
                               f"{exc.strerror or exc}; jobs stay queued") from exc
        return ArchiveResult(Outcome.DONE, snapshot=SnapshotRecord(
            "local", str(readable) if readable else None, captured, page.status, str(warc),
            offset, digest))

    async def _resources(self, page: Fetched) -> list[Fetched]:
        """The page's own images and stylesheets, bounded in count and total bytes."""
        soup = _soup(page)
        urls: list[str] = []
        for tag in soup.find_all(["img", "link"]):
            if tag.name == "link" and "stylesheet" not in (tag.get("rel") or []):
                continue
            ref = tag.get("src") if tag.name == "img" else tag.get("href")
            if not ref:
                continue
            absolute = urljoin(page.final_url, ref.strip())
            if urlsplit(absolute).scheme in ("http", "https") and absolute not in urls:
                urls.append(absolute)
        out: list[Fetched] = []
        budget = self.cfg.local_max_bytes - len(page.body)
        for url in urls[: self.cfg.local_max_resources]:
            if budget <= 0:
                break
            got = await self.fetch(url, budget)
            if got.status is not None and 200 <= got.status < 300 and not got.truncated:
                out.append(got)
                budget -= len(got.body)
        return out

    def _paths(self, url: str, captured: datetime) -> tuple[Path, str]:
        host = re.sub(r"[^A-Za-z0-9.-]", "_", urlsplit(url).hostname or "unknown") or "unknown"
        stem = f"{captured.strftime('%Y%m%d%H%M%S')}-{hashlib.sha1(url.encode()).hexdigest()[:12]}"
        return self.root / host, stem

    def _write_warc(self, page: Fetched, resources: list[Fetched], captured: datetime) -> tuple[Path, int]:
        folder, stem = self._paths(page.url, captured)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{stem}.warc.gz"
        part = final.with_name(final.name + ".part")
        date = captured.strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(part, "wb") as fh:
            writer = WARCWriter(fh, gzip=True)
            writer.write_record(writer.create_warcinfo_record(final.name, {
                "software": "linkhealth", "format": "WARC File Format 1.1", "isPartOf": page.url}))
            offset = self._write_exchange(writer, fh, page, date)
            seen: dict[str, str] = {payload_digest(page.body): page.final_url}
            for res in resources:
                digest = payload_digest(res.body)
                if digest in seen:
                    # The same bytes under another URL: a revisit record, not a second copy.
                    writer.write_record(writer.create_revisit_record(
                        res.final_url, digest, seen[digest], date,
                        http_headers=_http_headers(res)))
                    continue
                seen[digest] = res.final_url
                self._write_exchange(writer, fh, res, date)
            fh.flush()
            os.fsync(fh.fileno())
        if not validate_warc(part):
            part.unlink(missing_ok=True)
            raise OSError(f"the WARC written for {page.url} did not read back")
        os.replace(part, final)
        return final, offset

    @staticmethod
    def _write_exchange(writer: WARCWriter, fh, res: Fetched, date: str) -> int:
        """Request + response records of one fetch; the response record's offset."""
        target = urlsplit(res.final_url)
        path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        request = writer.create_warc_record(
            res.final_url, "request", payload=io.BytesIO(b""),
            http_headers=StatusAndHeaders(f"GET {path} HTTP/1.1", [("Host", target.netloc)],
                                          is_http_request=True),
            warc_headers_dict={"WARC-Date": date})
        offset = fh.tell()
        response = writer.create_warc_record(
            res.final_url, "response", payload=io.BytesIO(res.body), length=len(res.body),
            http_headers=_http_headers(res), warc_headers_dict={"WARC-Date": date})
        writer.write_record(response)
        writer.write_record(request)
        return offset

    def _write_readable(self, warc: Path, page: Fetched, resources: list[Fetched],
                        captured: datetime) -> Path:
        soup = _soup(page)
        inline = {r.final_url: r for r in resources} | {r.url: r for r in resources}
        for tag in soup.find_all(["script", "noscript", "iframe", "object", "embed", "base"]):
            tag.decompose()
        for tag in soup.find_all(True):
            for attr in [a for a in tag.attrs if a.lower().startswith("on") or a == "srcset"]:
                del tag[attr]
            key = "src" if tag.name == "img" else "href" if tag.name == "link" else None
            if key and tag.get(key):
                res = inline.get(urljoin(page.final_url, tag[key].strip()))
                if res is not None:
                    mime = res.header("Content-Type").split(";")[0].strip() or "application/octet-stream"
                    tag[key] = f"data:{mime};base64,{base64.b64encode(res.body).decode('ascii')}"
                elif tag.name == "link":
                    tag.decompose()
        head = soup.head or soup.new_tag("head")
        if soup.head is None and soup.html is not None:
            soup.html.insert(0, head)
        for meta in soup.find_all("meta"):
            if meta.get("charset") or (meta.get("http-equiv") or "").lower() == "content-type":
                meta.decompose()
        # Opens offline: nothing may be fetched from the network when the copy is read.
        head.insert(0, soup.new_tag("meta", attrs={"charset": "utf-8"}))
        head.insert(1, soup.new_tag("meta", attrs={"http-equiv": "Content-Security-Policy",
                    "content": "default-src 'none'; img-src data:; style-src data: 'unsafe-inline'; font-src data:"}))
        banner = soup.new_tag("div", attrs={"class": "linkhealth-archived",
                              "style": "font:13px sans-serif;background:#ffd;padding:6px;border-bottom:1px solid #cc9"})
        banner.string = f"Archived copy of {page.url} captured {captured:%Y-%m-%d %H:%M} UTC by linkhealth"
        (soup.body or soup).insert(0, banner)
        target = warc.with_name(warc.name.removesuffix(".warc.gz") + ".html")
        part = target.with_name(target.name + ".part")
        part.write_text(str(soup), encoding="utf-8")
        os.replace(part, target)
        return target


def _absolute(path: str | None) -> str | None:
    return os.path.abspath(path) if path else path


def _http_headers(res: Fetched) -> StatusAndHeaders:
    # The body is stored decoded (aiohttp decompresses), so its encoding and length headers
    # must describe the stored bytes, not the wire: replay tools trust them.
    skip = {"content-encoding", "transfer-encoding", "content-length"}
    headers = [(k, v) for k, v in res.headers if k.lower() not in skip]
    headers.append(("Content-Length", str(len(res.body))))
    return StatusAndHeaders(f"{res.status} {res.reason or 'OK'}", headers, protocol="HTTP/1.1")


def _soup(page: Fetched) -> BeautifulSoup:
    """The page parsed from the text a browser would read (checker.page: WHATWG decoding),
    not from Beautiful Soup's own guess, which honours labels such as utf-7."""
    return BeautifulSoup(decode_body(page.body, page.header("Content-Type") or None), "lxml")
