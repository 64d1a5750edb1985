"""Scan: globs, order, display paths, skipped files, read once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from checker.errors import InputError
from checker.notes import encoding_notice, glob_match, read_note, scan
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
    assert [n.path for n in result.notes] == ["notes/a.markdown", "notes/b.md", "notes/gbk.md", "notes/sub/c.md"]
    assert [(s.path, s.reason.split(" ")[0]) for s in result.skipped] == [("notes/bin.md", "binary")]
    assert [n.encoding for n in result.notes] == ["utf-8", "utf-8", "gb18030", "utf-8"]


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


def test_a_gbk_note_is_read_and_its_encoding_recorded(tmp_path: Path) -> None:
    text = "# 旧笔记\n\n参考 https://example.com/页面 和 [文档](https://example.org/x)。\n"
    (tmp_path / "gbk.md").write_bytes(text.encode("gbk"))
    (tmp_path / "utf8.md").write_text("https://example.com/\n", encoding="utf-8")
    found = scan([tmp_path], NotesSettings())
    assert found.skipped == ()
    by_name = {Path(n.path).name: n for n in found.notes}
    assert by_name["gbk.md"].encoding == "gb18030" and by_name["utf8.md"].encoding == "utf-8"
    assert found.text(by_name["gbk.md"]) == text and read_note(by_name["gbk.md"]) == text
    notice = encoding_notice(found.notes)
    assert notice == f"1 note is not UTF-8 and was read as gb18030 ({by_name['gbk.md'].path}); " \
                     "set notes.encoding if that is wrong"
    assert encoding_notice([by_name["utf8.md"]]) is None


def test_notes_encoding_setting_wins_over_detection(tmp_path: Path) -> None:
    # Shift_JIS bytes that GB18030 also decodes (into the wrong characters): detection
    # cannot know; the setting can.
    text = "日本語のメモ https://example.jp/\n"
    (tmp_path / "sjis.md").write_bytes(text.encode("shift_jis"))
    detected = scan([tmp_path], NotesSettings()).notes[0]
    assert detected.encoding != "shift_jis"
    chosen = scan([tmp_path], NotesSettings(encoding="shift_jis"))
    assert chosen.notes[0].encoding == "shift_jis" and chosen.text(chosen.notes[0]) == text
    # A note the chosen encoding cannot decode is skipped, saying so.
    (tmp_path / "gbk.md").write_bytes("中文：笔记".encode("gbk"))
    skipped = scan([tmp_path], NotesSettings(encoding="ascii")).skipped
    assert [s.reason.split(":")[0] for s in skipped] == ["not ascii (notes.encoding)"] * 2


def test_unknown_notes_encoding_is_a_config_error(tmp_path: Path) -> None:
    from checker.errors import ConfigError
    from checker.settings import load_settings
    with pytest.raises(ConfigError, match="notes.encoding"):
        load_settings(None, overrides={"notes.encoding": "klingon-8"})
    with pytest.raises(ConfigError, match="notes.encoding"):
        load_settings(None, overrides={"notes.encoding": "base64"})
    assert load_settings(None, overrides={"notes.encoding": "gbk"}).notes.encoding == "gbk"
