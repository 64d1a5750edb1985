"""`linkhealth fix`: point dead links in the notes to their archived copies.

Only links whose death is confirmed (health ``dead``) and that have a public archived copy
(an http(s) ``archive_url``, i.e. a Wayback capture) are rewritten. The notes are written
atomically (temporary file in the same folder, then rename), and only the bytes of the URLs
being rewritten change: every other byte of the file stays as it was.
"""

from __future__ import annotations

import codecs
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import InputError
from .extract import extract
from .fsutil import write_atomically
from .notes import read_note, scan
from .settings import Settings

__all__ = ["Fix", "plan_fixes", "apply_fixes"]


@dataclass(frozen=True)
class Fix:
    """One URL occurrence to rewrite: where, from what, to what."""

    file: str
    abspath: Path
    line: int
    col: int
    old: str
    new: str
    encoding: str = "utf-8"      # the note's (a Python codec); written back in it


async def plan_fixes(store, settings: Settings, paths: Sequence[str]) -> list[Fix]:
    """Find the occurrences, in the notes under ``paths``, of dead links with a public copy."""
    from .report import build_report
    model = await build_report(store, settings=settings)
    replacements = {link.url: link.archive_url for link in model.links
                    if link.health == "dead" and (link.archive_url or "").startswith(("http://", "https://"))}
    if not replacements:
        return []
    fixes = []
    for note in scan(paths, settings.notes).notes:
        for ref in extract(read_note(note), note.path, bare_www=settings.notes.bare_www):
            new = replacements.get(ref.url)
            if new and not ref.in_code:
                fixes.append(Fix(note.path, note.abspath, ref.line, ref.col, ref.url, new, note.encoding))
    return fixes


def apply_fixes(fixes: Sequence[Fix]) -> int:
    """Rewrite the notes atomically; returns how many files changed.

    Every file is checked before any is written: when a note changed since it was read,
    nothing at all is written. Lines are counted on "\\n" exactly as the extractor counts
    them (not str.splitlines, which also splits on form feeds and U+2028), and a UTF-8
    byte-order mark is kept.
    """
    by_file: dict[Path, list[Fix]] = defaultdict(list)
    for fix in fixes:
        by_file[fix.abspath].append(fix)
    rewritten = {path: _rewrite(path, items) for path, items in by_file.items()}
    for path, data in rewritten.items():
        write_atomically(path, data, mode=path.stat().st_mode & 0o7777)
    return len(rewritten)


def _rewrite(path: Path, items: Sequence[Fix]) -> bytes:
    raw = path.read_bytes()
    encoding = items[0].encoding
    bom = codecs.BOM_UTF8 if encoding == "utf-8" and raw.startswith(codecs.BOM_UTF8) else b""
    text = _decode_exactly(raw[len(bom):], encoding, items[0].file)
    lines = text.split("\n")
    # Right to left within a line, so earlier columns stay valid.
    for fix in sorted(items, key=lambda f: (f.line, f.col), reverse=True):
        line = lines[fix.line - 1] if fix.line <= len(lines) else ""
        start = fix.col - 1
        if line[start:start + len(fix.old)] != fix.old:
            raise InputError(f"{fix.file}:{fix.line}:{fix.col}: the note changed since it was read "
                             f"(expected {fix.old!r}); nothing was written")
        lines[fix.line - 1] = line[:start] + fix.new + line[start + len(fix.old):]
    try:
        return bom + "\n".join(lines).encode(encoding)
    except UnicodeEncodeError as exc:
        raise InputError(f"{items[0].file}: the new URL has a character {encoding} cannot hold "
                         f"({exc.object[exc.start:exc.end]!r}); nothing was written") from None


def _decode_exactly(raw: bytes, encoding: str, shown: str) -> str:
    """The note's text, when encoding it again gives back exactly its bytes: only then can
    the bytes outside the rewritten URLs stay as they were (a stateful or lossy encoding
    such as ISO-2022-JP may not), else InputError and nothing is written."""
    try:
        text = raw.decode(encoding)
        same = text.encode(encoding) == raw
    except (UnicodeError, LookupError):
        same = False
    if not same:
        raise InputError(f"{shown}: its encoding ({encoding}) does not give back the same bytes when "
                         "written again; nothing was written (convert the note to UTF-8 to fix it)")
    return text
