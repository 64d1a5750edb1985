"""Which notes a batch of file changes touches: the daemon's watcher -> a partial rescan.

A watcher reports paths (added, modified, deleted). :func:`plan_rescan` turns them into
the notes to read again and the paths that vanished, applying the same rules as the
scan (include and exclude patterns relative to each root, symbolic links inside the
roots only), or answers None when only a full scan gives the scan's answer: a folder
appeared (its files may bring no events of their own, e.g. moved in whole), or a note
was reached through a linked folder (the scan walks such a folder once, by one name).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .notes import LinkPolicy, glob_match
from .settings import NotesSettings

__all__ = ["RescanPlan", "plan_rescan", "watched", "ADDED", "MODIFIED", "DELETED"]

ADDED, MODIFIED, DELETED = "added", "modified", "deleted"


@dataclass(frozen=True)
class RescanPlan:
    """Notes to read again (they exist now) and paths gone (notes, or folders of notes)."""

    files: tuple[Path, ...]
    gone: tuple[Path, ...]

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every path whose notes the rescan replaces: what a note under it not read is retired from."""
        return self.files + self.gone


def _root_of(path: Path, roots: Sequence[Path]) -> tuple[Path, str] | None:
    """(root, path relative to it) for the first root holding ``path``; "" for a root itself."""
    for root in roots:
        if path == root:
            return root, ""
        if path.is_relative_to(root):
            return root, path.relative_to(root).as_posix()
    return None


def _excluded(rel: str, settings: NotesSettings) -> bool:
    """Whether the scan would skip ``rel``: it, or a folder on its way, matches an exclude."""
    # As the walk prunes a folder: by "<folder>/x" ("drafts/**" matches "drafts/x"). ``rel``
    # itself may be a folder that was created or removed.
    parts = rel.split("/")
    folders = ("/".join(parts[:i]) + "/x" for i in range(1, len(parts) + 1))
    return glob_match(rel, settings.exclude) or any(glob_match(f, settings.exclude) for f in folders)


def watched(path: str | Path, roots: Sequence[str | Path], settings: NotesSettings) -> bool:
    """Whether a change at ``path`` may concern a note: under a root, not excluded."""
    found = _root_of(Path(os.path.abspath(path)), [Path(os.path.abspath(r)) for r in roots])
    return found is not None and not (found[1] and _excluded(found[1], settings))


def _direct(root: Path, rel: str) -> bool:
    """Whether ``rel``'s folder lies under ``root`` without a symbolic link on the way."""
    folder = Path(rel).parent
    return Path(os.path.realpath(root / folder)) == Path(os.path.realpath(root)) / folder


def plan_rescan(changes: Iterable[tuple[str, str | Path]], roots: Sequence[str | Path],
                settings: NotesSettings) -> RescanPlan | None:
    """The notes to rescan for ``changes`` ((kind, path) pairs), or None for a full scan."""
    absolute_roots = [Path(os.path.abspath(r)) for r in roots]
    links = LinkPolicy(roots, settings)
    files: dict[Path, None] = {}
    gone: dict[Path, None] = {}
    for kind, raw in changes:
        path = Path(os.path.abspath(raw))
        found = _root_of(path, absolute_roots)
        if found is None or (found[1] and _excluded(found[1], settings)):
            continue
        root, rel = found
        # What is on disk now decides, not the kind: an editor that saves by renaming a new
        # file over the old one can leave "deleted" the last word on a note that exists.
        exists = os.path.lexists(path)
        if not rel and (not exists or os.path.isdir(root)):
            if not exists:
                return None                  # a scanned root went: the scan says what that means
            continue
        if not exists:
            gone[path] = None
        elif os.path.isdir(path):
            if kind != MODIFIED:
                return None                  # a folder came: its notes may bring no event
        elif not rel or glob_match(rel, settings.include):
            if rel and not _direct(root, rel):
                if links.refusal(path.parent) is None:
                    return None              # through a linked folder: the walk decides its name
                continue                     # a linked folder outside the roots: never read
            files[path] = None
    return RescanPlan(tuple(files), tuple(gone))
