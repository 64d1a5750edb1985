"""The four output formats render the same model; hostile text stays text."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from checker.report import build_report, format_names, render, write_report
from checker.report.model import ReportModel
from checker.report.render.csv import safe_cell
from checker.report.render.html import script_json
from report_db import (LONG_URL, QUOTE_URL, SAMPLE_HEALTH, SAMPLE_STATUS, XSS_TITLE, XSS_TITLE_2,
                       fill_sample, sqlite_engine)

NOW = datetime(2024, 5, 3, tzinfo=timezone.utc)
CONTRACT_KEYS = ["url", "status", "http_status", "final_url", "title", "error", "checked_at",
                 "latency_ms", "at_risk", "health", "archive_url", "occurrences"]


@pytest.fixture
async def sample(tmp_path: Path) -> ReportModel:
    engine = await sqlite_engine(tmp_path / "r.db")
    await fill_sample(engine)
    model = await build_report(engine, now=NOW)
    await engine.dispose()
    return model


@pytest.fixture
async def empty(tmp_path: Path) -> ReportModel:
    engine = await sqlite_engine(tmp_path / "e.db")
    model = await build_report(engine, now=NOW)
    await engine.dispose()
    return model


def test_registry_order_and_unknown_format(sample: ReportModel) -> None:
    assert format_names() == ("html", "json", "markdown", "csv")
    with pytest.raises(ValueError, match="known: html, json"):
        render(sample, "pdf")


def test_json_has_designs_shape(sample: ReportModel) -> None:
    data = json.loads(render(sample, "json"))
    assert data["schema"] == 1 and data["generated_at"] == NOW.isoformat()
    assert data["summary"]["status"] == SAMPLE_STATUS and data["summary"]["health"] == SAMPLE_HEALTH
    assert len(data["links"]) == 11
    for link in data["links"]:
        assert list(link)[:12] == CONTRACT_KEYS
    ok = next(x for x in data["links"] if x["url"] == "https://example.com/ok")
    assert ok["occurrences"] == [{"file": "notes/a.md", "line": 3}, {"file": "notes/b.md", "line": 7}]
    assert ok["title"] == "示例页面：链接健康" and ok["at_risk"] is False
    assert data["changes"]["newly_broken"] == ["https://blog.example.org/post/1"]


def test_csv_one_row_per_link_with_formula_defused(sample: ReportModel) -> None:
    rows = list(csv.DictReader(io.StringIO(render(sample, "csv"))))
    assert len(rows) == 11
    assert {r["url"] for r in rows} >= {LONG_URL, QUOTE_URL}
    ok = next(r for r in rows if r["url"] == "https://example.com/ok")
    assert ok["occurrences"] == "notes/a.md:3; notes/b.md:7" and ok["status"] == "ok"
    assert safe_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")" and safe_cell(None) == ""


def test_markdown_groups_failing_links_by_note(sample: ReportModel) -> None:
    text = render(sample, "markdown")
    assert "| broken | 2 |" in text and "### notes/a.md" in text
    assert "- line 5: <https://blog.example.org/post/1> — broken 404" in text
    assert "<img" not in text and "&lt;img" in text
    # The URL with spaces and angle brackets stays one autolink.
    assert "<https://evil.example/q?a=%22'%3E%3Cb%3Ex%3C/b%3E%20y&z=1>" in text


def test_script_json_cannot_end_the_script() -> None:
    text = str(script_json({"t": "</script><!--\u2028\u2029&"}))
    assert "</script" not in text and "<!--" not in text and "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == {"t": "</script><!--\u2028\u2029&"}


def test_html_is_self_contained_and_escapes_hostile_text(sample: ReportModel) -> None:
    page = render(sample, "html")
    # One <script> of data and one of code, and nothing fetched from elsewhere.
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    assert "@import" not in page and "url(" not in page
    assert XSS_TITLE not in page and XSS_TITLE_2 not in page
    assert page.count("</script>") == 2
    assert '<b data-count-status="broken">2</b>' in page
    assert '<b data-count-health="dead">1</b>' in page


def test_html_of_empty_database_says_nothing_yet(empty: ReportModel) -> None:
    page = render(empty, "html")
    assert "Nothing to report yet" in page and "report-data" not in page
    assert "Nothing has been checked yet" in render(empty, "markdown")
    assert json.loads(render(empty, "json"))["links"] == []
    assert render(empty, "csv").count("\n") == 1


def test_write_report_is_atomic_and_leaves_no_temp_file(sample: ReportModel, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.csv"
    target.parent.mkdir()
    target.write_text("old", encoding="utf-8")
    write_report(sample, "csv", target)
    assert target.read_text(encoding="utf-8").startswith("url,status,")
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.csv"]
    with pytest.raises(ValueError):
        write_report(sample, "nope", target)
    assert target.read_text(encoding="utf-8").startswith("url,status,")
