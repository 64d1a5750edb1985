"""`linkhealth fix`: dead links with a Wayback copy are rewritten, and nothing else changes."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

from test_audit import run, web_args


async def test_fix_rewrites_only_dead_links_with_a_public_copy(web, ca_file, tmp_path):
    project = tmp_path / "w"
    notes = project / "notes"
    notes.mkdir(parents=True)
    original = ("# 笔记\r\n\r\n死链 https://example.com/404 还在这里。\r\n\r\n"
                "[旧文](https://example.com/410) and https://github.com/title\r\n"
                "`https://example.com/404` stays: it is code\r\n")
    (notes / "n.md").write_bytes(original.encode("utf-8"))
    code, _, err = await run("audit", "notes", "--fail-on", "never", *web_args(web, ca_file), cwd=project)
    assert code == 0, err
    db = sqlite3.connect(project / ".linkhealth" / "linkhealth.db")
    now = datetime.now(timezone.utc).isoformat()
    snap = "https://web.archive.org/web/20200101000000/https://example.com/404"
    for url in ("https://example.com/404", "https://example.com/410"):
        db.execute("update links set health = 'dead' where url = ?", (url,))
    link_id = db.execute("select id from links where url = 'https://example.com/404'").fetchone()[0]
    db.execute("insert into snapshots (link_id, service, archive_url, captured_at, http_status, created_at) "
               "values (?, 'wayback', ?, ?, 200, ?)", (link_id, snap, now, now))
    db.commit()

    code, out, err = await run("fix", "notes", cwd=project)          # dry run
    assert code == 0, err
    assert "notes/n.md:3:" in out and "1 link would change" in out
    assert (notes / "n.md").read_bytes() == original.encode("utf-8")

    code, out, err = await run("fix", "notes", "--apply", cwd=project)
    assert code == 0, err
    expected = original.replace("死链 https://example.com/404", f"死链 {snap}")
    assert (notes / "n.md").read_bytes() == expected.encode("utf-8")   # CRLF and code kept
    assert not list(notes.glob(".*.tmp"))


def test_apply_fixes_counts_lines_like_the_extractor_and_keeps_the_bom(tmp_path):
    from checker.extract import extract
    from checker.fix import Fix, apply_fixes
    note = tmp_path / "n.md"
    text = "a\x0c\n`[e](https://dead.example/x)`\u2028\nx[e](https://dead.example/x)\n"
    note.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    refs = [r for r in extract(text, "n.md") if not r.in_code]
    assert [(r.line, r.col) for r in refs] == [(3, 6)]
    apply_fixes([Fix("n.md", note, r.line, r.col, r.url, "https://web.archive.org/web/2020/" + r.url)
                 for r in refs])
    expected = text.replace("x[e](https://dead", "x[e](https://web.archive.org/web/2020/https://dead")
    assert note.read_bytes() == b"\xef\xbb\xbf" + expected.encode("utf-8")   # the code span is untouched


def test_apply_fixes_writes_nothing_when_any_note_changed(tmp_path):
    import pytest as _pytest

    from checker.errors import InputError
    from checker.fix import Fix, apply_fixes
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text("https://dead.example/a\n", encoding="utf-8")
    b.write_text("https://changed.example/b\n", encoding="utf-8")
    fixes = [Fix("a.md", a, 1, 1, "https://dead.example/a", "https://web.archive.org/web/1/x"),
             Fix("b.md", b, 1, 1, "https://dead.example/b", "https://web.archive.org/web/1/y")]
    with _pytest.raises(InputError, match="b.md:1:1"):
        apply_fixes(fixes)
    assert a.read_text(encoding="utf-8") == "https://dead.example/a\n"


def test_a_gbk_note_is_written_back_in_gbk(tmp_path):
    from checker.extract import extract
    from checker.fix import apply_fixes, Fix
    from checker.notes import scan
    from checker.settings import NotesSettings
    text = "# 旧笔记\r\n\r\n死链 https://dead.example/x 还在。\r\n编码：国标\r\n"
    note_path = tmp_path / "gbk.md"
    note_path.write_bytes(text.encode("gbk"))
    found = scan([note_path], NotesSettings())
    note = found.notes[0]
    assert note.encoding == "gb18030"
    refs = extract(found.text(note), note.path)
    snap = "https://web.archive.org/web/2020/https://dead.example/x"
    apply_fixes([Fix(note.path, note.abspath, r.line, r.col, r.url, snap, note.encoding) for r in refs])
    assert note_path.read_bytes() == text.replace("https://dead.example/x", snap).encode("gbk")


def test_a_note_whose_encoding_does_not_round_trip_is_refused(tmp_path):
    import pytest as _pytest

    from checker.errors import InputError
    from checker.fix import apply_fixes, Fix
    # UTF-7 decodes "+AGE-" to "a" but writes "a" back as "a": the bytes would change.
    raw = b"x +AGE- https://dead.example/x\n"
    note = tmp_path / "u7.md"
    note.write_bytes(raw)
    fix = Fix("u7.md", note, 1, 5, "https://dead.example/x", "https://web.archive.org/web/2020/x", "utf-7")
    with _pytest.raises(InputError, match="nothing was written"):
        apply_fixes([fix])
    assert note.read_bytes() == raw
