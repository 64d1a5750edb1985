"""Structured logs: one line per event, key=value or JSON, with secrets redacted.

    log_event(logger, "check.batch", run_id=3, checked=500, ok=480)
    -> ts=2024-05-01T10:00:00Z level=info event=check.batch run_id=3 checked=500 ok=480

A :class:`RedactFilter` sits on the handler, so every logger that propagates to the
root (the archive's, aiohttp's, APScheduler's) is redacted too: the daemon token,
the Internet Archive keys (``LINKHEALTH_IA_ACCESS_KEY`` / ``LINKHEALTH_IA_SECRET_KEY``)
and anything shaped like an ``Authorization`` header value never reach the output.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, TextIO

__all__ = [
    "configure_logging", "log_event", "RedactFilter", "KeyValueFormatter", "JsonFormatter",
    "secrets_from", "redact", "REDACTED",
]

REDACTED = "***"

#: Environment variables whose values are secrets (the archive keys, the daemon token).
SECRET_ENV = ("LINKHEALTH_IA_ACCESS_KEY", "LINKHEALTH_IA_SECRET_KEY", "LINKHEALTH_DAEMON_TOKEN")

# Shapes of credentials that may show up in an exception text or a request dump:
# "Authorization: Bearer x", "LOW key:secret" (the IA S3-style header, see
# https://archive.org/developers/ias3.html), "token=x" in a query string.
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s,;'\"]+"),
    re.compile(r"(?i)(\bLOW\s+)[^\s,;'\"]+"),
    re.compile(r"(?i)((?:authorization|x-api-key)['\"]?\s*[:=]\s*['\"]?)[^\s,;'\"]+"),
    re.compile(r"(?i)\b((?:token|secret|access_key|secret_key|password|api_key)=)[^\s&,;'\"]+"),
    re.compile(r"(?i)(://[^/\s:@]*:)[^/\s@]+(@)"),   # user:password@ in URLs
)


def secrets_from(values: Iterable[str | None] = (), environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The secret strings to redact: the given values plus the secret environment variables."""
    env = os.environ if environ is None else environ
    found = [v for v in values if v] + [env[name] for name in SECRET_ENV if env.get(name)]
    # Very short values would redact ordinary words; a real key is never this short.
    return tuple(sorted({s for s in found if len(s) >= 4}, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """The text with the given secrets and every credential-shaped value masked."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED + (m.group(2) if m.lastindex == 2 else ""), text)
    return text


class RedactFilter(logging.Filter):
    """Replaces known secrets and credential-shaped text in a record with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def redact(self, text: str) -> str:
        """The text with every secret and credential-shaped value masked."""
        return redact(text, self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the message, its arguments, the structured fields and the traceback text."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = str(record.msg)
        record.msg, record.args = self.redact(message), None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: self._value(v) for k, v in fields.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
            record.exc_info = None
        return True

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return self.redact(str(value))


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"ts": _timestamp(record), "level": record.levelname.lower()}
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict):
        out["event"] = record.getMessage()
        out.update(fields)
    else:
        out["logger"] = record.name
        out["msg"] = record.getMessage()
    if record.exc_text:
        out["exc"] = record.exc_text
    return out


_BARE = re.compile(r"^[^\s\"=\\]+$")


def _kv(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "nan"
    text = str(value)
    if text and _BARE.match(text):
        return text
    # Quoted with JSON rules: one line whatever the value holds (newlines escaped).
    return json.dumps(text, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """``key=value`` on one line (logfmt); values with spaces are quoted, newlines escaped."""

    def format(self, record: logging.LogRecord) -> str:
        """One logfmt line for the record."""
        return " ".join(f"{key}={_kv(value)}" for key, value in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line for the record."""
        return json.dumps(_fields(record), ensure_ascii=False, default=str)


def configure_logging(log_format: str = "keyvalue", level: str = "info", *,
                      secrets: Iterable[str] = (), stream: TextIO | None = None) -> logging.Handler:
    """Install one structured, redacting handler on the root logger; returns it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else KeyValueFormatter())
    handler.addFilter(RedactFilter(secrets_from(secrets)))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_linkhealth", False)]:
        root.removeHandler(old)
    handler._linkhealth = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # APScheduler logs every job start and finish, Alembic every migration step, at INFO;
    # our own events say more.
    for name in ("apscheduler", "alembic", "aiohttp.access"):
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _SkippedOverlap) for f in scheduler_log.filters):
        scheduler_log.addFilter(_SkippedOverlap())
    return handler


class _SkippedOverlap(logging.Filter):
    """Drops APScheduler's warning that a job was skipped because it is still running.

    With max_instances=1 that skip is the design (a job never overlaps itself), not a
    fault; at debug level it is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the overlap warning unless the root logger is at debug level."""
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            return True
        return "maximum number of running instances reached" not in str(record.msg)


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event: ``event`` is the name, ``fields`` the key=value pairs."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"fields": fields})
