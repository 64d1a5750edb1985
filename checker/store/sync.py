"""Notes and occurrences: bring the database in line with one scan of the notes.

Runs inside one write transaction (the caller's), so a scan is applied whole or
not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Sequence

from sqlalchemy import and_, bindparam, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..models import Note, Reference, Target
from .schema import links, notes, occurrences, url_digest
from .sqlutil import CHUNK, chunks, insert_for, link_ids_by_url
from .types import SyncStats

__all__ = ["sync_notes", "under_roots"]

Refs = Mapping[str, Sequence[tuple[Reference, Target]]]


def under_roots(path: str, roots: Sequence[str] | None) -> bool:
    """Whether a note path lies under one of the root prefixes (None or "." = everywhere)."""
    if roots is None:
        return True
    for root in roots:
        root = root.rstrip("/")
        if root in ("", ".") or path == root or path.startswith(root + "/"):
            return True
    return False


async def sync_notes(conn: AsyncConnection, found: Sequence[Note], refs: Refs, *,
                     roots: Sequence[str] | None, now: datetime) -> SyncStats:
    """Upsert notes, replace occurrences of the notes in ``refs``, retire vanished notes."""
    counts: dict[str, int] = {}
    note_ids = await _upsert_notes(conn, found, now, counts)
    unknown = [path for path in refs if path not in note_ids]
    if unknown:
        raise ValueError(f"refs name notes that are not in the scan: {unknown[:3]}")
    counts["notes_deleted"] = await _retire_notes(conn, {n.path for n in found}, roots, now)
    link_ids, counts["links_new"] = await _ensure_links(conn, refs, now)
    rows = _occurrence_rows(refs, note_ids, link_ids)
    same = await _unchanged_notes(conn, rows, counts.pop("unchanged_ids"))
    counts["occurrences"] = await _replace_occurrences(conn, rows, same)
    counts["links_deactivated"], counts["links_reactivated"] = await _refresh_active(conn)
    return SyncStats(**counts)


async def _upsert_notes(conn: AsyncConnection, found: Sequence[Note], now: datetime,
                        counts: dict[str, int]) -> dict[str, int]:
    existing = {row.path: row for row in await conn.execute(
        select(notes.c.id, notes.c.path, notes.c.sha256, notes.c.deleted_at))}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    new = changed = unchanged = 0
    unchanged_ids: set[int] = set()
    for note in {n.path: n for n in found}.values():
        row = existing.get(note.path)
        values = {"sha256": note.sha256, "mtime": note.mtime, "size": note.size, "seen_at": now}
        if row is None:
            inserts.append({"path": note.path, **values})
            new += 1
            continue
        if row.deleted_at is not None:
            new += 1            # a note that comes back is new again
        elif row.sha256 != note.sha256:
            changed += 1
        else:
            unchanged += 1
            unchanged_ids.add(row.id)
        updates.append({"b_id": row.id, **{f"b_{k}": v for k, v in values.items()}})
    if inserts:
        await conn.execute(notes.insert(), inserts)
    if updates:
        stmt = (update(notes).where(notes.c.id == bindparam("b_id"))
                .values(sha256=bindparam("b_sha256"), mtime=bindparam("b_mtime"),
                        size=bindparam("b_size"), seen_at=bindparam("b_seen_at"), deleted_at=None))
        await conn.execute(stmt, updates)
    counts.update(notes_new=new, notes_changed=changed, notes_unchanged=unchanged,
                  unchanged_ids=unchanged_ids)
    ids = {row.path: row.id for row in existing.values()}
    for part in chunks([row["path"] for row in inserts]):
        ids.update({p: i for p, i in await conn.execute(
            select(notes.c.path, notes.c.id).where(notes.c.path.in_(part)))})
    return ids


async def _retire_notes(conn: AsyncConnection, seen: set[str], roots: Sequence[str] | None,
                        now: datetime) -> int:
    live = await conn.execute(select(notes.c.id, notes.c.path).where(notes.c.deleted_at.is_(None)))
    gone = [id_ for id_, path in live if path not in seen and under_roots(path, roots)]
    for part in chunks(gone):
        await conn.execute(update(notes).where(notes.c.id.in_(part)).values(deleted_at=now))
        await conn.execute(delete(occurrences).where(occurrences.c.note_id.in_(part)))
    return len(gone)


async def _ensure_links(conn: AsyncConnection, refs: Refs, now: datetime) -> tuple[dict[str, int], int]:
    targets: dict[str, Target] = {}
    for pairs in refs.values():
        for _ref, target in pairs:
            targets.setdefault(target.url, target)
    ids: dict[str, int] = {}
    if len(targets) > 5 * CHUNK:
        # A whole collection: one scan of the table beats dozens of IN (...) lists.
        by_hash = {url_digest(url): url for url in targets}
        ids.update({by_hash[h]: i for h, i in await conn.execute(select(links.c.url_hash, links.c.id))
                    if h in by_hash})
    else:
        ids.update(await link_ids_by_url(conn, targets))
    missing = [t for url, t in targets.items() if url not in ids]
    new = 0
    for part in chunks(missing):
        rows = [{"url": t.url, "url_hash": url_digest(t.url), "display_url": t.display_url or t.url,
                 "host": t.host or "", "active": True, "at_risk": False, "health": "unknown",
                 "fail_streak": 0, "created_at": now} for t in part]
        stmt = insert_for(conn.dialect.name, links).on_conflict_do_nothing(index_elements=["url_hash"])
        result = await conn.execute(stmt.returning(links.c.url, links.c.id), rows)
        for url, id_ in result:
            ids[url] = id_
            new += 1
        # Inserted meanwhile by another process (PostgreSQL): read their ids.
        late = [t.url for t in part if t.url not in ids]
        if late:
            ids.update(await link_ids_by_url(conn, late))
    return ids, new


def _occurrence_rows(refs: Refs, note_ids: Mapping[str, int],
                     link_ids: Mapping[str, int]) -> dict[int, dict[tuple[int, int], dict[str, Any]]]:
    """note id -> (line, col) -> occurrence row, for every note in ``refs``."""
    out: dict[int, dict[tuple[int, int], dict[str, Any]]] = {}
    for path, pairs in refs.items():
        note_id = note_ids[path]
        rows = out.setdefault(note_id, {})
        for ref, target in pairs:
            # One occurrence per place; the extractor never yields two, keep the first.
            rows.setdefault((ref.line, ref.col), {
                "link_id": link_ids[target.url], "note_id": note_id, "line": ref.line,
                "col": ref.col, "kind": str(ref.kind), "in_code": bool(ref.in_code),
                "written": ref.url})
    return out


_OCC_KEY = ("link_id", "line", "col", "kind", "in_code", "written")


async def _unchanged_notes(conn: AsyncConnection, rows: Mapping[int, Mapping[Any, dict[str, Any]]],
                           candidates: set[int]) -> set[int]:
    """Notes with the same hash whose stored occurrences already equal the new ones.

    A scan passes every note's references; rewriting 25,000 identical rows each
    hour would be most of a scan's cost. Comparing (not trusting the hash alone)
    still picks up a change of extraction settings, e.g. ``include_code``.
    """
    ids = [note_id for note_id in rows if note_id in candidates]
    stored: dict[int, set[tuple]] = {note_id: set() for note_id in ids}
    cols = [getattr(occurrences.c, name) for name in _OCC_KEY]
    for part in chunks(ids):
        result = await conn.execute(select(occurrences.c.note_id, *cols)
                                    .where(occurrences.c.note_id.in_(part)))
        for note_id, *values in result:
            stored[note_id].add((values[0], values[1], values[2], values[3], bool(values[4]), values[5]))
    return {note_id for note_id in ids
            if stored[note_id] == {tuple(r[k] for k in _OCC_KEY) for r in rows[note_id].values()}}


async def _replace_occurrences(conn: AsyncConnection,
                               rows: Mapping[int, Mapping[Any, dict[str, Any]]], same: set[int]) -> int:
    replaced = [note_id for note_id in rows if note_id not in same]
    for part in chunks(replaced):
        await conn.execute(delete(occurrences).where(occurrences.c.note_id.in_(part)))
    new_rows = [row for note_id in replaced for row in rows[note_id].values()]
    for part in chunks(new_rows, 2000):
        await conn.execute(occurrences.insert(), part)
    return len(new_rows)


async def _refresh_active(conn: AsyncConnection) -> tuple[int, int]:
    """links.active = cited by at least one occurrence; returns (deactivated, reactivated)."""
    cited = exists().where(occurrences.c.link_id == links.c.id)
    off = await conn.execute(update(links).where(and_(links.c.active.is_(True), ~cited))
                             .values(active=False))
    on = await conn.execute(update(links).where(and_(links.c.active.is_(False), cited))
                            .values(active=True))
    return off.rowcount, on.rowcount
