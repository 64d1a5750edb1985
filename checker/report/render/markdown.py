"""The Markdown report: the summary and the failing links grouped by note (for an issue)."""

from __future__ import annotations

import re
from collections import defaultdict
from urllib.parse import quote

from ..model import HEALTHS, STATUSES, LinkRow, ReportModel
from .json import iso

__all__ = ["MarkdownFormat", "md_text", "md_url"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!|~>])")


def md_text(text: str | None, limit: int = 200) -> str:
    """Inline text with Markdown punctuation escaped and HTML defused (hostile titles)."""
    if not text:
        return ""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_url(url: str) -> str:
    """A URL as an autolink, with the characters that would end it percent-encoded."""
    # CommonMark autolinks may not contain spaces, < or > (spec 6.5).
    return "<" + quote(url, safe="/:?#[]@!$&'()*+,;=%~-._") + ">"


def _summary(model: ReportModel) -> list[str]:
    s = model.summary
    lines = [f"# {md_text(model.title)}", "",
             f"Generated {iso(model.generated_at)}; last check {iso(model.last_checked_at) or 'never'}.", ""]
    if model.empty:
        return lines + ["Nothing has been checked yet: run `linkhealth audit NOTES/` first.", ""]
    lines += [f"**{s.total}** link{'' if s.total == 1 else 's'}: **{s.failing}** failing, {s.at_risk} at risk, "
              f"{s.archived} archived, {s.unchecked} not checked yet.", "",
              "| status | links |", "| --- | ---: |"]
    lines += [f"| {k} | {s.status.get(k, 0)} |" for k in STATUSES]
    lines += ["", "| health | links |", "| --- | ---: |"]
    lines += [f"| {k} | {s.health.get(k, 0)} |" for k in HEALTHS]
    return lines + [""]


def _changes(model: ReportModel) -> list[str]:
    c = model.changes
    if c.since is None:
        return []
    lines = [f"## Since the previous run ({iso(c.since)})", ""]
    for label, rows in (("Newly broken", c.newly_broken), ("Revived", c.revived),
                        ("Newly archived", c.newly_archived)):
        lines.append(f"- {label}: {len(rows)}")
        lines += [f"  - {md_url(r.url)}" for r in rows[:20]]
    return lines + [""]


def _link_line(r: LinkRow, line: int) -> str:
    # Why it fails, not what the failing page calls itself: a soft 404's title is the
    # site's error page ("404 Not Found", 微信公众平台); its reason is in the error.
    if r.error:
        reason = md_text(r.error, 120)
    elif r.http_status and not 200 <= r.http_status < 300:
        reason = f"HTTP {r.http_status}"
    else:
        reason = md_text(r.title, 80)     # a soft 404 recorded without a reason: its title is the clue
    text = f"- line {line}: {md_url(r.url)} — {r.status}" + (f": {reason}" if reason else "")
    if r.archive_url:
        text += f" — [archived copy]({md_url(r.archive_url)})"
        if r.archive_fidelity and not r.archive_fidelity.startswith("ok"):
            text += f" ({md_text(r.archive_fidelity, 80)})"
    return text


def _failing_by_note(model: ReportModel) -> list[str]:
    per: dict[str, list[tuple[int, LinkRow]]] = defaultdict(list)
    for r in model.links:
        if r.failing:
            for o in r.occurrences:
                per[o.file].append((o.line, r))
    if not per:
        return ["No failing links."] if not model.empty else []
    lines = ["## Failing links by note", ""]
    for path in sorted(per, key=lambda p: (-len(per[p]), p)):
        lines += [f"### {md_text(path)}", ""]
        lines += [_link_line(r, line) for line, r in sorted(per[path], key=lambda t: t[0])]
        lines.append("")
    return lines


class MarkdownFormat:
    """``--format markdown``."""

    name = "markdown"
    extension = ".md"

    def render(self, model: ReportModel) -> str:
        """Summary, changes since the previous run, failing links by note."""
        return "\n".join(_summary(model) + _changes(model) + _failing_by_note(model)).rstrip() + "\n"

    def chunks(self, model: ReportModel) -> tuple[str]:
        """The report in one piece (small: no need to stream)."""
        return (self.render(model),)
