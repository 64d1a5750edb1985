"""Scan: which note files to read, read each once, and say which were skipped and why.

A note that is not UTF-8 (older Chinese notes are often GBK) is decoded with
``notes.encoding`` when set, else with the encoding detected for it
(checker.charsets.detect_encoding); ``Note.encoding`` records which, so that callers
can say so and ``fix --apply`` can write the note back in it. A note that cannot be
read as text (a NUL byte, no encoding that decodes it, larger than
``notes.max_file_bytes``) is skipped with a reason, not an error: the run goes on and
the summary counts it. A path that does not exist is an InputError.

Symbolic links (to notes or to folders) are followed only where they resolve inside
the scanned paths, unless ``notes.follow_symlinks_outside`` is set; a link that is not
followed is a skipped file with its reason, as is a folder link that loops back.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from stat import S_ISREG
from typing import Mapping, Sequence

from .charsets import detect_encoding
from .errors import InputError
from .models import Note
from .settings import NotesSettings

__all__ = ["scan", "read_note", "ScanResult", "Skipped", "display_path", "glob_match", "LinkPolicy",
           "decode_note", "encoding_notice"]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file that was found but not read as a note, with the reason."""

    path: str
    reason: str


@dataclass(frozen=True)
class ScanResult:
    """Notes in a deterministic order, the skipped files, and the text read by the scan.

    ``texts`` maps ``Note.path`` to the decoded text, so that extraction does not read
    the file a second time; use :meth:`text`.
    """

    notes: tuple[Note, ...]
    skipped: tuple[Skipped, ...] = ()
    texts: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def text(self, note: Note) -> str:
        """The note's text as read by the scan (read again only if it was not kept)."""
        cached = self.texts.get(note.path)
        return cached if cached is not None else read_note(note)


def display_path(path: Path) -> str:
    """The path as the user recognises it: relative to the working directory when under it."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return absolute.as_posix()


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob with ``**`` (any number of folders), ``*``, ``?`` and ``[...]`` as a regex."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            j = pattern.index("]", i + 1)
            out.append("[" + pattern[i + 1:j].replace("!", "^", 1) + "]")
            i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_match(relpath: str, patterns: Sequence[str]) -> bool:
    """True when the POSIX relative path matches one of the globs."""
    return any(_glob_regex(p).match(relpath) for p in patterns)


class LinkPolicy:
    """Where symbolic links may lead: inside the scanned roots, or anywhere when
    ``notes.follow_symlinks_outside`` is set. A link that leaves the roots could
    otherwise make the notes' URLs include those of any file on the machine
    (``notes/passwd.md -> /etc/passwd``)."""

    def __init__(self, roots: Sequence[str | Path], settings: NotesSettings) -> None:
        self.roots = tuple(Path(os.path.realpath(r)) for r in roots)
        self.anywhere = settings.follow_symlinks_outside

    def refusal(self, path: Path) -> str | None:
        """Why the note or folder at ``path`` is not followed, or None when it may be read."""
        real = Path(os.path.realpath(path))
        if not real.exists():
            return f"broken symbolic link (to {real})" if os.path.islink(path) else None
        if self.anywhere or any(real == root or real.is_relative_to(root) for root in self.roots):
            return None
        return (f"symbolic link to {real}, outside the scanned folders: not followed "
                "(set notes.follow_symlinks_outside = true to follow it)")


def _walk(root: Path, settings: NotesSettings, links: LinkPolicy, skipped: list[Skipped]) -> list[Path]:
    """Files under ``root`` matching include and not exclude, sorted by relative path.

    Symbolically linked folders are walked after every real one, each real folder once:
    a loop, or a second way into a folder already walked, is skipped with its reason.
    """
    found: list[tuple[str, Path]] = []
    walked: dict[str, Path] = {}          # real path -> the path it was walked as
    pending: list[tuple[Path, str]] = [(root, "")]   # (folder, its relative path + "/"): links join last
    while pending:
        base, base_prefix = pending.pop(0)
        if base_prefix:                   # a linked folder
            reason = links.refusal(base) or _walked_already(base, walked)
            if reason:
                skipped.append(Skipped(display_path(base), reason))
                continue
        for folder, dirs, files in os.walk(base):
            walked.setdefault(os.path.realpath(folder), Path(folder))
            rel_dir = Path(folder).relative_to(base).as_posix()
            prefix = base_prefix + ("" if rel_dir == "." else rel_dir + "/")
            dirs[:] = _real_subfolders(Path(folder), prefix, dirs, settings, walked, pending)
            for name in files:
                rel = prefix + name
                if glob_match(rel, settings.include) and not glob_match(rel, settings.exclude):
                    path = Path(folder) / name
                    reason = links.refusal(path) if os.path.islink(path) else None
                    if reason:
                        skipped.append(Skipped(display_path(path), reason))
                    else:
                        found.append((rel, path))
    found.sort(key=lambda item: item[0])
    return [path for _, path in found]


def _real_subfolders(folder: Path, prefix: str, dirs: list[str], settings: NotesSettings,
                     walked: Mapping[str, Path], pending: list[tuple[Path, str]]) -> list[str]:
    """The subfolders os.walk should enter; symbolic links join ``pending`` instead."""
    keep = []
    for name in sorted(dirs):
        # Prune excluded folders early ("**/node_modules/**" matches "node_modules/x").
        if glob_match(f"{prefix}{name}/x", settings.exclude):
            continue
        path = folder / name
        if os.path.islink(path):
            pending.append((path, f"{prefix}{name}/"))
        elif os.path.realpath(path) not in walked:   # reached again through a linked folder
            keep.append(name)
    return keep


def _walked_already(link: Path, walked: Mapping[str, Path]) -> str | None:
    """The reason to skip a linked folder whose target was walked, or None."""
    real = os.path.realpath(link)
    if real not in walked:
        return None
    if Path(os.path.realpath(link.parent)).is_relative_to(real):
        return f"symbolic link loop: points back to {display_path(walked[real])}"
    return f"symbolic link to a folder already scanned as {display_path(walked[real])}"


def decode_note(data: bytes, encoding: str = "") -> tuple[str, str]:
    """(text, codec) of a note's bytes: UTF-8 (BOM stripped), else ``encoding`` when
    given, else the detected encoding. UnicodeDecodeError when none decodes them."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as exc:
        first = exc
    codec = encoding or detect_encoding(data)
    if codec is None:
        raise first
    return data.decode(codec), codecs.lookup(codec).name


