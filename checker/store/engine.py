"""Database URLs and async engines: SQLite (aiosqlite) and PostgreSQL (asyncpg).

``sqlite:///path`` or a plain path becomes ``sqlite+aiosqlite``; ``postgresql://``
and ``postgres://`` become ``postgresql+asyncpg``. SQLite connections get WAL,
foreign keys, a busy timeout and ``synchronous=NORMAL``, and explicit ``BEGIN``
statements so that DDL is transactional and writers can take the lock up front.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from ..errors import StoreError

__all__ = ["normalize_url", "mask_url", "create_engine", "IMMEDIATE", "BUSY_TIMEOUT_MS"]

#: How long a SQLite connection waits for another writer before "database is locked".
BUSY_TIMEOUT_MS = 30_000

#: Execution option: on SQLite, begin with ``BEGIN IMMEDIATE`` (take the write lock first).
IMMEDIATE = "linkhealth_immediate"


def normalize_url(url: str) -> URL:
    """The SQLAlchemy async URL for a user's ``--db`` value (raises StoreError)."""
    text = str(url).strip()
    if not text:
        raise StoreError("empty database URL")
    if "://" not in text:
        text = f"sqlite+aiosqlite:///{Path(text).expanduser()}"
    try:
        parsed = make_url(text)
    except ArgumentError as exc:
        raise StoreError(f"bad database URL {mask_url(text)}: {exc}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres") and driver in ("", "asyncpg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend not in ("sqlite", "postgresql"):
        raise StoreError(f"unsupported database {mask_url(text)}: use sqlite:///PATH or "
                         "postgresql+asyncpg://USER@HOST/DB")
    return parsed


def mask_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***`` (safe for messages and logs)."""
    try:
        return make_url(str(url) if isinstance(url, URL) else url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def create_engine(url: str) -> AsyncEngine:
    """An AsyncEngine for ``url``, with the SQLite pragmas or PostgreSQL settings applied."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return _postgres_engine(parsed)


def _sqlite_engine(url: URL) -> AsyncEngine:
    database = url.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    kwargs: dict[str, Any] = {}
    if memory:
        # One in-memory database per connection: share a single connection.
        kwargs["poolclass"] = StaticPool
    else:
        try:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot open database {mask_url(url)}: {exc.strerror or exc}") from None
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect(memory))
    event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(memory: bool):
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (see _sqlite_on_begin): the driver's own
        # implicit BEGIN skips DDL, so migrations would not be atomic. This is the
        # recipe of SQLAlchemy's SQLite dialect docs ("Serializable isolation /
        # Savepoints / Transactional DDL").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not memory:
            # WAL: readers (report, API) never block the writer, and a crash keeps
            # every committed batch (https://sqlite.org/wal.html).
            cursor.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across application crashes in WAL mode; only a power
        # loss may drop the last commits (https://sqlite.org/pragma.html#pragma_synchronous).
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()
    return on_connect


def _sqlite_on_begin(conn: Connection) -> None:
    # A deferred transaction that reads and then writes fails at once with
    # SQLITE_BUSY when another writer committed meanwhile (busy_timeout does not
    # help then); writers therefore ask for IMMEDIATE and wait for the lock.
    if conn.get_execution_options().get(IMMEDIATE):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def _postgres_engine(url: URL) -> AsyncEngine:
    query = dict(url.query)
    server_settings: dict[str, str] = {}
    options = query.pop("options", None)
    if options:
        # libpq's ``options=-c name=value`` (e.g. a search_path per schema) has no
        # asyncpg keyword: it becomes asyncpg's server_settings.
        server_settings.update(_parse_pg_options(options if isinstance(options, str) else options[0]))
    server_settings.setdefault("application_name", "linkhealth")
    url = url.set(query=query)
    return create_async_engine(url, pool_pre_ping=True,
                               connect_args={"server_settings": server_settings})


def _parse_pg_options(options: str) -> dict[str, str]:
    settings: dict[str, str] = {}
    words = shlex.split(options)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-c" and i + 1 < len(words):
            word, i = words[i + 1], i + 1
        elif word.startswith("-c"):
            word = word[2:]
        elif word.startswith("--"):
            word = word[2:]
        name, sep, value = word.partition("=")
        if sep:
            settings[name.replace("-", "_")] = value
        i += 1
    return settings
