"""A scripted web on 127.0.0.1 for tests: real aiohttp servers, HTTP and HTTPS.

Use it through the ``web`` fixture of tests/conftest.py::

    async def test_something(web, web_settings):
        web.page("/mine", "<title>Mine</title>")            # your own page
        settings = web_settings(retries=0)                   # connect-to + CA + short timeouts
        url = "https://mp.weixin.qq.com/mine"                # any name in TLS_NAMES works
        ...
        assert web.hits["/mine"] == 1

Every real-looking hostname reaches this server through ``--connect-to`` rules
(port 80 -> the HTTP port, 443 -> the HTTPS port); the HTTPS side presents a
certificate from a trustme CA for the names in :data:`TLS_NAMES`.

Built-in routes (paths are the same on every hostname):

=====================  =========================================================
/title                 200, UTF-8 page titled "Hello 世界"
/og                    200, empty <title>, og:title "微信文章标题"
/gbk                   200, GBK page, charset declared in Content-Type
/gbk-meta              200, GB2312 declared only in <meta charset>
/gbk-undeclared        200, GBK bytes, no charset anywhere
/404, /410, /500 ...   /status/<code> answers that code; /404 and /410 too
/flaky/<n>             500 for the first n requests, then 200 (per path)
/503                   503 always
/r301/<n>              301 chain of n hops ending at /title
/redirect-404          302 to /404
/loop/a, /loop/b       redirect to each other forever
/permanent             308 to /title
/temporary             302 to /title
/file.pdf              HEAD 405, GET 200 application/pdf
/doc.pdf               a PDF; HEAD 200 as well
/ratelimited/<n>       429 with Retry-After: 1 for the first n requests, then 200
/retry-after-date      429 with an HTTP-date Retry-After, then 200
/hang                  sleeps 60 s before answering (past any test timeout)
/endless               text/html body that never ends
/huge                  200 with a 5 MiB HTML body
/bomb                  gzip bomb: 64 MiB of zeros in ~64 KiB, Content-Encoding gzip
/big-header            a 1 MiB response header
/drop                  closes the connection without answering
/echo                  JSON of the request's method and headers
/slow/<ms>             waits ms milliseconds, then 200 with a title
=====================  =========================================================
"""

from __future__ import annotations

import asyncio
import json
import ssl
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Awaitable, Callable, Mapping

from aiohttp import web

__all__ = ["SimWeb", "TLS_NAMES", "Page", "gzip_bomb"]

