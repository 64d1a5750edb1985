"""The HTML report: one self-contained file (inline CSS and JS, no CDN, works from file://).

Jinja2 templates live in ``checker/report/templates`` with autoescaping on. The links
table is drawn client-side, a page at a time, from an embedded JSON blob, so 25,000
links do not become 25,000 DOM rows.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from ..model import HEALTHS, STATUSES, LinkRow, ReportModel
from .json import iso
from .trend import trend_svg

__all__ = ["HtmlFormat", "script_json", "script_json_chunks", "data_blob", "trend_svg", "STATUS_ORDER", "archive_href"]

#: Worst first: the default sort puts what needs fixing at the top.
STATUS_ORDER = ("broken", "soft404", "timeout", "unreachable", "blocked", "redirect", "ok", "excluded")
#: One letter a status in the compact history strings of the blob.
_HISTORY_CODE = {"ok": "o", "redirect": "r", "broken": "b", "soft404": "s", "timeout": "t",
                 "unreachable": "u", "blocked": "k", "excluded": "x"}


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def script_json(data: Any) -> Markup:
    """JSON safe inside <script>: no '</script>', '<!--', U+2028/2029 can end or break it."""
    return Markup(_script_safe(_dumps(data)))


def _script_safe(text: str) -> str:
    # HTML spec 4.12.1.3 (restrictions for contents of script elements): escaping
    # '<' keeps '</script' and '<!--' out; '>' and '&' for good measure; U+2028/2029
    # are line terminators for older JS parsers (ECMA-262 before ES2019).
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


#: Link rows per piece of the streamed blob.
BLOB_ROWS = 500


def data_blob(model: ReportModel) -> dict[str, Any]:
    """The compact columnar data the page's script renders (indexes into shared lists)."""
    rows: list[list[Any]] = []
    for part in _blob_parts(model):
        if isinstance(part, list):
            rows += part
        else:
            return {**part, "links": rows}
    raise AssertionError("unreachable: _blob_parts ends with the rest of the blob")


def script_json_chunks(model: ReportModel) -> Iterator[Markup]:
    """:func:`script_json` of :func:`data_blob`, in pieces of BLOB_ROWS links. Made whole,
    the blob of 25,000 links (6.3 million characters, most of them Chinese) was held as a
    string, its escaped copy and its encoding at once: 38 MB on top of an audit's peak."""
    yield Markup('{"links":[')
    sep = ""
    for part in _blob_parts(model):
        if isinstance(part, list):
            yield Markup(sep + _script_safe(_dumps(part)[1:-1]))
            sep = ","
        else:
            yield Markup("]," + _script_safe(_dumps(part)[1:]))


def _blob_parts(model: ReportModel) -> Iterator[list[list[Any]] | dict[str, Any]]:
    """The link rows, BLOB_ROWS at a time, then every other key of the blob (the note and
    host lists are indexed while the rows are made)."""
    note_index: dict[str, int] = {}
    host_index: dict[str, int] = {}
    status_index = {s: i for i, s in enumerate(STATUSES)}
    rows: list[list[Any]] = []
    for r in model.links:
        occ: list[int] = []
        for o in r.occurrences:
            occ += [note_index.setdefault(o.file, len(note_index)), o.line]
        rows.append(_link_tuple(r, status_index, host_index.setdefault(r.host, len(host_index)), occ))
        if len(rows) >= BLOB_ROWS:
            yield rows
            rows = []
    if rows:
        yield rows
    for n in model.notes:
        note_index.setdefault(n.path, len(note_index))
    yield {
        "statuses": list(STATUSES), "healths": list(HEALTHS), "order": list(STATUS_ORDER),
        "history_codes": {v: k for k, v in _HISTORY_CODE.items()},
        "generated": _ts(model.generated_at),
        "notes": [_under(path, model.notes_root) for path in note_index], "hosts": list(host_index),
        "note_stats": [[note_index[n.path], n.links, n.failing, n.dead, n.at_risk] for n in model.notes],
        "host_stats": [[host_index[h.host], h.links, h.failing, h.dead, h.blocked, int(h.at_risk), h.pace]
                       for h in model.hosts],
    }


