"""The report: a model read from the database, rendered as html, json, markdown or csv.

Usage::

    model = await build_report(store, settings=settings)
    write_report(model, "html", settings.report_path)
"""

from __future__ import annotations

from .model import ReportModel, build_report
from .render import FORMATS, format_names, render, write_report

__all__ = ["ReportModel", "build_report", "render", "write_report", "FORMATS", "format_names"]
