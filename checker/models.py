"""Plain typed objects passed between the pipeline stages (see DESIGN.md).

Note -> Reference -> Target -> Probe -> Verdict -> CheckResult.
Every object is a frozen dataclass; the vocabulary enums are the stable words
used in reports, JSON and the database.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

__all__ = [
    "Kind", "Status", "Health", "Cause", "FAILING_STATUSES",
    "Note", "Reference", "Target", "Hop", "Probe", "Verdict", "CheckResult", "HostPolicy",
    "HealthState",
]


class Kind(str, enum.Enum):
    """How a reference was written in the note."""

    LINK = "link"
    IMAGE = "image"
    AUTOLINK = "autolink"
    REFERENCE = "reference"
    HTML = "html"
    BARE = "bare"
    RELATIVE = "relative"

    def __str__(self) -> str:
        return self.value


class Status(str, enum.Enum):
    """A link's status after one check (DESIGN.md vocabulary)."""

    OK = "ok"
    REDIRECT = "redirect"
    BROKEN = "broken"
    SOFT404 = "soft404"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    BLOCKED = "blocked"
    EXCLUDED = "excluded"

    def __str__(self) -> str:
        return self.value


#: Statuses that count as a failure for ``--fail-on broken`` and for health.
FAILING_STATUSES = frozenset({Status.BROKEN, Status.SOFT404, Status.TIMEOUT, Status.UNREACHABLE})


class Health(str, enum.Enum):
    """A link's health, derived from its check history."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


class Cause(str, enum.Enum):
    """Why a fetch ended the way it did: kept apart from the verdict (status)."""

    DNS = "dns"
    REFUSED = "refused"
    CONNECT_TIMEOUT = "connect_timeout"
    READ_TIMEOUT = "read_timeout"
    TLS = "tls"
    DISCONNECTED = "disconnected"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    HTTP_STATUS = "http_status"
    INVALID_URL = "invalid_url"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    HEADERS_TOO_LARGE = "headers_too_large"
    EXCLUDED_SCHEME = "excluded_scheme"
    EXCLUDED_PATTERN = "excluded_pattern"
    PRIVATE_ADDRESS = "private_address"
    MISSING_FILE = "missing_file"
    OTHER = "other"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Note:
    """A markdown file found by the scan."""

    path: str            # as displayed and stored: relative to the scan root's parent, POSIX
    abspath: Path
    sha256: str
    mtime: float
    size: int
    encoding: str = "utf-8"   # a Python codec; "utf-8" also covers a UTF-8 byte-order mark


@dataclass(frozen=True, slots=True)
class Reference:
    """One URL occurrence in a note, as written (1-based line and column)."""

    file: str
    line: int
    col: int
    url: str
    kind: Kind
    in_code: bool = False


@dataclass(frozen=True, slots=True)
class Target:
    """A unique thing to check: the normalized URL plus what the filter decided.

    ``url`` is the normalized key (database key, dedup); ``display_url`` is the
    URL as first written. ``skip`` holds a Cause when the target is not fetched
    (excluded, or malformed), with ``skip_detail`` a human sentence.
    """

    url: str
    display_url: str
    host: str
    skip: Cause | None = None
    skip_detail: str | None = None


@dataclass(frozen=True, slots=True)
class Hop:
    """One step of a redirect chain."""

    url: str
    status: int


@dataclass(frozen=True, slots=True)
class Probe:
    """What one fetch of a target saw (after retries). Raw facts, no verdict."""

    url: str
    method: str = "GET"
    http_status: int | None = None
    final_url: str | None = None
    redirects: tuple[Hop, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()   # lower-cased names, selected headers
    content_type: str | None = None
    title: str | None = None
    body: str | None = None                     # decoded text, up to the byte limit (HTML only)
    body_truncated: bool = False
    cause: Cause | None = None
    error: str | None = None                    # human sentence for the cause
    latency_ms: int | None = None               # of the last attempt
    elapsed_ms: int | None = None               # all attempts, backoff included
    attempts: int = 1
    started_at: datetime | None = None

    def header(self, name: str) -> str | None:
        """The value of a recorded response header (case-insensitive), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a probe means: a status, plus what the rules added."""

    status: Status
    error: str | None = None
    title: str | None = None
    final_url: str | None = None
    at_risk: bool = False
    rule: str | None = None         # name of the site rule that decided, if any


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One completed check of one target: the row that the history keeps."""

    target: Target
    probe: Probe
    verdict: Verdict
    checked_at: datetime
    extra: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Per-host overrides that site rules give the probe engine (None: use settings)."""

    per_host: int | None = None
    interval: float | None = None
    headers: tuple[tuple[str, str], ...] = ()
    start_per_host: float | None = None     # where the learned pace starts (checker.pace)
    start_interval: float | None = None


@dataclass(frozen=True, slots=True)
class HealthState:
    """A link's health and the facts its next transition needs (kept on the link row)."""

    health: Health = Health.UNKNOWN
    fail_streak: int = 0                       # failing checks since the last good one (blocked not counted)
    first_failing_at: datetime | None = None   # first failing check of the current streak
    dead_since: datetime | None = None
    revived_at: datetime | None = None
