"""The report's trend chart: health counts over runs as an inline SVG with real axes.

Computed here (no chart library, no script): stacked areas, one column per run when
there is a single run, a y axis with round numbers of links, dates under the runs,
and a tooltip per run. The page scales the SVG without distorting it, so its text
stays text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from ..model import RunPoint

__all__ = ["trend_svg", "TREND_ORDER"]

#: Stacked bottom to top.
TREND_ORDER = ("alive", "unknown", "suspect", "dead")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_RIGHT, _TOP, _BOTTOM = 14, 10, 28
_MAX_X_LABELS = 5
# Width of one label character, a safe estimate at the largest font the page gives the
# axis (15px in viewBox units on a phone, report.css), so that labels never touch there.
_CHAR_W = 8.5


def trend_svg(runs: Sequence[RunPoint], width: int = 480, height: int = 200) -> dict[str, Any]:
    """Everything the template draws: areas or columns, axis ticks, date labels, run marks."""
    empty = {"areas": [], "bars": [], "runs": [], "xlabels": [], "yticks": [], "width": width,
             "height": height, "legend": []}
    if not runs:
        return empty
    top = _nice_ceiling(max(sum(r.health.get(k, 0) for k in TREND_ORDER) for r in runs))
    left = round(10 + len(f"{top:,}") * _CHAR_W)       # room for the widest count on the axis
    plot_w, plot_h = width - left - _RIGHT, height - _TOP - _BOTTOM

    def y(value: float) -> float:
        return round(_TOP + plot_h - value * plot_h / top, 1)

    if len(runs) == 1:
        xs = [left + plot_w / 2]
    else:
        xs = [left + i * plot_w / (len(runs) - 1) for i in range(len(runs))]
    chart = _columns(runs[0], xs[0], min(64.0, plot_w / 4), y) if len(runs) == 1 else _areas(runs, xs, y)
    half = plot_w / (2 * max(len(runs) - 1, 1))
    marks = [{"x": round(x, 1), "x0": round(max(left, x - half), 1),
              "w": round(min(x + half, left + plot_w) - max(left, x - half), 1), "label": _run_label(r)}
             for x, r in zip(xs, runs)]
    latest = runs[-1].health
    return {**empty, **chart, "runs": marks, "xlabels": _x_labels(runs, xs),
            "yticks": [{"y": y(v), "text": f"{v:,}"} for v in (0, top // 2, top)],
            "plot": {"x0": left, "x1": left + plot_w, "y0": _TOP, "y1": _TOP + plot_h},
            "legend": [{"key": k, "count": latest.get(k, 0)} for k in reversed(TREND_ORDER)],
            "max": top}


def _areas(runs: Sequence[RunPoint], xs: list[float], y) -> dict[str, Any]:
    base = [0] * len(runs)
    areas = []
    for key in TREND_ORDER:
        upper = [base[i] + runs[i].health.get(key, 0) for i in range(len(runs))]
        line = [f"{xs[i]:.1f},{y(upper[i])}" for i in range(len(runs))]
        back = [f"{xs[i]:.1f},{y(base[i])}" for i in reversed(range(len(runs)))]
        areas.append({"key": key, "points": " ".join(line + back)})
        base = upper
    return {"areas": areas}


def _columns(run: RunPoint, x: float, width: float, y) -> dict[str, Any]:
    # A single run is one column: a band across the chart read as two runs (and its
    # tick cut it into two halves).
    bars, base = [], 0
    for key in TREND_ORDER:
        value = run.health.get(key, 0)
        if value:
            bars.append({"key": key, "x": round(x - width / 2, 1), "w": round(width, 1),
                         "y": y(base + value), "h": round(y(base) - y(base + value), 1)})
        base += value
    return {"bars": bars}


def _nice_ceiling(value: int) -> int:
    """The axis top: ``value`` rounded up to two significant digits, the second even, so
    that the middle tick is a whole number too (11 -> 12, 45 -> 46, 817 -> 820)."""
    unit = 2 * 10 ** max(len(str(max(value, 1))) - 2, 0)
    return max(unit, -(-value // unit) * unit)


def _day(value: datetime) -> str:
    return f"{_MONTHS[value.month - 1]} {value.day}"


def _x_labels(runs: Sequence[RunPoint], xs: list[float]) -> list[dict[str, Any]]:
    """Dates under up to five runs, the first and the last always; a time where one day
    has several runs; a label that would touch its neighbour is left out."""
    n = len(runs)
    count = min(n, _MAX_X_LABELS)
    picks = sorted({round(i * (n - 1) / (count - 1)) for i in range(count)}) if count > 1 else [0]
    days = [_day(runs[i].started_at) for i in picks]
    years = {r.started_at.year for r in runs}
    labels: list[dict[str, Any]] = []
    for i, text in zip(picks, days):
        when = runs[i].started_at
        if days.count(text) > 1:
            text += f" {when:%H:%M}"
        elif len(years) > 1:
            text += f" {when.year}"
        anchor = "start" if i == 0 and n > 1 else "end" if i == n - 1 and n > 1 else "middle"
        labels.append({"x": round(xs[i], 1), "text": text, "anchor": anchor, "iso": when.isoformat(),
                       "span": _extent(xs[i], len(text), anchor)})
    kept = [labels[0]]
    for label in labels[1:]:
        if label["span"][0] > kept[-1]["span"][1] + _CHAR_W:
            kept.append(label)
        elif label is labels[-1] and len(kept) > 1:
            kept[-1] = label        # the last run's date matters more than the one before it
    shown = [label["text"].split(" ")[:2] for label in kept]
    for label, day in zip(kept, shown):
        if shown.count(day) == 1 and ":" in label["text"]:
            label["text"] = " ".join(day)      # its day no longer repeats: the time is noise
        del label["span"]
    return kept


def _extent(x: float, chars: int, anchor: str) -> tuple[float, float]:
    width = chars * _CHAR_W
    start = x if anchor == "start" else x - width if anchor == "end" else x - width / 2
    return start, start + width


def _run_label(r: RunPoint) -> str:
    counts = ", ".join(f"{k} {r.health.get(k, 0)}" for k in reversed(TREND_ORDER))
    return f"{r.kind} run {r.id}, {r.started_at:%Y-%m-%d %H:%M} UTC: {counts}"
