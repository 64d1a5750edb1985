"""Prove linkhealth's local WARCs are real WARCs: pywb indexes them and replays a page.

Run (pywb must be in the venv: ``.venv/bin/pip install pywb``)::

    .venv/bin/python bench/bench_pywb.py [--pages 20]

What it does, all on 127.0.0.1: starts a small aiohttp site (article pages with an
image and a stylesheet, Chinese text), archives every page with the local backend
(``checker.archive.local``) through ``--connect-to``, runs ``warcio check`` on every
file, builds a pywb collection with ``wb-manager add`` (which indexes the WARCs),
starts pywb's ``wayback`` server on a loopback port, and fetches every page back in
``id_`` mode (the original bytes) and one in ``mp_`` replay mode (rewritten). It prints the
timings and exits non-zero on any mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checker.archive.base import ArchiveJob  # noqa: E402
from checker.archive.local import LocalBackend, http_fetcher  # noqa: E402
from checker.archive.policy import Action  # noqa: E402
from checker.http import create_session  # noqa: E402
from checker.settings import Settings  # noqa: E402

BIN = Path(sys.executable).parent
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def page_html(i: int) -> str:
    """An article page citing an image and a stylesheet."""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>文章 {i}</title>"
            f"<link rel='stylesheet' href='/static/site.css'></head><body><h1>标题 {i}</h1>"
            f"<p>正文 paragraph {i} " + "内容 " * 200 + f"</p><img src='/img/{i % 3}.png'></body></html>")


async def serve_site() -> tuple[web.AppRunner, int]:
    """The site to archive, on a random loopback port."""
    async def article(request: web.Request) -> web.Response:
        return web.Response(text=page_html(int(request.match_info["n"])), content_type="text/html")

    async def css(_: web.Request) -> web.Response:
        return web.Response(text="h1{color:#a00}", content_type="text/css")

    async def img(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/s/{n:[0-9]+}", article)
    app.router.add_get("/static/site.css", css)
    app.router.add_get("/img/{n}.png", img)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # noqa: SLF001


async def archive_pages(root: Path, pages: int) -> tuple[list[tuple[str, Path]], float]:
    """Archive every page with the local backend; (url, warc) pairs and seconds taken."""
    runner, port = await serve_site()
    settings = Settings().with_overrides({
        "check.connect_to": (f":80:127.0.0.1:{port}",), "archive.local_dir": str(root)})
    out = []
    started = time.perf_counter()
    try:
        async with create_session(settings) as session:
            backend = LocalBackend(settings, http_fetcher(session))
            backend.prepare()
            for i in range(pages):
                url = f"http://mp.weixin.qq.com/s/{i}"
                result = await backend.run(ArchiveJob(i + 1, i + 1, url, "local", Action.SAVE, "pending"))
                if result.snapshot is None:
                    raise SystemExit(f"archiving {url} failed: {result.error}")
                out.append((url, Path(result.snapshot.local_path)))
    finally:
        await runner.cleanup()
    return out, time.perf_counter() - started


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> tuple[int, bytes]:
    """GET on loopback (no proxies)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def main() -> int:
    """Archive, check, index with pywb, replay; print numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20)
    args = parser.parse_args()
    if not (BIN / "wb-manager").exists():
        print("pywb is not installed in this venv: .venv/bin/pip install pywb", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-pywb-"))
    try:
        archived, took = asyncio.run(archive_pages(work / "archive", args.pages))
        print(f"archived {len(archived)} pages in {took:.2f} s "
              f"({1000 * took / len(archived):.1f} ms a page)")
        for _, warc in archived:
            check = subprocess.run([str(BIN / "warcio"), "check", str(warc)], capture_output=True, text=True)
            if check.returncode:
                print(f"warcio check failed on {warc}: {check.stdout}{check.stderr}")
                return 1
        print(f"warcio check: {len(archived)} files ok")
        env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
        subprocess.run([str(BIN / "wb-manager"), "init", "notes"], cwd=work, check=True,
                       capture_output=True, env=env)
        t0 = time.perf_counter()
        subprocess.run([str(BIN / "wb-manager"), "add", "notes", *[str(w) for _, w in archived]],
                       cwd=work, check=True, capture_output=True, env=env)
        index = list((work / "collections" / "notes" / "indexes").glob("*.cdxj"))
        lines = sum(len(p.read_text().splitlines()) for p in index)
        print(f"pywb indexed {lines} CDXJ lines in {time.perf_counter() - t0:.2f} s")
        port = free_port()
        server = subprocess.Popen([str(BIN / "wayback"), "-b", "127.0.0.1", "-p", str(port)], cwd=work,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if fetch(f"{base}/")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            else:
                print("pywb did not start")
                return 1
            t0 = time.perf_counter()
            bad = 0
            for i, (url, _) in enumerate(archived):
                status, body = fetch(f"{base}/notes/2id_/{url}")
                if status != 200 or body != page_html(i).encode("utf-8"):
                    bad += 1
                    print(f"replay mismatch for {url}: HTTP {status}")
            per = 1000 * (time.perf_counter() - t0) / len(archived)
            # mp_: the replayed page itself, rewritten by pywb (the bare form is the banner frame)
            status, body = fetch(f"{base}/notes/2mp_/{archived[0][0]}")
            rewritten = status == 200 and "标题 0".encode("utf-8") in body
            if not rewritten:
                print(f"replay mode: HTTP {status}: {body[:300]!r}")
            status_img, img = fetch(f"{base}/notes/2id_/http://mp.weixin.qq.com/img/0.png")
            print(f"pywb replayed {len(archived) - bad}/{len(archived)} pages byte-exact (id_ mode), "
                  f"{per:.1f} ms a page; replay mode page ok: {rewritten}; image ok: "
                  f"{status_img == 200 and img == PNG}")
            return 0 if not bad and rewritten and img == PNG else 1
        finally:
            server.terminate()
            server.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
