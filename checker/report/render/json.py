"""The JSON report: exactly the shape of DESIGN.md, plus added (never renamed) fields."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterator

from ..model import Changes, LinkRow, ReportModel, RunPoint, Summary

__all__ = ["JsonFormat", "iso", "link_dict", "summary_dict", "report_dict"]

SCHEMA = 1


def iso(value: datetime | None) -> str | None:
    """ISO 8601 text of a datetime, or None."""
    return value.isoformat() if value else None


def link_dict(r: LinkRow) -> dict[str, Any]:
    """One link as DESIGN.md's JSON object (the first twelve keys are the contract)."""
    return {
        "url": r.url, "status": r.status, "http_status": r.http_status, "final_url": r.final_url,
        "title": r.title, "error": r.error, "checked_at": iso(r.checked_at),
        "latency_ms": r.latency_ms, "at_risk": r.at_risk, "health": r.health,
        "archive_url": r.archive_url,
        "occurrences": [{"file": o.file, "line": o.line} for o in r.occurrences],
        # Added fields.
        "normalized_url": r.key, "host": r.host, "archive_service": r.archive_service,
        "first_failing_at": iso(r.first_failing_at), "dead_since": iso(r.dead_since),
        "revived_at": iso(r.revived_at), "archive_fidelity": r.archive_fidelity,
        "history": [{"status": h.status, "checked_at": iso(h.checked_at)} for h in r.history],
    }


def summary_dict(s: Summary) -> dict[str, Any]:
    """Counts by status and by health, with totals."""
    return {"total": s.total, "status": dict(s.status), "health": dict(s.health),
            "failing": s.failing, "at_risk": s.at_risk, "unchecked": s.unchecked,
            "archived": s.archived}


def _run_dict(r: RunPoint) -> dict[str, Any]:
    return {"id": r.id, "kind": r.kind, "state": r.state, "started_at": iso(r.started_at),
            "finished_at": iso(r.finished_at), "links_total": r.links_total,
            "links_checked": r.links_checked, "status": dict(r.status), "health": dict(r.health)}


def _changes_dict(c: Changes) -> dict[str, Any]:
    return {"since": iso(c.since), "newly_broken": [r.url for r in c.newly_broken],
            "revived": [r.url for r in c.revived], "newly_archived": [r.url for r in c.newly_archived]}


def report_dict(model: ReportModel, *, links: bool = True) -> dict[str, Any]:
    """The whole report as plain JSON-ready data (``links=False``: its "links" left None)."""
    return {
        "schema": SCHEMA, "generated_at": iso(model.generated_at), "summary": summary_dict(model.summary),
        "links": [link_dict(r) for r in model.links] if links else None,
        "title": model.title, "last_checked_at": iso(model.last_checked_at),
        "runs": [_run_dict(r) for r in model.runs], "changes": _changes_dict(model.changes),
        "notes": [{"file": n.path, "links": n.links, "failing": n.failing, "dead": n.dead,
                   "at_risk": n.at_risk} for n in model.notes],
        "hosts": [{"host": h.host, "links": h.links, "failing": h.failing, "dead": h.dead,
                   "blocked": h.blocked, "at_risk": h.at_risk} for h in model.hosts],
    }


class JsonFormat:
    """``--format json``."""

    name = "json"
    extension = ".json"

    def render(self, model: ReportModel) -> str:
        """The report as indented UTF-8 JSON (Chinese titles stay readable)."""
        return "".join(self.chunks(model))

    def chunks(self, model: ReportModel) -> Iterator[str]:
        """``json.dumps(report_dict(model), indent=2)``, one link at a time: the links' dicts
        and their text are made as they are written, never all at once."""
        top = report_dict(model, links=False)
        yield "{"
        for i, (key, value) in enumerate(top.items()):
            yield ("," if i else "") + "\n  " + _dumps(key) + ": "
            if key != "links":
                yield _dumps(value, "\n  ")
            elif not model.links:
                yield "[]"
            else:
                yield "["
                for j, row in enumerate(model.links):
                    yield ("," if j else "") + "\n    " + _dumps(link_dict(row), "\n    ")
                yield "\n  ]"
        yield "\n}\n"


def _dumps(value: Any, newline: str = "\n") -> str:
    """``value`` as indented JSON nested at the depth that ``newline`` indents to (JSON text has
    no raw newline but its own, so replacing them shifts the whole value)."""
    return json.dumps(value, ensure_ascii=False, indent=2).replace("\n", newline)
