"""What `linkhealth audit` prints on a terminal (checker.commands), run in-process.

Every URL here is malformed (``h1ttps://``): each is `broken` without any network traffic.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.commands import plural, run_audit_command
from checker.settings import load_settings


def settings_in(folder: Path):
    return load_settings(None, overrides={"data_dir": str(folder / ".linkhealth")})


def audit(folder: Path, capsys, **kwargs) -> tuple[int, str, str]:
    code = run_audit_command(settings_in(folder), [str(folder / "notes")], fmt=kwargs.pop("fmt", "text"),
                             output=kwargs.pop("output", None), archive=False, **kwargs)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def many(tmp_path: Path) -> Path:
    """25 malformed links in one note; line 1 cites its URL twice."""
    notes = tmp_path / "notes"
    notes.mkdir()
    lines = ["h1ttps://bad.example/0 and again h1ttps://bad.example/0"]
    lines += [f"h1ttps://bad.example/{i}" for i in range(1, 25)]
    (notes / "a.md").write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def test_plural() -> None:
    assert [plural(n, "note") for n in (0, 1, 2)] == ["0 notes", "1 note", "2 notes"]
    assert plural(1, "job is", "jobs are") == "1 job is" and plural(3, "job is", "jobs are") == "3 jobs are"


def test_one_of_each_is_singular(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("h1ttps://bad.example/x\n", encoding="utf-8")
    code, out, _ = audit(tmp_path, capsys)
    assert code == 1
    assert "1 note, 1 reference, 1 unique link; 1 checked" in out
    assert "1 failing link\n" in out and "1 failing links" not in out


def test_terminal_lists_at_most_the_limit_then_says_how_many_more(many: Path, capsys) -> None:
    code, out, _ = audit(many, capsys)
    assert code == 1
    listed = [line for line in out.splitlines() if "broken (suspect)" in line]
    assert len(listed) == 20
    assert "25 failing links" in out and "  and 5 more, see the report" in out
    assert len(out.splitlines()) < 40
    # A line citing a URL twice is one citation, not "a.md:1, a.md:1".
    assert listed[0].endswith("a.md:1  broken (suspect)  h1ttps://bad.example/0  "
                              "malformed URL: scheme 'h1ttps' is not a known scheme")
    code, out, _ = audit(many, capsys, list_limit=0)
    assert len([line for line in out.splitlines() if "broken (suspect)" in line]) == 25
    assert "more, see the report" not in out


def test_quiet_prints_nothing_and_keeps_the_exit_code(many: Path, capsys) -> None:
    code, out, err = audit(many, capsys, quiet=True)
    assert (code, out, err) == (1, "", "")


def test_output_file_gets_everything_and_the_terminal_says_where(many: Path, capsys) -> None:
    target = many / "summary.txt"
    code, out, _ = audit(many, capsys, output=str(target))
    assert code == 1
    written = target.read_text(encoding="utf-8")
    assert len([line for line in written.splitlines() if "broken (suspect)" in line]) == 25
    assert "1 note, 26 references, 25 unique links" in out
    assert "25 failing links" in out and f"wrote {target}" in out and "report: " in out
    code, out, _ = audit(many, capsys, output=str(many / "out.json"), fmt="json")
    assert f"wrote {many / 'out.json'}" in out
    code, out, err = audit(many, capsys, output=str(many / "out.json"), fmt="json", quiet=True)
    assert (out, err) == ("", "")


def test_archive_summary_counts_in_the_right_number(capsys) -> None:
    from rich.console import Console

    from checker.archive.runner import ArchiveSummary, PlanSummary
    from checker.commands import print_archive_summary
    print_archive_summary(Console(), ArchiveSummary(due=1, outcomes={"done": 1}, snapshots=1),
                          plan=PlanSummary(candidates=1, planned=(), enqueued=1))
    out = capsys.readouterr().out
    assert "archive plan: 1 candidate link;" in out
    assert "archive: 1 job due; done 1; 1 new snapshot\n" in out
    print_archive_summary(Console(), ArchiveSummary(due=1, outcomes={}, snapshots=0, dry_run=True))
    assert "dry run: 1 queued job is due, 0 new would be queued" in capsys.readouterr().out
