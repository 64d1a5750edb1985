"""Faults that stop an operation. Outcomes (a 404, a timeout) are values, not these.

The tree::

    LinkhealthError            base of every fault linkhealth raises on purpose
    ├── ConfigError            a config file, an environment variable or a flag is wrong
    ├── InputError             a notes path or input file cannot be used
    ├── StoreError             the database cannot be opened, migrated or written
    ├── OutputError            a report or output file cannot be written where asked
    └── ArchiveError           an archive backend cannot work at all (e.g. folder not writable)

The CLI turns each of these into exit code 2 and a one-line message saying what
and where; anything else is a bug and keeps its traceback. ``Interrupted`` (a
KeyboardInterrupt: a stop, not a fault) says which signal stopped a command; the CLI
exits 128 + its number, as a shell does.
"""

from __future__ import annotations

__all__ = ["Interrupted", "LinkhealthError", "ConfigError", "InputError", "StoreError", "OutputError", "ArchiveError"]


class LinkhealthError(Exception):
    """Base of every deliberate linkhealth fault."""


class ConfigError(LinkhealthError):
    """A configuration value is wrong; the message names the key and its source."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.source = source
        self.line = line
        self.key = key
        where = ""
        if source:
            where = f"{source}:{line}: " if line else f"{source}: "
        super().__init__(f"{where}{message}")


class InputError(LinkhealthError):
    """A path or input file given by the user cannot be used."""


class StoreError(LinkhealthError):
    """The database cannot be opened, upgraded or written."""


class OutputError(LinkhealthError):
    """A report or output file cannot be written (missing or read-only folder, not a file)."""


class ArchiveError(LinkhealthError):
    """An archive backend cannot operate (not a per-URL failure, which is a result)."""


class Interrupted(KeyboardInterrupt):
    """A command stopped by a signal (SIGTERM, SIGHUP) as Ctrl-C stops it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
