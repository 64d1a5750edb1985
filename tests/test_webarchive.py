"""The daemon's /archive/ route: copies served, nothing outside the archive folder, same guards."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from checker.settings import Settings
from checker.web import Metrics, create_app, start_web
from checker.webarchive import inside_archive

COPY = "<!doctype html><meta charset=utf-8><title>副本</title><p>离线副本 copy</p>"


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """An archive folder with one copy and one WARC, a secret beside it, and symlinks."""
    root = tmp_path / "data" / "archive"
    (root / "mp.weixin.qq.com").mkdir(parents=True)
    (root / "mp.weixin.qq.com" / "20260101000000-abc.html").write_text(COPY, encoding="utf-8")
    (root / "mp.weixin.qq.com" / "20260101000000-abc.warc.gz").write_bytes(b"\x1f\x8bWARC")
    (tmp_path / "data" / "secret.html").write_text("SECRET", encoding="utf-8")
    (tmp_path / "data" / "linkhealth.db").write_text("DB", encoding="utf-8")
    os.symlink(tmp_path / "data" / "secret.html", root / "mp.weixin.qq.com" / "escape.html")
    os.symlink(root / "mp.weixin.qq.com" / "20260101000000-abc.html", root / "mp.weixin.qq.com" / "alias.html")
    return root


async def raw_get(port: int, target: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """Send the request line exactly as given (clients normalise ../ away)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = {"Host": f"127.0.0.1:{port}", "Connection": "close", **(headers or {})}
    writer.write((f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n")
                 .encode("latin-1"))
    await writer.drain()
    data = await reader.read()
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    raw_headers, _, body = rest.partition(b"\r\n\r\n")
    fields = dict(line.decode("latin-1").split(": ", 1) for line in raw_headers.split(b"\r\n") if b": " in line)
    return int(status_line.split()[1]), fields, body


async def serving(tmp_path: Path, token: str = ""):
    settings = Settings(data_dir=str(tmp_path / "data")).with_overrides({"daemon.token": token})
    app = create_app(None, settings, metrics=Metrics(), state=lambda: "running")
    return await start_web(app, "127.0.0.1", 0)


async def test_copy_is_served_with_its_guards(archive, tmp_path):
    runner, port = await serving(tmp_path)
    try:
        status, headers, body = await raw_get(port, "/archive/mp.weixin.qq.com/20260101000000-abc.html")
        assert status == 200 and body.decode("utf-8") == COPY
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "sandbox" in csp and headers["X-Content-Type-Options"] == "nosniff"
        status, headers, _ = await raw_get(port, "/archive/mp.weixin.qq.com/20260101000000-abc.warc.gz")
        assert status == 200 and headers["Content-Type"] == "application/warc" and "attachment" in headers[
            "Content-Disposition"]
        # a symlink that stays inside the archive is fine
        assert (await raw_get(port, "/archive/mp.weixin.qq.com/alias.html"))[0] == 200
        # the Host rule of the API (DNS rebinding) applies here too
        assert (await raw_get(port, "/archive/mp.weixin.qq.com/20260101000000-abc.html",
                              {"Host": "evil.example"}))[0] == 421
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("target", [
    "/archive/../secret.html", "/archive/%2e%2e/secret.html", "/archive/..%2fsecret.html",
    "/archive/mp.weixin.qq.com/..%2f..%2fsecret.html", "/archive/%2e%2e%2f%2e%2e%2fsecret.html",
    "/archive/mp.weixin.qq.com/escape.html", "/archive//etc/passwd", "/archive/%2fetc%2fpasswd",
    "/archive/..%5csecret.html", "/archive/../linkhealth.db", "/archive/mp.weixin.qq.com/%00.html",
    "/archive/", "/archive/mp.weixin.qq.com/missing.html", "/archive/%252e%252e/secret.html",
])
async def test_nothing_outside_the_archive(archive, tmp_path, target):
    runner, port = await serving(tmp_path)
    try:
        status, _, body = await raw_get(port, target)
        assert status in (400, 404), (status, body)
        assert b"SECRET" not in body and b"DB" != body and b"root:" not in body
    finally:
        await runner.cleanup()


async def test_token_guards_the_copies(archive, tmp_path):
    runner, port = await serving(tmp_path, token="s3cret")
    try:
        path = "/archive/mp.weixin.qq.com/20260101000000-abc.html"
        assert (await raw_get(port, path))[0] == 401
        assert (await raw_get(port, path, {"Authorization": "Bearer wrong"}))[0] == 401
        assert (await raw_get(port, path, {"Authorization": "Bearer s3cret"}))[0] == 200
    finally:
        await runner.cleanup()


def test_inside_archive_table(archive):
    assert inside_archive(archive, "mp.weixin.qq.com/20260101000000-abc.html") is not None
    for bad in ("../secret.html", "mp.weixin.qq.com/../../secret.html", "/etc/passwd", "mp.weixin.qq.com/escape.html",
                "", "mp.weixin.qq.com", "../linkhealth.db", "mp.weixin.qq.com\\..\\..\\secret.html"):
        assert inside_archive(archive, bad) is None, bad
