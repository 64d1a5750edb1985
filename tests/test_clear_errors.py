"""Faults at the edges get one line saying what and where, and exit status 2: an output
that cannot be written, a busy port, a bad value from the environment, an unknown archive
service, a daemon with a missing notes folder or none at all. Each used to print a
traceback and "internal error", or to run on doing nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from checker.errors import OutputError
from checker.report import write_report

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 60) -> tuple[int, str]:
    """Run linkhealth; (exit status, stderr)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LINKHEALTH_")}
    proc = subprocess.run([sys.executable, "-m", "checker.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**clean, "PYTHONPATH": str(REPO), **(env or {})})
    return proc.returncode, proc.stderr


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    return lines[0]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("[x](mailto:someone@example.com)\n", encoding="utf-8")
    (tmp_path / "afile").write_text("not a folder\n", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("args, where", [
    (["report", "--format", "csv", "-o", "afile/x.csv"], "afile/x.csv"),
    (["report", "--format", "csv", "-o", "/proc/version"], "/proc/version"),
    (["audit", "notes", "--format", "json", "-o", "afile/out.json"], "afile/out.json"),
])
def test_an_output_that_cannot_be_written_is_one_line(work, args, where):
    code, err = cli(*args, cwd=work)
    assert code == 2
    assert where in one_line(err)


def test_an_unwritable_report_path_stops_the_audit_before_any_check(work):
    code, err = cli("audit", "notes", cwd=work, env={"LINKHEALTH_REPORT_PATH": "afile/r.html"})
    assert code == 2 and "afile/r.html" in one_line(err) and "afile is a file" in err
    assert not (work / ".linkhealth" / "linkhealth.db").exists()     # failed before opening anything


async def test_a_report_that_cannot_be_written_after_the_checks_is_an_output_error(tmp_path):
    """The last step of an audit (or a daemon's report job): an OutputError, which the CLI
    prints as one line; the checks were committed before it."""
    from checker.report import build_report
    from checker.settings import Settings
    from checker.store import Store
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    async with await Store.open(f"sqlite:///{tmp_path / 'lh.db'}") as store:
        model = await build_report(store, settings=Settings())
    with pytest.raises(OutputError, match="cannot write the json report to .*afile is a file, not a folder"):
        write_report(model, "json", tmp_path / "afile" / "r.json")


def test_a_busy_listen_port_is_one_line(work):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        code, err = cli("daemon", "notes", "--listen", f"127.0.0.1:{port}", cwd=work, timeout=30)
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_a_bad_number_from_the_environment_gets_the_clear_message(work):
    code, err = cli("audit", "notes", cwd=work, env={"LINKHEALTH_CHECK_PER_HOST": "abc"})
    assert code == 2
    line = one_line(err)
    assert "LINKHEALTH_CHECK_PER_HOST" in line and "expected a whole number, got 'abc'" in line
    assert "invalid literal" not in line


def test_an_unknown_archive_service_is_refused(work):
    (work / "lh.toml").write_text('[archive]\nservices = ["local", "waybak"]\n', encoding="utf-8")
    code, err = cli("archive", "--dry-run", "--config", "lh.toml", cwd=work)
    assert code == 2
    line = one_line(err)
    assert "lh.toml" in line and "'waybak'" in line and "local, wayback" in line


@pytest.mark.parametrize("args, words", [
    (["daemon", "nonexist"], "nonexist: no such file or folder"),
    (["daemon"], "no notes to watch"),
])
def test_a_daemon_without_its_notes_stops_at_once(work, args, words):
    code, err = cli(*args, "--listen", "127.0.0.1:0", cwd=work, timeout=30)
    assert code == 2 and words in one_line(err)