def _under(path: str, root: str | None) -> str:
    """A note's path relative to the folder all notes share (named once in the header)."""
    return path[len(root) + 1:] if root and path.startswith(root + "/") else path


def _link_tuple(r: LinkRow, status_index: dict[str, int], host: int, occ: list[int]) -> list[Any]:
    # Positions are read by name in report.js (const L = {...}); keep both in step.
    final = r.final_url if _moved(r) else None
    history = "".join(_HISTORY_CODE.get(h.status, "?") for h in r.history)
    return [r.url, status_index.get(r.status, -1) if r.status else -1, r.health, r.http_status,
            final, r.title, r.error, _ts(r.checked_at), r.latency_ms, int(r.at_risk), archive_href(r.archive_url),
            r.archive_service, _ts(r.first_failing_at), host, occ, history, _ts(r.revived_at), r.archive_fidelity]


def _moved(r: LinkRow) -> bool:
    """True when the link ended elsewhere: not when only the fragment was dropped (a client
    never sends it, RFC 9110 section 4.2.4) or the final URL is the link's normalised form."""
    if not r.final_url:
        return False
    return r.final_url not in (r.url, r.url.split("#", 1)[0], r.key)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    # Autoescape on for every template (the .j2 suffix included): hostile titles
    # rendered by the template itself come out as text.
    return Environment(loader=PackageLoader("checker.report", "templates"),
                       autoescape=select_autoescape(default=True, default_for_string=True),
                       trim_blocks=True, lstrip_blocks=True)


def safe_href(url: str | None) -> str | None:
    """The URL when it may be an href (http, https or a relative path), else None."""
    if not url:
        return None
    # Browsers drop tabs and newlines anywhere in a URL and control characters and spaces
    # at its start (WHATWG URL): judge the scheme on what the browser will see.
    seen = re.sub(r"[\t\n\r]", "", url).lstrip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c"
                                                 "\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a"
                                                 "\x1b\x1c\x1d\x1e\x1f ")
    scheme = seen.split(":", 1)[0].lower() if ":" in seen.split("/", 1)[0] else ""
    return url if scheme in ("", "http", "https") else None


def archive_href(url: str | None) -> str | None:
    """The href of an archived copy: Wayback URLs as they are, a local file as a file:// URL.

    The local backend stores the absolute path of the readable copy; older rows hold a
    path relative to the working directory the archive ran in (taken as the current one).
    A bare path would resolve against the report's own folder, not the copy's.
    """
    if not url:
        return None
    if os.path.isabs(url):
        return Path(url).as_uri()
    scheme = url.split(":", 1)[0].lower() if ":" in url.split("/", 1)[0] else ""
    if scheme in ("http", "https", "file"):
        return url
    if scheme:
        return None     # javascript:, data: and the like never become links
    return Path(os.path.abspath(url)).as_uri()


def _pct(part: int, whole: int) -> str:
    return f"{(100.0 * part / whole) if whole else 0:.2f}"


class HtmlFormat:
    """``--format html``: the self-contained report page."""

    name = "html"
    extension = ".html"

    def render(self, model: ReportModel) -> str:
        """The whole page as one string."""
        return "".join(self.chunks(model))

    def chunks(self, model: ReportModel) -> Iterator[str]:
        """The page as the template makes it, piece by piece."""
        template = _environment().get_template("report.html.j2")
        return template.generate(
            m=model, s=model.summary, iso=iso, pct=_pct, href=archive_href, statuses=STATUS_ORDER, healths=HEALTHS,
            trend=trend_svg(model.runs), data=script_json_chunks(model) if model.links else None,
            changes_limit=10)
