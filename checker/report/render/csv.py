"""The CSV report: one row per link with the fields of the JSON."""

from __future__ import annotations

import csv
import io
from typing import Iterator

from ..model import LinkRow, ReportModel
from .json import iso

__all__ = ["CsvFormat", "COLUMNS", "safe_cell"]

COLUMNS = ("url", "status", "http_status", "final_url", "title", "error", "checked_at",
           "latency_ms", "at_risk", "health", "archive_url", "occurrences", "host",
           "first_failing_at", "revived_at")

# OWASP "CSV Injection": a cell starting with one of these is run as a formula by
# spreadsheets; titles come from hostile servers, so such cells get a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """Text of a cell, defused against spreadsheet formula injection."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _row(r: LinkRow) -> list[str]:
    occ = "; ".join(f"{o.file}:{o.line}" for o in r.occurrences)
    values = (r.url, r.status, r.http_status, r.final_url, r.title, r.error, iso(r.checked_at),
              r.latency_ms, "true" if r.at_risk else "false", r.health, r.archive_url, occ, r.host,
              iso(r.first_failing_at), iso(r.revived_at))
    return [safe_cell(v) for v in values]


class CsvFormat:
    """``--format csv``."""

    name = "csv"
    extension = ".csv"

    def render(self, model: ReportModel) -> str:
        """A header row then one row per link (RFC 4180 quoting, \\r\\n row ends)."""
        return "".join(self.chunks(model))

    def chunks(self, model: ReportModel) -> Iterator[str]:
        """The same, a few hundred rows at a time."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(COLUMNS)
        for i, row in enumerate(model.links, 1):
            writer.writerow(_row(row))
            if i % 500 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()
