"""The storage layer: async SQLAlchemy over SQLite (default) or PostgreSQL.

Example::

    store = await Store.open("sqlite:///.linkhealth/linkhealth.db")
    async with store:
        run_id = await store.start_run("audit", now)
        store.record(run_id, result, health_state, next_check_at)
        await store.flush()

Only this package imports SQLAlchemy. Schema changes are Alembic revisions in
``checker/store/migrations/versions``; :meth:`Store.open` applies them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .core import Store
from .engine import mask_url, normalize_url
from .types import LinkState, SyncStats

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["Store", "LinkState", "SyncStats", "open_store", "upgrade", "mask_url", "normalize_url"]


async def open_store(settings: "Settings", *, upgrade: bool = True) -> Store:
    """Open the store at ``settings.db_url`` (migrating it to head unless told not to)."""
    return await Store.open(settings.db_url, upgrade=upgrade)


async def upgrade(url: str) -> str:
    """Migrate the database at ``url`` to the newest schema; returns the revision reached."""
    from ..errors import StoreError
    from .engine import create_engine
    from .migrate import current_revision, upgrade_engine
    from .sqlutil import reason

    engine = create_engine(url)
    try:
        await upgrade_engine(engine)
        return await current_revision(engine) or ""
    except StoreError as exc:
        raise StoreError(f"cannot upgrade database {mask_url(url)}: {exc}") from exc
    except Exception as exc:
        raise StoreError(f"cannot upgrade database {mask_url(url)}: {reason(exc)}") from exc
    finally:
        await engine.dispose()
