"""plan_rescan: which notes a watcher's changes touch, by the scan's own rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.notechanges import ADDED, DELETED, MODIFIED, plan_rescan, watched
from checker.settings import NotesSettings

SETTINGS = NotesSettings(exclude=("**/node_modules/**", "drafts/**"))


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "drafts").mkdir()
    (notes / "node_modules").mkdir()
    (notes / "a.md").write_text("a\n", encoding="utf-8")
    (notes / "sub" / "b.md").write_text("b\n", encoding="utf-8")
    (notes / "drafts" / "d.md").write_text("d\n", encoding="utf-8")
    (notes / "node_modules" / "n.md").write_text("n\n", encoding="utf-8")
    (notes / "todo.txt").write_text("t\n", encoding="utf-8")
    return notes


def rel(plan, root: Path) -> tuple[list[str], list[str]]:
    return ([p.relative_to(root).as_posix() for p in plan.files],
            [p.relative_to(root).as_posix() for p in plan.gone])


def test_edited_notes_are_rescanned_alone(root: Path) -> None:
    plan = plan_rescan([(MODIFIED, root / "a.md"), (ADDED, root / "sub" / "b.md")], [root], SETTINGS)
    assert rel(plan, root) == (["a.md", "sub/b.md"], [])


def test_include_and_exclude_patterns_hold(root: Path) -> None:
    changes = [(MODIFIED, root / "drafts" / "d.md"), (MODIFIED, root / "node_modules" / "n.md"),
               (MODIFIED, root / "todo.txt"), (MODIFIED, root.parent / "elsewhere.md")]
    assert rel(plan_rescan(changes, [root], SETTINGS), root) == ([], [])
    assert not watched(root / "drafts" / "d.md", [root], SETTINGS)
    assert watched(root / "sub" / "b.md", [root], SETTINGS)


def test_what_is_gone_is_retired_whatever_the_event_says(root: Path) -> None:
    (root / "a.md").unlink()
    plan = plan_rescan([(DELETED, root / "a.md"), (DELETED, root / "sub" / "b.md"),
                        (DELETED, root / "old")], [root], SETTINGS)
    # b.md still exists (saved by renaming over it): read again, not retired. A path that
    # is gone may have been a folder of notes: every note under it is retired.
    assert rel(plan, root) == (["sub/b.md"], ["a.md", "old"])


def test_a_folder_that_appears_needs_a_full_scan(root: Path) -> None:
    (root / "new").mkdir()
    assert plan_rescan([(ADDED, root / "new")], [root], SETTINGS) is None
    assert plan_rescan([(MODIFIED, root / "sub")], [root], SETTINGS) is not None   # its contents changed
    assert plan_rescan([(DELETED, root)], [root.parent / "missing"], SETTINGS) is not None
    root_gone = root.parent / "gone"
    assert plan_rescan([(DELETED, root_gone)], [root_gone], SETTINGS) is None


def test_links_follow_the_scan_rules(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.md").write_text("x\n", encoding="utf-8")
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "alias").symlink_to(root / "sub", target_is_directory=True)
    # Through a folder link leading outside: never read. Through one inside: the walk
    # decides under which name the note is stored, so a full scan.
    assert rel(plan_rescan([(MODIFIED, root / "out" / "x.md")], [root], SETTINGS), root) == ([], [])
    assert plan_rescan([(MODIFIED, root / "alias" / "b.md")], [root], SETTINGS) is None


def test_a_file_root_is_its_own_note(root: Path) -> None:
    note = root / "todo.txt"
    plan = plan_rescan([(MODIFIED, note), (MODIFIED, root / "a.md")], [note], SETTINGS)
    assert rel(plan, root) == (["todo.txt"], [])


def test_an_excluded_folder_that_appears_is_ignored(root: Path) -> None:
    (root / "drafts" / "new").mkdir()
    changes = [(ADDED, root / "drafts" / "new"), (ADDED, root / "node_modules" / "pkg")]
    assert rel(plan_rescan(changes, [root], SETTINGS), root) == ([], [])
    assert not watched(root / "drafts", [root], SETTINGS)
