"""Retry policy: which outcomes are worth another attempt, and how long to wait.

Small pure functions with table tests (tests/test_retry.py). The engine
(checker.probe) calls :func:`should_retry` after each attempt and sleeps for
:func:`retry_delay` between attempts.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable

from .models import Cause

__all__ = ["RETRY_CAUSES", "should_retry", "backoff_delay", "parse_retry_after", "retry_delay"]

#: Transport faults that are often transient: worth another attempt.
#: DNS failures, refused connections and TLS errors are not: they rarely heal within
#: seconds, and retrying them only makes a run slower (lychee makes the same choice).
RETRY_CAUSES = frozenset({Cause.CONNECT_TIMEOUT, Cause.READ_TIMEOUT, Cause.DISCONNECTED})


def should_retry(status: int | None, cause: Cause | None) -> bool:
    """True when an attempt that ended with this HTTP status / cause deserves another try."""
    if cause in RETRY_CAUSES:
        return True
    if status is None:
        return False
    # 429 Too Many Requests (RFC 6585 §4) and every 5xx are transient by definition;
    # 501 Not Implemented is not (the server will never implement the method).
    return status == 429 or (500 <= status <= 599 and status != 501)


def backoff_delay(attempt: int, *, base: float, cap: float,
                  rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped.

    ``attempt`` counts from 1 (the delay before the second attempt). See the AWS
    architecture blog "Exponential Backoff And Jitter" for why jitter matters: it
    spreads retries of many URLs on one host apart.
    """
    if base <= 0:
        return 0.0
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return ceiling / 2 + rand() * ceiling / 2


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or HTTP-date, RFC 9110 §10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():   # "²".isdigit() is True too
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def retry_delay(attempt: int, retry_after: float | None, *, base: float, cap: float,
                retry_after_cap: float, rand: Callable[[], float] = random.random) -> float:
    """The wait before attempt ``attempt + 1``: Retry-After (capped) when given, else backoff."""
    if retry_after is not None:
        return min(retry_after, retry_after_cap)
    return backoff_delay(attempt, base=base, cap=cap, rand=rand)
