"""A loopback WeChat for benchmarks: many articles of one account, pictures behind a hotlink rule.

Used by bench/bench_archive.py and bench/bench_pywb.py. Articles are the WeChat shape of
tests/archive_pages.py (hidden body, lazy ``data-src`` pictures with placeholders, a CSS
background, script variables) with ``photos`` distinct pictures each, plus what every
article of an account shares: the account logo, a background picture, the stylesheet and
the script. Pictures answer a foreign Referer with a "not allowed" picture, as
mmbiz.qpic.cn does. One HTTP server answers for every host (``--connect-to``).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import ssl
import struct
import sys
import threading
import zlib
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from archive_pages import PICTURES, WECHAT_CSS, WECHAT_JS, hotlink_response, wechat_article  # noqa: E402

__all__ = ["Site", "article_url", "photo_paths", "noise_png"]


def article_url(n: int) -> str:
    """The URL of article ``n``."""
    return f"https://mp.weixin.qq.com/s/LhBench{n:05d}"


def photo_paths(n: int, photos: int) -> tuple[str, ...]:
    """The distinct pictures of article ``n``."""
    return tuple(f"/mmbiz_jpg/LhBenchA{n:05d}P{k:02d}/640" for k in range(photos))


def noise_png(seed: str, width: int, height: int) -> bytes:
    """An incompressible PNG (random pixels): about width*height*3 bytes, like a photo."""
    rng = random.Random(hashlib.sha1(seed.encode()).digest())

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")


class Site:
    """The simulated account, served from a thread (so that it does not share the measured process's loop)."""

    def __init__(self, photos: int, photo_side: int, ca_dir: Path) -> None:
        self.photos, self.side = photos, photo_side
        # WeChat's article stylesheet is about 150 KiB minified: the shared one is as big.
        self.css = WECHAT_CSS + "\n" + "".join(
            f".rich_media_lh_{i:05d}{{margin:{i % 17}px {i % 13}px;color:#{i * 2654435761 % 0xffffff:06x}}}\n"
            for i in range(3000))
        self.port = self.tls_port = 0
        # HTTPS as the real hosts: a throwaway CA (trustme) whose PEM the client trusts.
        import trustme
        self._ca = trustme.CA()
        self.ca_file = str(ca_dir / "wechatsite-ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)
        self.requests = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        """The aiohttp application."""
        async def article(request: web.Request) -> web.Response:
            n = int(request.match_info["n"])
            return web.Response(text=wechat_article(n, photos=photo_paths(n, self.photos), account="离线基准号"),
                                content_type="text/html")

        async def photo(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            # The account's logo and background are shared by every article (as big as
            # a real account logo); the photos are each article's own.
            side = self.side if request.path not in PICTURES else 100
            return hotlink_response(request, noise_png(name, side, side))

        async def static(request: web.Request) -> web.Response:
            if request.path.endswith(".css"):
                return web.Response(text=self.css, content_type="text/css")
            return web.Response(text=WECHAT_JS, content_type="application/javascript")

        @web.middleware
        async def count(request: web.Request, handler):
            self.requests += 1
            return await handler(request)

        app = web.Application(middlewares=[count])
        app.router.add_get("/s/LhBench{n:[0-9]+}", article)
        app.router.add_get("/{kind:mmbiz_(?:jpg|png)}/{name}/{size}", photo)
        app.router.add_get("/mmbizappmsg/{tail:.*}", static)
        return app

    def connect_to(self) -> tuple[str, str]:
        """--connect-to rules sending every host here (port 80 and 443)."""
        return (f":80:127.0.0.1:{self.port}", f":443:127.0.0.1:{self.tls_port}")

    def start(self) -> int:
        """Serve HTTP and HTTPS on random loopback ports in a background thread; returns the HTTP one."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(self.app(), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ca.issue_cert("mp.weixin.qq.com", "mmbiz.qpic.cn", "res.wx.qq.com").configure_cert(context)
            tls = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
            self._loop.run_until_complete(tls.start())
            self.tls_port = tls._server.sockets[0].getsockname()[1]  # noqa: SLF001
            ready.set()
            self._loop.run_forever()
        threading.Thread(target=run, daemon=True, name="wechatsite").start()
        ready.wait(10)
        return self.port

    def stop(self) -> None:
        """Stop serving."""
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
