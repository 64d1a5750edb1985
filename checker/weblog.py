"""The daemon web server's own log: malformed requests are a rate-limited warning line.

aiohttp logs every request it cannot parse (a raw UTF-8 query, an oversized request
line or header, garbage on the port) as "Error handling request" with a full
traceback at level error. Anything that can connect could fill the error log, and
hide real errors in it. Here such a request is one ``http.bad_request`` warning, at
most one every :data:`BAD_REQUEST_LOG_EVERY` seconds, carrying the count of those
suppressed since the last line. An error of our own handlers still logs its
traceback at level error: that is a bug to see.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["server_logger", "BadRequestFilter", "BAD_REQUEST_LOG_EVERY"]

BAD_REQUEST_LOG_EVERY = 60.0   # seconds between two lines about malformed requests
LOGGER_NAME = "linkhealth.web.server"


class BadRequestFilter(logging.Filter):
    """Turns aiohttp's records about unparsable requests into rate-limited warnings."""

    def __init__(self, every: float = BAD_REQUEST_LOG_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every, self.clock = every, clock
        self.last: float | None = None
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """False to drop the record; True, rewritten as one warning line, at most every ``every`` s."""
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        now = self.clock()
        if self.last is not None and now - self.last < self.every:
            self.suppressed += 1
            return False
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        record.msg, record.args, record.exc_info, record.exc_text = "http.bad_request", None, None, None
        record.fields = {"remote": remote, "status": getattr(exc, "code", 400) or 400,
                         "reason": _reason(exc), "suppressed": self.suppressed,
                         "next_line_after": f"{self.every:g}s"}
        self.last, self.suppressed = now, 0
        return True


def _reason(exc: HttpProcessingError) -> str:
    """aiohttp's message, one line and short (it may quote the offending bytes)."""
    text = " ".join(str(getattr(exc, "message", "") or exc).split())
    return text[:200] or type(exc).__name__


def server_logger() -> logging.Logger:
    """The logger to give aiohttp's request handler, with its filter installed once."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(f, BadRequestFilter) for f in logger.filters):
        logger.addFilter(BadRequestFilter())
    return logger
