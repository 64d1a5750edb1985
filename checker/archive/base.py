"""The archive backend protocol and its ordered registry (ArchiveBox's two-function contract).

Each backend answers ``should_run(job)`` (can it do this job at all now?) and
``run(job) -> ArchiveResult``. A per-URL failure is a result, never an exception;
``ArchiveError`` is kept for a backend that cannot work at all (folder not writable).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Iterator, Protocol, runtime_checkable

from .policy import Action

__all__ = ["ArchiveJob", "Outcome", "Fidelity", "SnapshotRecord", "StoredResource", "ArchiveResult", "Backend", "Registry"]


@dataclass(frozen=True, slots=True)
class ArchiveJob:
    """One row of the archive queue, with what a backend needs about its link."""

    id: int
    link_id: int
    url: str
    service: str
    action: Action
    state: str
    attempts: int = 0
    external_id: str | None = None        # SPN2 job_id while submitted
    failing_since: datetime | None = None  # links.first_failing_at (lookups want captures before it)
    at_risk: bool = False


class Outcome(str, enum.Enum):
    """How one run of a job ended; the queue maps it to a job state."""

    DONE = "done"                      # saved, or looked up (with or without a capture found)
    SUBMITTED = "submitted"            # accepted by the service, still being processed
    RETRY = "retry"                    # try again later (429, 5xx, transient service error)
    FAILED = "failed"                  # will not work by retrying soon
    NOT_ARCHIVABLE = "not-archivable"  # the service refuses this URL; the reason is recorded

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Fidelity:
    """How good a local copy is, measured after writing it (snapshots' fidelity columns)."""

    text_chars: int              # main-content characters a reader sees in the copy
    live_text_chars: int         # main-content characters of the live page
    pictures_kept: int
    pictures_found: int
    copy_bytes: int
    warc_bytes: int
    note: str = ""               # why pictures are missing (budget, HTTP errors)

    #: Below this share of the live page's main text, the copy lost text.
    TEXT_RATIO = 0.9

    @property
    def lost_pictures(self) -> int:
        """Pictures the page showed that the copy does not."""
        return max(0, self.pictures_found - self.pictures_kept)

    @property
    def lost_text(self) -> bool:
        """True when the copy shows clearly less text than the live page."""
        return self.text_chars < self.TEXT_RATIO * self.live_text_chars

    @property
    def verdict(self) -> str:
        """ok, partial (pictures lost) or failed (text lost)."""
        return "failed" if self.lost_text else "partial" if self.lost_pictures else "ok"

    def summary(self) -> str:
        """One line for humans: text and pictures kept."""
        text = f"text {self.text_chars}/{self.live_text_chars} chars"
        pics = (f"pictures {self.pictures_kept}/{self.pictures_found}" +
                (f" (lost {self.lost_pictures})" if self.lost_pictures else ""))
        return f"{self.verdict}: {text}, {pics}, copy {self.copy_bytes} B" + (f"; {self.note}" if self.note else "")


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """A copy that exists: a Wayback capture or a local WARC record (a snapshots row)."""

    service: str
    archive_url: str | None
    captured_at: datetime
    http_status: int | None = None
    local_path: str | None = None     # WARC file of a local copy
    warc_offset: int | None = None
    digest: str | None = None
    fidelity: Fidelity | None = None  # local copies: measured after writing


@dataclass(frozen=True, slots=True)
class StoredResource:
    """A resource written in full into a local WARC: later captures write revisits to it."""

    digest: str          # WARC-Payload-Digest
    url: str             # WARC-Target-URI of the response record
    warc_date: str       # its WARC-Date (a revisit's WARC-Refers-To-Date)
    warc_path: str


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    """What one ``Backend.run`` did. ``error`` is a human sentence, never containing secrets."""

    outcome: Outcome
    snapshot: SnapshotRecord | None = None
    external_id: str | None = None
    error: str | None = None
    retry_after: float | None = None   # seconds the service asked us to wait (Retry-After)
    rate_limited: bool = False         # a 429: the whole lane backs off
    service_down: bool = False         # 5xx / no answer / garbage: counts toward the breaker


@runtime_checkable
class Backend(Protocol):
    """An archiving method: ``name`` is its service word in the database."""

    name: str

    def should_run(self, job: ArchiveJob) -> bool:
        """Whether this backend can run the job now (keys present, action supported)."""

    async def run(self, job: ArchiveJob) -> ArchiveResult:
        """Do (one step of) the job; outcomes are values."""


class Registry:
    """Backends in their configured order (archive.services)."""

    def __init__(self, backends: Iterable[Backend]) -> None:
        self._backends = list(backends)

    def __iter__(self) -> Iterator[Backend]:
        return iter(self._backends)

    def get(self, service: str) -> Backend | None:
        """The backend for a service word, or None when not configured."""
        return next((b for b in self._backends if b.name == service), None)

    def names(self) -> tuple[str, ...]:
        """Service words in order."""
        return tuple(b.name for b in self._backends)
