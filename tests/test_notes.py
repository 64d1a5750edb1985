"""Scan: globs, order, display paths, skipped files, read once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from checker.errors import InputError
from checker.notes import glob_match, read_note, scan
from checker.settings import NotesSettings


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    (root / "node_modules" / "pkg").mkdir(parents=True)
    (root / "b.md").write_text("https://www.python.org/\n", encoding="utf-8")
    (root / "a.markdown").write_bytes("\ufeff中文 https://zhuanlan.zhihu.com/p/1\n".encode("utf-8"))
    (root / "sub" / "c.md").write_text("c\n", encoding="utf-8")
    (root / "node_modules" / "pkg" / "readme.md").write_text("x\n", encoding="utf-8")
    (root / "notes.txt").write_text("not markdown\n", encoding="utf-8")
    (root / "bin.md").write_bytes(b"abc\x00def")
    (root / "gbk.md").write_bytes("中文".encode("gbk"))
    monkeypatch.chdir(tmp_path)
    return root


def test_scan_finds_notes_in_order(tree: Path) -> None:
    result = scan([tree], NotesSettings())
    assert [n.path for n in result.notes] == ["notes/a.markdown", "notes/b.md", "notes/sub/c.md"]
    assert [(s.path, s.reason.split(" ")[0]) for s in result.skipped] == [
        ("notes/bin.md", "binary"), ("notes/gbk.md", "not")]
    assert "invalid byte 0xd6" in result.skipped[1].reason


def test_text_read_once_and_bom_stripped(tree: Path) -> None:
    result = scan(["notes"], NotesSettings())
    note = result.notes[0]
    assert result.text(note) == "中文 https://zhuanlan.zhihu.com/p/1\n"
    assert read_note(note) == result.text(note)
    assert note.sha256 == hashlib.sha256((tree / "a.markdown").read_bytes()).hexdigest()
    assert note.size == (tree / "a.markdown").stat().st_size


def test_oversize_is_skipped(tree: Path) -> None:
    result = scan([tree], NotesSettings(max_file_bytes=10))
    assert "notes/a.markdown" in {s.path for s in result.skipped}
    assert any("max_file_bytes" in s.reason for s in result.skipped)


def test_explicit_file_and_missing_path(tree: Path) -> None:
    assert [n.path for n in scan([tree / "b.md", "notes/b.md"], NotesSettings()).notes] == ["notes/b.md"]
    with pytest.raises(InputError, match="nope"):
        scan(["nope"], NotesSettings())


def test_path_outside_cwd_is_absolute(tree: Path, tmp_path: Path) -> None:
    os.chdir(tree / "sub")
    result = scan([tree / "b.md"], NotesSettings())
    assert result.notes[0].path == (tree / "b.md").as_posix()


@pytest.mark.parametrize("path, patterns, expected", [
    ("a.md", ("**/*.md",), True),
    ("x/y/a.md", ("**/*.md",), True),
    ("node_modules/x", ("**/node_modules/**",), True),
    ("a/node_modules/b/c.md", ("**/node_modules/**",), True),
    ("a.mdx", ("**/*.md",), False),
    ("_site/x.md", ("_site/**",), True),
])
def test_glob_match(path: str, patterns: tuple[str, ...], expected: bool) -> None:
    assert glob_match(path, patterns) is expected


def test_a_fifo_or_device_named_like_a_note_is_skipped_not_read(tmp_path):
    import os

    from checker.notes import scan
    from checker.settings import NotesSettings
    (tmp_path / "ok.md").write_text("# fine\n", encoding="utf-8")
    os.mkfifo(tmp_path / "pipe.md")
    (tmp_path / "zero.md").symlink_to("/dev/zero")
    found = scan([tmp_path], NotesSettings())
    assert [n.path.rsplit("/", 1)[-1] for n in found.notes] == ["ok.md"]
    assert {s.path.rsplit("/", 1)[-1]: s.reason for s in found.skipped} == {
        "pipe.md": "not a regular file", "zero.md": "not a regular file"}
