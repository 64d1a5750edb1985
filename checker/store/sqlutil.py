"""Small SQL helpers shared by the store modules (dialect-aware INSERT, chunking)."""

from __future__ import annotations

import weakref
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from .schema import links, url_digest

__all__ = ["insert_for", "chunks", "reason", "unique", "link_ids_by_url", "PreparedMany", "CHUNK"]

T = TypeVar("T")

#: Rows per IN (...) list: far below SQLite's 32766 bound variables and asyncpg's 32767.
CHUNK = 500


def insert_for(dialect: str, table: Table):
    """An INSERT that knows ``ON CONFLICT`` on this dialect (SQLite >= 3.24, PostgreSQL)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def reason(exc: BaseException) -> str:
    """A one-line reason for a database fault (the driver's message, not SQLAlchemy's wrapper)."""
    inner: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(inner).strip() or type(inner).__name__
    first = text.splitlines()[0]
    return first if len(first) <= 300 else first[:297] + "..."


def unique(values: Sequence[T]) -> list[T]:
    """The values without repeats, first occurrence order kept."""
    return list(dict.fromkeys(values))


async def link_ids_by_url(conn: Any, urls: Iterable[str]) -> dict[str, int]:
    """URL -> links.id for the stored ones among ``urls``, looked up by their digest."""
    ids: dict[str, int] = {}
    for part in chunks(unique(list(urls))):
        by_hash = {url_digest(url): url for url in part}
        rows = await conn.execute(_IDS_BY_HASH, {"hashes": list(by_hash)})
        ids.update({by_hash[h]: id_ for h, id_ in rows})
    return ids


# Built once, not per call (the check writer looks its batch's links up every batch).
_IDS_BY_HASH = select(links.c.url_hash, links.c.id).where(links.c.url_hash.in_(bindparam("hashes", expanding=True)))


class PreparedMany:
    """A statement compiled once per dialect, then sent with many rows of plain tuples.

    SQLAlchemy's executemany builds a dict of every bind for every row
    (``construct_params``) before running the type's bind processors: most of the CPU
    of a batch's links UPDATE. Here the SQL text and the processors are SQLAlchemy's
    own (``compile`` and ``bind_processor`` for the connection's dialect, so the values
    sent are those ``conn.execute`` would send); a row only becomes a tuple. Needs a
    positional paramstyle (SQLite's qmark, asyncpg's numeric_dollar) and no expanding
    or literal binds.
    """

    def __init__(self, statement: Any, names: Sequence[str]) -> None:
        self.statement = statement       # what it sends (conn.execute(statement, dicts) sends the same)
        self._names = list(names)       # the bind names, in the order of each row's values
        self._plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _plan(self, dialect: Any) -> tuple[str, list[tuple[int, Callable[[Any], Any] | None, bool]]]:
        plan = self._plans.get(dialect)
        if plan is None:
            compiled = self.statement.compile(dialect=dialect)
            if compiled.positiontup is None or sorted(compiled.positiontup) != sorted(self._names):
                raise ValueError(f"cannot prepare {compiled.string!r} with the binds {self._names}")
            steps = []
            for name in compiled.positiontup:
                process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                # A processor that sends None as None is not called for None (most of a
                # link's dates are empty): asked once here, so nothing is assumed.
                steps.append((self._names.index(name), process, process is not None and process(None) is None))
            plan = self._plans[dialect] = (compiled.string, steps)
        return plan

    async def execute(self, conn: Any, rows: Sequence[Sequence[Any]]) -> None:
        """Send ``rows`` (values in the order of ``names``) with one executemany."""
        sql, steps = self._plan(conn.dialect)
        params = [tuple([value if process is None or (value is None and keeps_none) else process(value)
                         for i, process, keeps_none in steps for value in [row[i]]])
                  for row in rows]
        await conn.exec_driver_sql(sql, params)
