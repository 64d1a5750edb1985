"""Output formats of the report: an ordered registry behind one small protocol.

A format is an object with ``name``, ``extension``, ``render(model) -> str`` and
``chunks(model)``, the same text in pieces, which is how reports are written: the JSON
of 25,000 links is never one string in memory (ArchiveBox-style uniform contract;
STYLE.md "Plug-in points are protocols").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Protocol

from ...fsutil import write_atomically, writing
from ..model import ReportModel
from .csv import CsvFormat
from .html import HtmlFormat
from .json import JsonFormat
from .markdown import MarkdownFormat

__all__ = ["ReportFormat", "FORMATS", "format_names", "get_format", "render", "write_report"]


class ReportFormat(Protocol):
    """One output format of the report."""

    name: str
    extension: str

    def render(self, model: ReportModel) -> str:
        """The whole report as text."""
        ...

    def chunks(self, model: ReportModel) -> Iterable[str]:
        """The same text as ``render``, in pieces."""
        ...


#: In order of preference: the first is the default of ``linkhealth report``.
FORMATS: tuple[ReportFormat, ...] = (HtmlFormat(), JsonFormat(), MarkdownFormat(), CsvFormat())


def format_names() -> tuple[str, ...]:
    """Names of the registered formats, in order."""
    return tuple(f.name for f in FORMATS)


def get_format(fmt: str) -> ReportFormat:
    """The registered format called ``fmt``; ValueError names the known ones."""
    for f in FORMATS:
        if f.name == fmt:
            return f
    raise ValueError(f"unknown report format {fmt!r}; known: {', '.join(format_names())}")


def render(model: ReportModel, fmt: str) -> str:
    """Render the model in format ``fmt`` (html, json, markdown or csv)."""
    return get_format(fmt).render(model)


def write_report(model: ReportModel, fmt: str, path: str | os.PathLike) -> Path:
    """Render and write atomically (temp file in the same folder, then os.replace)."""
    target = Path(path)
    chunks = get_format(fmt).chunks(model)
    with writing(target, f"the {fmt} report"):      # a read-only folder: one line, exit 2
        target.parent.mkdir(parents=True, exist_ok=True)
        # Encoded as is: the CSV's \r\n row ends stay as the csv module wrote them.
        write_atomically(target, (chunk.encode("utf-8") for chunk in chunks), mode=0o644)
    return target
