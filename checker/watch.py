"""Watch the notes folders, so that a saved note is rescanned within seconds (the daemon).

watchfiles (Rust ``notify``: inotify on Linux, FSEvents, kqueue, ReadDirectoryChangesW)
is imported only here. Its changes are handed on as plain ``(kind, path)`` pairs,
kind one of :data:`~checker.notechanges.ADDED`, ``MODIFIED``, ``DELETED``; which of
them are notes is :func:`checker.notechanges.plan_rescan`'s business.

A watcher is a convenience, never the source of truth: it may fail to start (Linux's
``fs.inotify.max_user_watches`` or ``max_user_instances`` reached), stop on an error,
or miss events (a network mount, an overflowed kernel queue). Either way the failure is
logged once and the daemon's periodic scan carries on as the safety net.

watchfiles groups changes: it yields once no new change came for ``step`` ms (an
editor's save is several events within milliseconds), or after ``debounce`` ms of
steady changes at the latest.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Awaitable, Callable, Sequence

from .logs import log_event
from .notechanges import ADDED, DELETED, MODIFIED, watched
from .settings import NotesSettings

__all__ = ["watch_notes", "watch_targets", "Changes", "WATCH_FALLBACK"]

Changes = tuple[tuple[str, Path], ...]
#: Longest a burst of changes is gathered, as a multiple of the quiet time (daemon.watch_debounce).
MAX_GATHER = 8
WATCH_FALLBACK = "the periodic scan (daemon.scan_interval) still finds every change"
log = logging.getLogger("linkhealth.watch")


def watch_targets(roots: Sequence[str | Path]) -> list[tuple[Path, bool]]:
    """(path, recursive) to watch: each folder with its subfolders; a file root by its
    folder alone, since editors that save by renaming replace the file's inode."""
    out: dict[Path, bool] = {}
    for root in roots:
        path = Path(os.path.abspath(root))
        if path.is_dir():
            out[path] = True
        else:
            out.setdefault(path.parent, False)
    return list(out.items())


async def watch_notes(roots: Sequence[str | Path], settings: NotesSettings,
                      on_change: Callable[[Changes], Awaitable[None]], stop: asyncio.Event, *,
                      quiet: float) -> None:
    """Call ``on_change`` with each group of changes under ``roots`` until ``stop`` is set.

    A failure of the watcher is logged once (event ``watch.failed``) and ends the watch;
    an exception of ``on_change`` propagates.
    """
    targets = watch_targets(roots)
    # watchfiles logs "N changes detected" at INFO for every group: our rescan events say more.
    logging.getLogger("watchfiles").setLevel(max(logging.getLogger().level, logging.WARNING))
    groups = [[p for p, r in targets if r], [p for p, r in targets if not r]]
    watchers = [_watch(paths, recursive, roots, settings, on_change, stop, quiet)
                for recursive, paths in zip((True, False), groups) if paths]
    log_event(log, "watch.started", paths=",".join(str(p) for p, _ in targets), quiet=quiet)
    await asyncio.gather(*watchers)


async def _watch(paths: list[Path], recursive: bool, roots: Sequence[str | Path], settings: NotesSettings,
                 on_change: Callable[[Changes], Awaitable[None]], stop: asyncio.Event, quiet: float) -> None:
    from watchfiles import Change, awatch

    kinds = {Change.added: ADDED, Change.modified: MODIFIED, Change.deleted: DELETED}

    def keep(change: Change, path: str) -> bool:
        return watched(path, roots, settings)

    step = max(int(quiet * 1000), 10)
    changes = awatch(*paths, watch_filter=keep, step=step, debounce=step * MAX_GATHER, stop_event=stop,
                     recursive=recursive)
    try:
        while True:
            try:
                group = await anext(changes)
            except StopAsyncIteration:   # stop was set
                return
            except Exception as exc:     # the watcher's own fault: inotify limits, a vanished mount
                log_event(log, "watch.failed", error=f"{type(exc).__name__}: {exc}",
                          paths=",".join(map(str, paths)), hint=_hint(exc),
                          fallback=WATCH_FALLBACK,
                          level=logging.WARNING)
                return
            await on_change(tuple(sorted((kinds.get(kind, MODIFIED), Path(p)) for kind, p in group)))
    finally:
        await changes.aclose()


def _hint(exc: BaseException | None) -> str:
    """How to fix a watcher failure, where it is a known one."""
    text = str(exc).lower()
    if "watch limit" in text or "no space left" in text:
        return "raise fs.inotify.max_user_watches (sysctl), or set daemon.watch = false"
    if "too many open files" in text:
        return "raise fs.inotify.max_user_instances (sysctl) or the open-files limit, or set daemon.watch = false"
    return "set daemon.watch = false to stop watching"
