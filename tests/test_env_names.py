"""Every LINKHEALTH_* variable the project documents is either a setting or outside the
settings' namespace: LINKHEALTH_CORPUS (the corpus test's folder) used to make every
command exit 2 with "unknown setting 'corpus'"."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from checker.settings import known_keys, load_settings, setting_of_env

REPO = Path(__file__).resolve().parents[1]
NAME = re.compile(r"\bLINKHEALTH_[A-Z0-9_]*[A-Z0-9]\b")
PLACES = ["README.md", "docs", "config", "tests", "bench", "Dockerfile", "docker-compose.yml", ".ci",
          "Makefile", "checker"]


def documented_names() -> dict[str, str]:
    """Name -> a file that mentions it."""
    found: dict[str, str] = {}
    for place in PLACES:
        root = REPO / place
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
        for path in files:
            if path.suffix in (".pyc", ".db", ".gz", ".warc", ".png") or "__pycache__" in path.parts \
                    or path == Path(__file__).resolve():   # this file names the old variable
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            for name in NAME.findall(text):
                found.setdefault(name, str(path.relative_to(REPO)))
    return found


def test_every_documented_variable_is_a_setting_or_outside_the_namespace():
    names = documented_names()
    assert "LINKHEALTH_TEST_CORPUS" in names and "LINKHEALTH_DB" in names
    keys = known_keys()
    wrong = {name: where for name, where in names.items()
             if setting_of_env(name) is not None and setting_of_env(name) not in keys}
    assert wrong == {}, "documented variables that the settings loader would refuse"


def test_the_corpus_and_postgres_variables_do_not_stop_a_command(tmp_path):
    env = {"LINKHEALTH_TEST_CORPUS": str(tmp_path), "LINKHEALTH_TEST_POSTGRES_URL": "postgresql://x@y/z",
           "LINKHEALTH_IA_ACCESS_KEY": "k", "LINKHEALTH_CHECK_PER_HOST": "2"}
    assert load_settings(environ=env).check.per_host == 2
    proc = subprocess.run([sys.executable, "-m", "checker.cli", "extract", str(tmp_path)], cwd=tmp_path,
                          env={**env, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
