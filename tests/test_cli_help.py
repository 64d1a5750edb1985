"""Every command has help that ends in an example, and the README documents it."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from checker.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from commands(command, prefix + (name,))


ALL = sorted(commands(main), key=lambda item: item[0])


@pytest.mark.parametrize("path, command", ALL, ids=[" ".join(p) for p, _ in ALL])
def test_help_ends_in_an_example(path, command):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    example_at = next(i for i, line in enumerate(lines) if line.strip() == "Example:")
    assert lines[example_at + 1].strip().startswith("linkhealth " + " ".join(path[:1]))


@pytest.mark.parametrize("path, command", ALL, ids=[" ".join(p) for p, _ in ALL])
def test_readme_documents_the_command(path, command):
    assert f"linkhealth {' '.join(path)}" in README


def test_usage_error_exits_2():
    result = CliRunner().invoke(main, ["audit", "--fail-on", "sometimes", "x"])
    assert result.exit_code == 2
    assert "--fail-on" in result.output
