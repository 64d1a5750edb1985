"""Table tests of the retry policy (checker.retry): pure functions, no network."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from checker.models import Cause
from checker.retry import backoff_delay, parse_retry_after, retry_delay, should_retry


@pytest.mark.parametrize("status, cause, expected", [
    (200, None, False),
    (301, None, False),
    (404, None, False),
    (410, None, False),
    (403, None, False),
    (429, None, True),
    (500, None, True),
    (502, None, True),
    (503, None, True),
    (501, None, False),
    (None, Cause.READ_TIMEOUT, True),
    (None, Cause.CONNECT_TIMEOUT, True),
    (None, Cause.DISCONNECTED, True),
    (None, Cause.DNS, False),
    (None, Cause.REFUSED, False),
    (None, Cause.TLS, False),
    (None, Cause.TOO_MANY_REDIRECTS, False),
    (None, Cause.HEADERS_TOO_LARGE, False),
    (None, Cause.PRIVATE_ADDRESS, False),
    (None, None, False),
])
def test_should_retry(status: int | None, cause: Cause | None, expected: bool) -> None:
    assert should_retry(status, cause) is expected


@pytest.mark.parametrize("attempt, rand, expected", [
    (1, 0.0, 0.25),     # ceiling 0.5: half fixed
    (1, 1.0, 0.5),      # up to the ceiling
    (2, 0.0, 0.5),      # ceiling doubles
    (3, 1.0, 2.0),
    (10, 1.0, 30.0),    # capped
    (10, 0.0, 15.0),
])
def test_backoff_delay(attempt: int, rand: float, expected: float) -> None:
    assert backoff_delay(attempt, base=0.5, cap=30.0, rand=lambda: rand) == pytest.approx(expected)


def test_backoff_zero_base_means_no_wait() -> None:
    assert backoff_delay(3, base=0.0, cap=30.0) == 0.0


NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("value, expected", [
    (None, None),
    ("", None),
    ("120", 120.0),
    (" 5 ", 5.0),
    ("Wed, 01 Jan 2025 12:00:30 GMT", 30.0),   # HTTP-date (RFC 9110 §5.6.7)
    ("Wed, 01 Jan 2025 11:00:00 GMT", 0.0),    # in the past: no wait
    ("soon", None),
    ("-3", None),
])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize("retry_after, expected", [
    (None, 0.75),      # backoff: attempt 2, base 0.5 -> ceiling 1.0, rand 0.5
    (3.0, 3.0),        # honoured
    (500.0, 60.0),     # capped by retry_after_cap
    (0.0, 0.0),
])
def test_retry_delay(retry_after: float | None, expected: float) -> None:
    delay = retry_delay(2, retry_after, base=0.5, cap=30.0, retry_after_cap=60.0, rand=lambda: 0.5)
    assert delay == pytest.approx(expected)
