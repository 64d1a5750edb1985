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
from checker.report.render.html import data_blob, script_json
from report_db import (LONG_URL, QUOTE_URL, SAMPLE_HEALTH, SAMPLE_STATUS, XSS_TITLE, XSS_TITLE_2, Seeder,
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
    assert "- line 5: <https://blog.example.org/post/1> — broken: HTTP 404 Not Found" in text
    # Hostile text (here an error: a failing link shows why it fails, not its title) is defused.
    assert "<img" not in text and "</script" not in text and "&lt;/script" in text
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


@pytest.mark.parametrize("which", ["sample", "empty"])
def test_reports_are_written_in_pieces_exactly_as_rendered_whole(which: str, request, tmp_path: Path) -> None:
    """Reports are streamed to the file (a corpus's JSON is never one string in memory); the
    pieces must make exactly the text of one ``json.dumps`` of the whole report."""
    from checker.report.render.json import report_dict

    model = request.getfixturevalue(which)
    whole = json.dumps(report_dict(model), ensure_ascii=False, indent=2) + "\n"
    assert render(model, "json") == whole
    for fmt in format_names():
        path = write_report(model, fmt, tmp_path / f"r.{fmt}")
        assert path.read_bytes() == render(model, fmt).encode("utf-8"), fmt
    rows = list(csv.reader(io.StringIO(render(model, "csv"))))
    assert len(rows) == 1 + len(model.links)


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


async def test_markdown_says_why_a_link_fails_not_the_error_pages_title(tmp_path: Path) -> None:
    engine = await sqlite_engine(tmp_path / "r.db")
    async with engine.begin() as conn:
        s = Seeder(conn)
        await s.link("https://mp.weixin.qq.com/s/gone", status="soft404", health="suspect", http_status=200,
                     title="微信公众平台", error="该内容已被发布者删除", cites=[("notes/a.md", 2)])
        await s.link("https://example.com/missing", status="broken", health="suspect", http_status=404,
                     title="404 Not Found", cites=[("notes/a.md", 4)])
    text = render(await build_report(engine, now=NOW), "markdown")
    await engine.dispose()
    assert "- line 2: <https://mp.weixin.qq.com/s/gone> — soft404: 该内容已被发布者删除" in text
    assert "- line 4: <https://example.com/missing> — broken: HTTP 404" in text
    assert "微信公众平台" not in text and "404 Not Found" not in text


async def test_html_draws_no_redirect_when_only_the_fragment_was_dropped(tmp_path: Path) -> None:
    engine = await sqlite_engine(tmp_path / "r.db")
    async with engine.begin() as conn:
        s = Seeder(conn)
        await s.link("https://example.com/doc", display_url="https://example.com/doc#part-2",
                     final_url="https://example.com/doc")
        await s.link("https://example.com/old", display_url="https://example.com/old#x",
                     final_url="https://example.com/new", status="redirect", cites=[("notes/a.md", 2)])
    blob = data_blob(await build_report(engine, now=NOW))
    await engine.dispose()
    finals = {row[0]: row[4] for row in blob["links"]}
    assert finals == {"https://example.com/doc#part-2": None, "https://example.com/old#x": "https://example.com/new"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def any_engine(request, tmp_path: Path):
    """The engine of a migrated store: a SQLite file, or a throw-away PostgreSQL schema."""
    from checker.store import Store
    from pgschema import fresh_schema_url
    if request.param == "sqlite":
        store = await Store.open(f"sqlite:///{tmp_path / 'r.db'}")
        yield store.engine
        await store.close()
        return
    async with fresh_schema_url() as url:
        store = await Store.open(url)
        yield store.engine
        await store.close()


async def test_notes_view_counts_every_note_read_and_says_what_was_skipped(any_engine) -> None:
    from sqlalchemy import update

    from checker.store.schema import runs
    from report_db import T0, counts
    engine = any_engine
    async with engine.begin() as conn:
        s = Seeder(conn)
        await s.run(T0, counts({"ok": 1}, {"alive": 1}))
        await conn.execute(update(runs).values(notes_scanned=3, notes_skipped=2))
        await s.note("notes/quiet.md")
        await s.note("notes/also-quiet.md")
        await s.link("https://example.com/a", cites=[("notes/a.md", 1)])
    model = await build_report(engine, now=NOW)
    assert [(n.path, n.links) for n in model.notes] == [("notes/a.md", 1), ("notes/also-quiet.md", 0),
                                                        ("notes/quiet.md", 0)]
    text = " ".join(render(model, "html").split())
    assert ">Notes <span class=\"muted\">3</span>" in text
    assert "3 notes read, 2 of them citing no link." in text
    assert "The last run also skipped 2 files it could not read as notes" in text


def test_notes_root_is_the_folder_absolute_note_paths_share() -> None:
    from checker.report.model import notes_root
    assert notes_root(["/home/u/blog/_posts/a.md", "/home/u/blog/_posts/2016/b.md"]) == "/home/u/blog/_posts"
    assert notes_root(["notes/a.md", "notes/b.md"]) is None          # relative: shown as they are
    assert notes_root(["/a.md", "/b/c.md"]) is None
    assert notes_root([]) is None


async def test_one_link_is_singular(tmp_path: Path) -> None:
    engine = await sqlite_engine(tmp_path / "r.db")
    async with engine.begin() as conn:
        await Seeder(conn).link("https://example.com/a")
    model = await build_report(engine, now=NOW)
    await engine.dispose()
    html = " ".join(render(model, "html").split())
    assert "1</span> link</h2>" in html and "of 1 link</p>" in html
    assert "**1** link: **0** failing" in render(model, "markdown")
