"""Writing a file so that a reader never sees it half-written (notes, reports), and saying
in one line why a file cannot be written."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .errors import OutputError

__all__ = ["write_atomically", "writing", "check_writable"]


def write_atomically(path: Path, data: bytes | Iterable[bytes], *, mode: int) -> None:
    """Write ``data`` (bytes, or chunks of bytes: a large report is never one string in memory)
    to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, (bytes, bytearray)):
                handle.write(data)
            else:
                handle.writelines(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def writing(path: Path | str, what: str) -> Iterator[None]:
    """Turn an OSError raised while writing ``what`` to ``path`` into a one-line OutputError."""
    try:
        yield
    except OSError as exc:
        # mkdir through a file says "File exists" or "Not a directory": say which part it is.
        why = (f"{_file_in(Path(path))} is a file, not a folder"
               if isinstance(exc, (FileExistsError, NotADirectoryError)) and _file_in(Path(path))
               else exc.strerror or str(exc))
        raise OutputError(f"cannot write {what} to {path}: {why}") from None


def _file_in(path: Path) -> Path | None:
    """The first existing non-folder among the parents of ``path`` (None: there is none)."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def check_writable(path: Path | str, what: str) -> None:
    """Fail now (OutputError) if ``what`` could not be written to ``path`` later: its folder
    cannot be made, is not writable, or the path is a folder. Creates the folder as the
    write would, and a temporary file that is removed at once."""
    target = Path(path)
    with writing(target, what):
        if target.is_dir():
            raise IsADirectoryError(21, "it is a folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=target.parent)
        os.close(fd)
        os.unlink(tmp)
