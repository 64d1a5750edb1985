"""Small SQL helpers shared by the store modules (dialect-aware INSERT, chunking)."""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence, TypeVar

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from .schema import links, url_digest

__all__ = ["insert_for", "chunks", "reason", "unique", "link_ids_by_url", "CHUNK"]

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
        rows = await conn.execute(select(links.c.url_hash, links.c.id)
                                  .where(links.c.url_hash.in_(list(by_hash))))
        ids.update({by_hash[h]: id_ for h, id_ in rows})
    return ids
