"""A throw-away PostgreSQL schema per test, on the server LINKHEALTH_TEST_POSTGRES_URL names.

The URL handed out carries libpq's ``options=-csearch_path=<schema>``, so every
connection opened with it (in this process or in a subprocess) works in that schema.
"""

from __future__ import annotations

import os
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from checker.store import normalize_url

PG_URL = os.environ.get("LINKHEALTH_TEST_POSTGRES_URL", "")


@asynccontextmanager
async def fresh_schema_url(prefix: str = "lh_test") -> AsyncIterator[str]:
    """Create an empty schema, yield a URL that uses it, drop it afterwards (skip without a server)."""
    if not PG_URL:
        pytest.skip("LINKHEALTH_TEST_POSTGRES_URL is not set")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    base = normalize_url(PG_URL)
    admin = create_async_engine(base)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base.render_as_string(hide_password=False)).update_query_dict(
        {"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()