#: Names the HTTPS certificate is valid for (trustme CA).
TLS_NAMES = (
    "localhost", "127.0.0.1", "mp.weixin.qq.com", "github.com", "www.github.com",
    "raw.githubusercontent.com", "zhuanlan.zhihu.com", "www.zhihu.com", "blog.csdn.net",
    "example.com", "*.example.com", "example.org", "*.example.org", "*.github.io",
    "web.archive.org", "archive.org", "*.test", "mmbiz.qpic.cn", "res.wx.qq.com",
    "csdnimg.cn", "*.csdnimg.cn",
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Page:
    """A registered page: body bytes, status, headers."""

    body: bytes
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "text/html; charset=utf-8"


@lru_cache(maxsize=1)
def gzip_bomb(size: int = 64 * 1024 * 1024) -> bytes:
    """``size`` zero bytes, gzip-compressed (about 1/1000 of that); built once, on demand."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    parts = [comp.compress(block) for _ in range(size // len(block))]
    parts.append(comp.flush())
    return b"".join(parts)


class SimWeb:
    """The scripted web server; start with :meth:`start`, stop with :meth:`close`."""

    def __init__(self, server_ssl: ssl.SSLContext | None = None) -> None:
        self.server_ssl = server_ssl
        self.hits: Counter[str] = Counter()          # path -> requests seen
        self.requests: list[tuple[str, str, str, Mapping[str, str]]] = []  # method, host, path, headers
        self.pages: dict[str, Page] = {}
        self.handlers: dict[str, Handler] = {}
        self.catch_all: dict[str, Page] = {}         # host -> the page it answers for every path
        self.http_port = 0
        self.https_port = 0
        self._runner: web.AppRunner | None = None

    # -- for tests ------------------------------------------------------------------------

    def page(self, path: str, html: str | bytes, status: int = 200,
             headers: Mapping[str, str] | None = None,
             content_type: str = "text/html; charset=utf-8") -> str:
        """Register a static page at ``path``; returns the http://127.0.0.1 URL of it."""
        body = html.encode("utf-8") if isinstance(html, str) else html
        self.pages[path] = Page(body, status, tuple((headers or {}).items()), content_type)
        return self.url(path)

    def same_page_everywhere(self, host: str, html: str | bytes) -> None:
        """Make ``host`` answer 200 with ``html`` for every path not registered otherwise."""
        body = html.encode("utf-8") if isinstance(html, str) else html
        self.catch_all[host.lower()] = Page(body, 200, (), "text/html; charset=utf-8")

    def route(self, path: str, handler: Handler) -> str:
        """Register an aiohttp handler at ``path`` (exact match); returns its URL."""
        self.handlers[path] = handler
        return self.url(path)

    def url(self, path: str, *, https: bool = False) -> str:
        """The loopback URL of ``path`` on the HTTP (or HTTPS) side."""
        if https:
            return f"https://127.0.0.1:{self.https_port}{path}"
        return f"http://127.0.0.1:{self.http_port}{path}"

    @property
    def connect_to(self) -> tuple[str, str]:
        """--connect-to rules sending every host's port 80/443 here."""
        return (f":80:127.0.0.1:{self.http_port}", f":443:127.0.0.1:{self.https_port}")

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> "SimWeb":
        """Listen on random ports of 127.0.0.1 (HTTPS only when a context was given)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # handler_cancellation: a client that hangs up stops the handler (the /hang route).
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.http_port = _port(site)
        if self.server_ssl is not None:
            tls = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.server_ssl)
            await tls.start()
            self.https_port = _port(tls)
        return self

    async def close(self) -> None:
        """Stop listening and finish open handlers."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- dispatch -------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        self.requests.append((request.method, request.host, path, dict(request.headers)))
        if path in self.handlers:
            return await self.handlers[path](request)
        if path in self.pages:
            return _serve(self.pages[path])
        host = (request.host or "").split(":")[0].lower()
        if host in self.catch_all:   # a host that answers every path with the same page
            return _serve(self.catch_all[host])
        head, _, rest = path.lstrip("/").partition("/")
        builtin = getattr(self, f"_r_{head.replace('-', '_').replace('.', '_')}", None)
        if builtin is None:
            return web.Response(status=404, text="<title>Not Found</title>", content_type="text/html")
        return await builtin(request, rest)

    async def _r_title(self, request: web.Request, rest: str) -> web.StreamResponse:
        return _html("<html><head><title>Hello 世界</title></head><body>hi</body></html>")

    async def _r_og(self, request: web.Request, rest: str) -> web.StreamResponse:
        return _html('<html><head><title></title><meta property="og:title" content="微信文章标题">'
                     "</head><body>x</body></html>")

    async def _r_gbk(self, request: web.Request, rest: str) -> web.StreamResponse:
        return web.Response(body=_GBK_PAGE.encode("gbk"), content_type="text/html", charset="gbk")

    async def _r_gbk_meta(self, request: web.Request, rest: str) -> web.StreamResponse:
        body = _GBK_PAGE.replace("<head>", '<head><meta charset="gb2312">').encode("gbk")
        return web.Response(body=body, headers={"Content-Type": "text/html"})

    async def _r_gbk_undeclared(self, request: web.Request, rest: str) -> web.StreamResponse:
        return web.Response(body=_GBK_PAGE.encode("gbk"), headers={"Content-Type": "text/html"})

    async def _r_status(self, request: web.Request, rest: str) -> web.StreamResponse:
        return web.Response(status=int(rest or 200), text=f"<title>status {rest}</title>",
                            content_type="text/html")

    async def _r_404(self, request: web.Request, rest: str) -> web.StreamResponse:
        return await self._r_status(request, "404")

    async def _r_410(self, request: web.Request, rest: str) -> web.StreamResponse:
        return await self._r_status(request, "410")

    async def _r_500(self, request: web.Request, rest: str) -> web.StreamResponse:
        return await self._r_status(request, "500")

    async def _r_503(self, request: web.Request, rest: str) -> web.StreamResponse:
        return await self._r_status(request, "503")

    async def _r_flaky(self, request: web.Request, rest: str) -> web.StreamResponse:
        if self.hits[request.path] <= int(rest or 1):
            return await self._r_status(request, "500")
        return await self._r_title(request, "")

    async def _r_r301(self, request: web.Request, rest: str) -> web.StreamResponse:
        left = int(rest or 1)
        target = "/title" if left <= 1 else f"/r301/{left - 1}"
        return _redirect(301, target)

    async def _r_redirect_404(self, request: web.Request, rest: str) -> web.StreamResponse:
        return _redirect(302, "/404")

    async def _r_loop(self, request: web.Request, rest: str) -> web.StreamResponse:
        return _redirect(302, "/loop/b" if rest == "a" else "/loop/a")

    async def _r_permanent(self, request: web.Request, rest: str) -> web.StreamResponse:
        return _redirect(308, "/title")

    async def _r_temporary(self, request: web.Request, rest: str) -> web.StreamResponse:
        return _redirect(302, "/title")

    async def _r_file_pdf(self, request: web.Request, rest: str) -> web.StreamResponse:
        if request.method == "HEAD":
            return web.Response(status=405, headers={"Allow": "GET"})
        return web.Response(body=_PDF, content_type="application/pdf")

    async def _r_doc_pdf(self, request: web.Request, rest: str) -> web.StreamResponse:
        return web.Response(body=_PDF, content_type="application/pdf")

    async def _r_ratelimited(self, request: web.Request, rest: str) -> web.StreamResponse:
        if self.hits[request.path] <= int(rest or 1):
            return web.Response(status=429, headers={"Retry-After": "1"}, text="slow down")
        return await self._r_title(request, "")

    async def _r_retry_after_date(self, request: web.Request, rest: str) -> web.StreamResponse:
        if self.hits[request.path] <= 1:
            return web.Response(status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
        return await self._r_title(request, "")

    async def _r_hang(self, request: web.Request, rest: str) -> web.StreamResponse:
        await asyncio.sleep(60)
        return await self._r_title(request, "")

    async def _r_slow(self, request: web.Request, rest: str) -> web.StreamResponse:
        await asyncio.sleep(int(rest or 100) / 1000)
        return await self._r_title(request, "")

    async def _r_endless(self, request: web.Request, rest: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        await response.write(b"<html><head><title>Endless</title></head><body>")
        chunk = b"<p>" + b"x" * 16380 + b"</p>"
        # ~16 GB unless the client stops first; stop writing once it has hung up
        # (aiohttp's protocol drops its transport on connection_lost).
        try:
            for _ in range(1_000_000):
                if request.protocol.transport is None:
                    break
                await response.write(chunk)
                await asyncio.sleep(0)   # write() may not yield; let connection_lost run
        except ConnectionError:
            pass                         # the client hung up: expected
        return response

    async def _r_huge(self, request: web.Request, rest: str) -> web.StreamResponse:
        body = b"<html><head><title>Huge</title></head><body>" + b"y" * (5 * 1024 * 1024)
        return web.Response(body=body, content_type="text/html")

    async def _r_bomb(self, request: web.Request, rest: str) -> web.StreamResponse:
        return web.Response(body=gzip_bomb(), headers={
            "Content-Type": "text/html", "Content-Encoding": "gzip"})

    async def _r_big_header(self, request: web.Request, rest: str) -> web.StreamResponse:
        return web.Response(text="<title>big</title>", content_type="text/html",
                            headers={"X-Big": "z" * (1024 * 1024)})

    async def _r_drop(self, request: web.Request, rest: str) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()   # RST-like: no status line at all
        await asyncio.sleep(0.05)
        return web.Response(text="never sent")

    async def _r_echo(self, request: web.Request, rest: str) -> web.StreamResponse:
        return web.json_response({"method": request.method, "host": request.host,
                                  "headers": dict(request.headers)})


_GBK_PAGE = ("<html><head><title>中文标题：编码测试</title></head>"
             "<body><p>这是一个用国标码写的页面，用来测试字符集的识别。</p></body></html>")
_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8")


def _redirect(status: int, location: str) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


def _serve(page: Page) -> web.Response:
    headers = {"Content-Type": page.content_type, **dict(page.headers)}
    return web.Response(status=page.status, body=page.body, headers=headers)


def _port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio Server here; the public name gives no port
    assert server is not None and server.sockets
    return int(server.sockets[0].getsockname()[1])


def dump(obj: object) -> str:
    """JSON with non-ASCII kept readable (for test failure messages)."""
    return json.dumps(obj, ensure_ascii=False, default=str)


def wechat_with_captcha(web_: "SimWeb", refused: Callable[[int, str], bool]) -> Counter:
    """WeChat-shaped articles at /s?id=... whose n-th request is sent to the verification page
    (/mp/wappoc_appmsgcaptcha) when ``refused(n, id)``; returns the counter of requests, in all
    ("n") and per article id."""
    served: Counter = Counter()

    async def article(request: web.Request) -> web.Response:
        served["n"] += 1
        served[request.query.get("id", "")] += 1
        if refused(served["n"], request.query.get("id", "")):
            raise web.HTTPFound("/mp/wappoc_appmsgcaptcha?poc_token=t")
        return web.Response(text="<title>文章</title><div id='js_article'><div id='js_content'>正文</div></div>",
                            content_type="text/html")

    async def captcha(request: web.Request) -> web.Response:
        return web.Response(text="<title>环境异常</title><p>环境异常</p><a>去验证</a>", content_type="text/html")

    web_.route("/s", article)
    web_.route("/mp/wappoc_appmsgcaptcha", captcha)
    return served