def encoding_notice(notes: Sequence[Note], limit: int = 5) -> str | None:
    """One line saying which notes were not UTF-8 and how they were read, or None."""
    other = [n for n in notes if n.encoding != "utf-8"]
    if not other:
        return None
    codecs_used = sorted({n.encoding for n in other})
    names = ", ".join(n.path for n in other[:limit]) + (f" and {len(other) - limit} more" if len(other) > limit else "")
    count = f"{len(other)} note is" if len(other) == 1 else f"{len(other)} notes are"
    return (f"{count} not UTF-8 and {'was' if len(other) == 1 else 'were'} read as {', '.join(codecs_used)} "
            f"({names}); set notes.encoding if that is wrong")


def _load(path: Path, max_bytes: int, encoding: str = "") -> tuple[Note | None, str | None, str | None]:
    """(note, text, None) or (None, None, skip reason), reading the file once."""
    shown = display_path(path)
    try:
        stat = path.stat()
        if not S_ISREG(stat.st_mode):   # a FIFO would block, /dev/zero never ends
            return None, None, "not a regular file"
        if stat.st_size > max_bytes:
            return None, None, f"larger than notes.max_file_bytes ({stat.st_size} > {max_bytes} bytes)"
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)   # the file may grow after stat()
        if len(data) > max_bytes:
            return None, None, f"larger than notes.max_file_bytes (> {max_bytes} bytes)"
    except OSError as exc:
        return None, None, f"cannot read: {exc.strerror or exc}"
    nul = data.find(b"\x00")
    if nul >= 0:
        return None, None, f"binary file (NUL byte at offset {nul})"
    try:
        text, codec = decode_note(data, encoding)
    except UnicodeDecodeError as exc:
        what = f"not {encoding} (notes.encoding)" if encoding else "not UTF-8 nor any encoding detected"
        return None, None, f"{what}: invalid byte 0x{data[exc.start]:02x} at offset {exc.start}"
    note = Note(path=shown, abspath=Path(os.path.abspath(path)), sha256=hashlib.sha256(data).hexdigest(),
                mtime=stat.st_mtime, size=stat.st_size, encoding=codec)
    return note, text, None


def scan(paths: Sequence[str | Path], settings: NotesSettings, *, keep_text: bool = True,
         roots: Sequence[str | Path] | None = None) -> ScanResult:
    """Find the notes under ``paths`` (files or folders), read each once, sorted by path.

    Symbolic links are followed only where they resolve inside ``roots`` (default: the
    ``paths``), unless ``notes.follow_symlinks_outside`` is set.
    """
    links = LinkPolicy(paths if roots is None else roots, settings)
    files: list[Path] = []
    skipped: list[Skipped] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"{raw}: no such file or folder")
        if path.is_dir():
            files.extend(_walk(path, settings, links, skipped))
        elif os.path.realpath(path) != os.path.abspath(path) and (reason := links.refusal(path)):
            skipped.append(Skipped(display_path(path), reason))
        else:
            files.append(path)
    notes: list[Note] = []
    texts: dict[str, str] = {}
    seen: set[Path] = set()
    for path in files:
        absolute = Path(os.path.abspath(path))
        if absolute in seen:
            continue
        seen.add(absolute)
        note, text, reason = _load(path, settings.max_file_bytes, settings.encoding)
        if note is None:
            skipped.append(Skipped(display_path(path), reason or "unreadable"))
            continue
        notes.append(note)
        if keep_text and text is not None:
            texts[note.path] = text
    notes.sort(key=lambda n: n.path)
    skipped.sort(key=lambda s: s.path)
    return ScanResult(tuple(notes), tuple(dict.fromkeys(skipped)), texts)


def check_roots(paths: Sequence[str | Path]) -> None:
    """InputError unless there is at least one notes path and every one exists."""
    if not paths:
        raise InputError("no notes to watch: give the notes folder(s) (linkhealth daemon NOTES...) "
                         "or set [notes] paths in the config")
    for raw in paths:
        if not Path(raw).exists():
            raise InputError(f"{raw}: no such file or folder")


def read_note(note: Note) -> str:
    """A note's text, in the encoding the scan found (a UTF-8 BOM stripped); InputError if
    it is no longer readable text."""
    codec = "utf-8-sig" if note.encoding == "utf-8" else note.encoding
    try:
        return note.abspath.read_bytes().decode(codec)
    except OSError as exc:
        raise InputError(f"{note.path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{note.path}: not {note.encoding} any more (byte offset {exc.start})") from None
