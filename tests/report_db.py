"""Fill a real database for the report tests by direct inserts into the schema tables.

The report reads the database only, so its tests write the rows a real audit would
write (links, notes, occurrences, runs, checks, snapshots) and nothing else.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from checker.store.schema import checks, links, metadata, notes, occurrences, runs, snapshots

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)
XSS_TITLE = "<script>window.__xss=1;alert(1)</script>"
XSS_TITLE_2 = '"><img src=x onerror="window.__xss=2" id="injected">'


async def sqlite_engine(path: Path) -> AsyncEngine:
    """A fresh SQLite database file with the schema created."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine


@dataclass
class Seeder:
    """Inserts rows and remembers note ids; one instance per connection."""

    conn: AsyncConnection
    note_ids: dict[str, int] = field(default_factory=dict)
    _probe: Any = field(default_factory=itertools.count)

    async def note(self, path: str) -> int:
        """The id of note ``path``, inserted on first use."""
        if path not in self.note_ids:
            res = await self.conn.execute(insert(notes).values(
                path=path, sha256="0" * 64, mtime=0.0, size=1, seen_at=T0))
            self.note_ids[path] = res.inserted_primary_key[0]
        return self.note_ids[path]

    async def run(self, started_at: datetime, counts: dict | None, *, kind: str = "audit") -> int:
        """Insert a finished run with its counts."""
        res = await self.conn.execute(insert(runs).values(
            kind=kind, state="done", started_at=started_at, finished_at=started_at + timedelta(minutes=5),
            links_total=sum((counts or {}).get("health", {}).values()), links_checked=0, counts=counts))
        return res.inserted_primary_key[0]

    async def link(self, url: str, *, status: str | None = "ok", health: str = "alive",
                   cites: Sequence[tuple[str, int]] = (("notes/a.md", 1),), active: bool = True,
                   history: Sequence[tuple[str, datetime]] = (), snaps: Sequence[dict] = (),
                   **columns: Any) -> int:
        """Insert a link with its occurrences, checks and snapshots; ``columns`` go on the row."""
        checked_at = history[-1][1] if history else (T0 if status else None)
        values = dict(url=url, display_url=url, host=urlsplit(url).hostname or "", active=active,
                      status=status, health=health, checked_at=checked_at, created_at=T0)
        values.update(columns)
        link_id = (await self.conn.execute(insert(links).values(**values))).inserted_primary_key[0]
        for col, (path, line) in enumerate(cites, start=1):
            await self.conn.execute(insert(occurrences).values(
                link_id=link_id, note_id=await self.note(path), line=line, col=col, kind="link",
                written=url))
        for st, at in history:
            await self.conn.execute(insert(checks).values(
                probe_id=str(uuid.uuid4()), link_id=link_id, checked_at=at, status=st))
        for snap in snaps:
            await self.conn.execute(insert(snapshots).values(**{"link_id": link_id, "created_at": T0, **snap}))
        return link_id


def counts(status: dict[str, int], health: dict[str, int]) -> dict:
    """A runs.counts value."""
    return {"status": status, "health": health}


T1 = T0 + timedelta(days=1)
LONG_URL = "https://long.example.com/" + "a" * 10_000
QUOTE_URL = "https://evil.example/q?a=\"'><b>x</b> y&z=1"


async def fill_sample(engine: AsyncEngine) -> None:
    """The standard scenario: two runs, every status, XSS titles, snapshots, odd URLs."""
    async with engine.begin() as conn:
        s = Seeder(conn)
        await s.run(T0, counts({"ok": 4, "broken": 1}, {"alive": 4, "suspect": 1}))
        await s.run(T1, counts({"ok": 5, "broken": 2, "soft404": 1},
                               {"alive": 6, "suspect": 1, "dead": 1, "unknown": 3}))
        await s.link("https://example.com/ok", title="示例页面：链接健康", http_status=200,
                     history=[("ok", T0), ("ok", T1)], cites=[("notes/a.md", 3), ("notes/b.md", 7)])
        await s.link("https://blog.example.org/post/1", status="broken", health="suspect",
                     http_status=404, error="HTTP 404 Not Found", first_failing_at=T1 + timedelta(minutes=1),
                     fail_streak=1, history=[("ok", T0), ("broken", T1 + timedelta(minutes=1))],
                     cites=[("notes/a.md", 5)],
                     snaps=[dict(service="wayback", archive_url="https://web.archive.org/web/2023/blog",
                                 captured_at=T0 - timedelta(days=300), http_status=200),
                            dict(service="wayback", archive_url="https://web.archive.org/web/2024/blog",
                                 captured_at=T0 - timedelta(days=10), http_status=404),
                            dict(service="local", archive_url="archive/blog.html",
                                 captured_at=T0 - timedelta(days=5))])
        await s.link("https://mp.weixin.qq.com/s/abc", status="soft404", health="dead", at_risk=True,
                     http_status=200, title="该内容已被发布者删除", first_failing_at=T0 - timedelta(days=10),
                     dead_since=T0, history=[("soft404", T0 - timedelta(days=10)), ("soft404", T0),
                                             ("soft404", T1)],
                     cites=[("notes/wechat.md", 2), ("notes/a.md", 9)],
                     snaps=[dict(service="local", archive_url="archive/wx.html",
                                 captured_at=T1 + timedelta(minutes=2), created_at=T1 + timedelta(minutes=2))])
        await s.link("https://revived.example.net/x", http_status=200, title="Back again",
                     revived_at=T1 + timedelta(minutes=1),
                     history=[("broken", T0), ("ok", T1 + timedelta(minutes=1))], cites=[("notes/b.md", 1)])
        await s.link("https://evil.example/xss", title=XSS_TITLE, http_status=200, cites=[("notes/c.md", 4)])
        await s.link(QUOTE_URL, title=XSS_TITLE_2, status="broken", health="suspect", http_status=500,
                     error="</script><!-- \u2028 broke", first_failing_at=T0, cites=[("notes/c.md", 5)])
        await s.link("http://127.0.0.1:8080/private", status="excluded", health="unknown",
                     error="private address", cites=[("notes/c.md", 6)])
        await s.link("https://www.zhihu.com/question/1", status="blocked", health="unknown", at_risk=True,
                     http_status=403, cites=[("notes/zh.md", 1)])
        await s.link("https://gone.example/old", status="broken", health="dead", active=False)
        await s.link("https://new.example/unchecked", status=None, health="unknown", cites=[("notes/d.md", 1)])
        await s.link(LONG_URL, status="timeout", health="suspect", error="no answer within 20 s",
                     first_failing_at=T0, cites=[("notes/d.md", 2)])
        await s.link("https://redir.example/a", status="redirect", http_status=200,
                     final_url="https://redir.example/b", cites=[("notes/d.md", 3)])


#: What fill_sample's active links count to (the inactive one excluded).
SAMPLE_STATUS = {"ok": 3, "redirect": 1, "broken": 2, "soft404": 1, "timeout": 1, "unreachable": 0,
                 "blocked": 1, "excluded": 1}
SAMPLE_HEALTH = {"alive": 4, "suspect": 3, "dead": 1, "unknown": 3}
