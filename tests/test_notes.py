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
    # Followed only when links outside the notes are allowed (else never opened at all).
    found = scan([tmp_path], NotesSettings(follow_symlinks_outside=True))
    assert [n.path.rsplit("/", 1)[-1] for n in found.notes] == ["ok.md"]
    assert {s.path.rsplit("/", 1)[-1]: s.reason for s in found.skipped} == {
        "pipe.md": "not a regular file", "zero.md": "not a regular file"}


# -- symbolic links: followed inside the scanned folders only (issue 10, item 20) ------------


@pytest.fixture()
def linked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """notes/ with links to a file and a folder outside it, links inside it, and a loop."""
    outside = tmp_path / "outside"
    (outside / "private").mkdir(parents=True)
    (outside / "secret.md").write_text("https://secret.test/file\n", encoding="utf-8")
    (outside / "private" / "diary.md").write_text("https://secret.test/folder\n", encoding="utf-8")
    root = tmp_path / "notes"
    (root / "real").mkdir(parents=True)
    (root / "real" / "r.md").write_text("https://fine.test/r\n", encoding="utf-8")
    (root / "a.md").write_text("https://fine.test/a\n", encoding="utf-8")
    (root / "passwd.md").symlink_to(outside / "secret.md")
    (root / "elsewhere").symlink_to(outside / "private", target_is_directory=True)
    (root / "alias.md").symlink_to(root / "a.md")                      # inside: followed
    (root / "again").symlink_to(root / "real", target_is_directory=True)   # inside, walked already
    (root / "real" / "loop").symlink_to(root, target_is_directory=True)    # back to the root
    (root / "gone.md").symlink_to(tmp_path / "missing.md")
    monkeypatch.chdir(tmp_path)
    return root


def test_links_leading_outside_the_notes_are_not_read(linked: Path) -> None:
    """notes/passwd.md -> a file outside, notes/elsewhere -> a folder outside: skipped, said once."""
    found = scan([linked], NotesSettings())
    assert [n.path for n in found.notes] == ["notes/a.md", "notes/alias.md", "notes/real/r.md"]
    reasons = {s.path: s.reason for s in found.skipped}
    assert len(found.skipped) == len(reasons)            # each link said once
    assert "outside the scanned folders" in reasons["notes/passwd.md"]
    assert "notes.follow_symlinks_outside" in reasons["notes/passwd.md"]
    assert "outside the scanned folders" in reasons["notes/elsewhere"]
    assert reasons["notes/real/loop"].startswith("symbolic link loop")
    assert reasons["notes/again"] == "symbolic link to a folder already scanned as notes/real"
    assert reasons["notes/gone.md"].startswith("broken symbolic link")
    assert all("secret" not in found.text(n) for n in found.notes)


def test_links_outside_are_followed_when_the_setting_allows(linked: Path) -> None:
    found = scan([linked], NotesSettings(follow_symlinks_outside=True))
    paths = [n.path for n in found.notes]
    assert "notes/passwd.md" in paths and "notes/elsewhere/diary.md" in paths
    assert found.text(next(n for n in found.notes if n.path == "notes/passwd.md")) == "https://secret.test/file\n"
    # The loop is still cut, and the folder reached twice still walked once.
    assert {s.path for s in found.skipped} == {"notes/real/loop", "notes/again", "notes/gone.md"}


def test_a_linked_root_and_links_within_it_are_inside(tmp_path: Path, monkeypatch) -> None:
    """A notes folder that is itself a link (notes -> /data/notes) is scanned whole."""
    data = tmp_path / "data" / "notes"
    data.mkdir(parents=True)
    (data / "x.md").write_text("x\n", encoding="utf-8")
    (data / "y.md").symlink_to(data / "x.md")
    (tmp_path / "notes").symlink_to(data, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    found = scan(["notes"], NotesSettings())
    assert [n.path for n in found.notes] == ["notes/x.md", "notes/y.md"] and not found.skipped


def test_a_named_file_is_checked_against_the_given_roots(linked: Path) -> None:
    """The daemon rescans single files: a link among them obeys the roots it watches."""
    found = scan([linked / "passwd.md", linked / "a.md"], NotesSettings(), roots=[linked])
    assert [n.path for n in found.notes] == ["notes/a.md"]
    assert [s.path for s in found.skipped] == ["notes/passwd.md"]
    # Named on its own, a file is its own root: the user asked for it.
    assert [n.path for n in scan([linked / "passwd.md"], NotesSettings()).notes] == ["notes/passwd.md"]


def test_extract_does_not_list_urls_of_a_linked_file_outside(linked: Path) -> None:
    """The issue's reproduction, end to end through the CLI: no URL of /etc/passwd-like files."""
    from click.testing import CliRunner

    from checker.cli import main
    result = CliRunner().invoke(main, ["extract", str(linked)])
    assert result.exit_code == 0, result.output
    assert "secret.test" not in result.stdout
    assert "fine.test/a" in result.stdout
    assert "skipped notes/passwd.md: symbolic link to" in result.stderr
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
