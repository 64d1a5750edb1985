"""Links are keyed by a digest of their URL: a URL of a few KB is stored like any other
(PostgreSQL's btree index refused rows above 2704 bytes and stopped the whole scan), and
a database made by the first schema upgrades with its rows and their keys intact."""

from __future__ import annotations

import random
import string
from datetime import timedelta

from alembic import command
from sqlalchemy import func, select, text

from checker.models import Health, HealthState, Status
from checker.store import Store
from checker.store.engine import create_engine
from checker.store.migrate import alembic_config, head_revision, upgrade_engine
from checker.store.schema import checks, links, occurrences, url_digest

from test_store import T0, db_url, note, pair, result  # noqa: F401  (db_url: SQLite and PostgreSQL)


def long_url(length: int = 3000, seed: int = 7) -> str:
    """A URL of ``length`` characters with a random path (random: no compression helps)."""
    rng = random.Random(seed)
    path = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))
    return ("https://long.example.cn/" + path)[:length]


async def test_a_url_of_3000_characters_is_stored_checked_and_found(db_url):  # noqa: F811
    huge = long_url()
    normal = "https://ok.example.cn/a"
    async with await Store.open(db_url) as store:
        stats = await store.sync_notes([note("n.md")], {"n.md": [pair("n.md", 1, huge), pair("n.md", 2, normal)]},
                                       now=T0)
        assert stats.links_new == 2
        await store.set_at_risk({huge: True, normal: False})
        store.record(None, result(huge, Status.BROKEN, http_status=414), HealthState(health=Health.SUSPECT,
                     fail_streak=1, first_failing_at=T0), T0 + timedelta(hours=12))
        store.record(None, result(normal), HealthState(health=Health.ALIVE), T0 + timedelta(days=7))
        await store.flush()
        states = await store.link_states([huge, normal])
        assert states[huge].status is Status.BROKEN and states[huge].at_risk
        assert states[normal].status is Status.OK
        assert {s.url for s in await store.due_links(T0 + timedelta(days=30))} == {huge, normal}
        # A second scan of the same note finds the stored link again (no duplicate row).
        again = await store.sync_notes([note("n.md")], {"n.md": [pair("n.md", 1, huge)]}, now=T0)
        assert again.links_new == 0
        async with store.engine.connect() as conn:
            rows = (await conn.execute(select(links.c.url, links.c.url_hash))).all()
        assert sorted(rows) == sorted([(huge, url_digest(huge)), (normal, url_digest(normal))])


async def test_a_database_of_the_first_schema_upgrades_and_keeps_its_rows(db_url):  # noqa: F811
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0001"))
            await conn.execute(text(
                "INSERT INTO notes (id, path, sha256, mtime, size, seen_at) "
                "VALUES (1, 'n.md', :sha, 1.0, 10, :t)"), {"sha": "a" * 64, "t": T0})
            for id_, url in ((1, "https://a.example.cn/x"), (2, "https://b.example.cn/图")):
                await conn.execute(text(
                    "INSERT INTO links (id, url, display_url, host, active, at_risk, health, fail_streak, "
                    "created_at) VALUES (:id, :url, :url, 'h', true, false, 'suspect', 2, :t)"),
                    {"id": id_, "url": url, "t": T0})
                await conn.execute(text(
                    "INSERT INTO occurrences (link_id, note_id, line, col, kind, in_code, written) "
                    "VALUES (:id, 1, :id, 1, 'bare', false, :url)"), {"id": id_, "url": url})
                await conn.execute(text(
                    "INSERT INTO checks (probe_id, link_id, checked_at, status, attempts) "
                    "VALUES (:p, :id, :t, 'broken', 1)"), {"p": f"p{id_}", "id": id_, "t": T0})
        await upgrade_engine(engine)
        async with engine.connect() as conn:
            keys = dict((await conn.execute(select(links.c.url, links.c.url_hash))).all())
            kept = [(await conn.execute(select(func.count()).select_from(t))).scalar_one()
                    for t in (checks, occurrences)]
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    finally:
        await engine.dispose()
    assert version == head_revision()
    assert keys == {u: url_digest(u) for u in ("https://a.example.cn/x", "https://b.example.cn/图")}
    assert kept == [2, 2]        # rebuilding links (SQLite) cascaded to none of its children
    async with await Store.open(db_url) as store:
        stats = await store.sync_notes([note("n.md")], {"n.md": [pair("n.md", 1, "https://a.example.cn/x")]},
                                       now=T0)
        assert stats.links_new == 0
        assert (await store.link_states(["https://a.example.cn/x"]))["https://a.example.cn/x"].health is \
            Health.SUSPECT


async def test_an_audit_citing_a_3000_character_url_checks_every_link(db_url, web, web_settings, tmp_path):  # noqa: F811
    """The issue's case end to end: the long URL is one result among the others, not the end of the run."""
    from checker.pipeline import run_audit
    huge = "https://example.com/title?" + long_url(3000)[30:]
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text(f"# 长链接\n\n{huge}\n\nhttps://example.com/404\n\nhttps://example.com/title\n",
                                encoding="utf-8")
    settings = web_settings(retries=0).with_overrides({"db": db_url, "data_dir": str(tmp_path / "data")})
    async with await Store.open(db_url) as store:
        outcome = await run_audit(store, settings, [str(notes)])
        states = await store.link_states()
    assert outcome.check.checked == 3 and len(states) == 3
    assert {s.status for s in states.values()} == {Status.OK, Status.BROKEN}
    [long] = [s for url, s in states.items() if len(url) > 2900]
    assert long.status is Status.OK, (long.status, long.error, long.http_status)
