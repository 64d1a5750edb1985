"""The daemon's watcher, as a real subprocess over real files: a saved note is rescanned
within seconds (no hourly wait), only the changed notes, by the scan's include and
exclude rules; a watcher that cannot start is said once and the periodic scan goes on.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_daemon import (  # noqa: F401 - daemons and db_url are fixtures
    DaemonProc, _all_checked, _status_is, daemons, db_url, free_port, links_by_url, until, write_config,
    write_note,
)

#: The edit must be checked within this, on a shared, loaded machine (the debounce is 0.3 s).
WITHIN = 8.0


def _config(tmp_path: Path, name: str, db_url: str, web, port: int, **daemon) -> Path:
    """A daemon whose periodic scan and check wait an hour (only the watcher can be quick),
    and whose notes exclude drafts/."""
    options = {"scan_interval": "1h", "check_interval": "1h", "watch_debounce": "0.3s", **daemon}
    config = write_config(tmp_path, name, db=db_url, web=web, port=port, **options)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[notes]\n", '[notes]\nexclude = ["drafts/**", "**/.git/**"]\n', 1),
                      encoding="utf-8")
    return config


async def test_a_saved_note_is_checked_within_seconds(tmp_path, web, db_url, daemons):
    """Edit, add and delete notes under a running daemon: each is rescanned alone, in seconds."""
    first = "http://site-a.test/title?n=1"
    note = write_note(tmp_path, "a.md", [first])
    write_note(tmp_path, "b.md", ["http://site-a.test/title?n=2"])
    port = free_port()
    proc = DaemonProc(tmp_path, _config(tmp_path, "w", db_url, web, port), "w", port).start()
    daemons.append(proc)
    await until(lambda: _all_checked(proc, [first]), 30, "the first link checked", proc)
    await until(lambda: _watching(proc), 10, "the watcher to start", proc)

    # Notes the scan would not read: excluded folder, not a note. Written first, so that
    # the watcher has seen them by the time the real edit is checked.
    (tmp_path / "notes" / "drafts").mkdir()
    write_note(tmp_path, "drafts/d.md", ["http://site-b.test/excluded"])
    (tmp_path / "notes" / "todo.txt").write_text("http://site-b.test/not-a-note\n", encoding="utf-8")

    added = "http://site-c.test/title?n=3"
    saved = time.monotonic()
    write_note(tmp_path, note.name, [first, added])
    await until(lambda: _all_checked(proc, [added]), WITHIN, f"the edit checked within {WITHIN}s", proc)
    took = time.monotonic() - saved
    known = await links_by_url(proc, active="all")
    assert not {"http://site-b.test/excluded", "http://site-b.test/not-a-note"} & set(known)

    # Only the changed notes were read: the full scan ran once, at the start.
    assert len(proc.events("scan.done")) == 1, proc.tail()
    rescans = proc.events("rescan.done")
    assert rescans and all(r["notes"] <= 1 for r in rescans), rescans

    # A deleted note: its links stop being active, as fast.
    (tmp_path / "notes" / "b.md").unlink()
    await until(lambda: _inactive(proc, "http://site-a.test/title?n=2"), WITHIN, "the deleted note retired", proc)
    assert len(proc.events("scan.done")) == 1

    proc.signal(signal.SIGTERM)
    assert await proc.wait_exit() == 0, proc.tail()
    print(f"edit to checked: {took:.2f}s")


async def _watching(proc: DaemonProc) -> bool:
    return bool(proc.events("watch.started"))


async def _inactive(proc: DaemonProc, url: str) -> bool:
    return url not in await links_by_url(proc) and url in await links_by_url(proc, active="0")


def _userns_works() -> bool:
    """Whether this kernel lets us make a user namespace and set its inotify limits."""
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-U", "-r", "sh", "-c", "echo 1 > /proc/sys/user/max_inotify_watches"],
                           capture_output=True)
    return probe.returncode == 0


async def test_a_watcher_that_cannot_start_is_said_once_and_the_scan_goes_on(tmp_path, web, daemons):
    """A real inotify limit: the daemon runs in a user namespace of its own whose
    max_inotify_watches is 1 (the machine's limits are untouched); three folders need more."""
    if not _userns_works():
        pytest.skip("user namespaces (unshare -U) are not available to set an inotify limit")
    db_url = f"sqlite:///{tmp_path / 'data' / 'linkhealth.db'}"
    first, later = "http://site-a.test/title?n=1", "http://site-c.test/title?n=9"
    for folder in ("x", "y", "z"):
        write_note(tmp_path, f"{folder}.md", [first])
        (tmp_path / "notes" / folder).mkdir()
    # A note linked to a file outside the notes: skipped, and said once, not at every scan.
    secret = tmp_path / "secret.md"
    secret.write_text("http://site-b.test/secret\n", encoding="utf-8")
    (tmp_path / "notes" / "passwd.md").symlink_to(secret)
    port = free_port()
    config = _config(tmp_path, "f", db_url, web, port, scan_interval="1s", check_interval="1s")
    proc = DaemonProc(tmp_path, config, "f", port,
                      prefix=["unshare", "-U", "-r", "sh", "-c",
                              'echo 1 > /proc/sys/user/max_inotify_watches && exec "$@"', "sh"]).start()
    daemons.append(proc)
    await until(lambda: _all_checked(proc, [first]), 30, "the first link checked", proc)
    write_note(tmp_path, "x.md", [first, later])
    await until(lambda: _all_checked(proc, [later]), 20, "the edit found by the periodic scan", proc)
    assert await _status_is(proc, "/healthz", 200)
    failed = proc.events("watch.failed")
    assert len(failed) == 1, proc.tail()
    assert failed[0]["level"] == "warning" and "limit" in failed[0]["error"].lower()
    assert "max_user_watches" in failed[0]["hint"]
    assert len(proc.events("scan.done")) >= 2      # the periodic scan carried on
    skipped = proc.events("scan.skipped")
    assert [(e["path"].rsplit("/", 1)[-1], "outside the scanned folders" in e["reason"]) for e in skipped] == [
        ("passwd.md", True)], skipped
    assert "http://site-b.test/secret" not in await links_by_url(proc, active="all")
    proc.signal(signal.SIGTERM)
    assert await proc.wait_exit() == 0, proc.tail()
